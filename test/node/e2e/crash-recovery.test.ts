/**
 * Durability across a hard kill of the runtime: two writers (one over HTTP,
 * one over the sync socket) and a live subscriber run against `wrangler dev`;
 * mid-stream the whole runtime (wrangler and workerd) gets SIGKILL and a new
 * one starts on the same storage. Afterwards every acknowledged write must be
 * there, the socket writer's exactly once (its client re-sends in-flight
 * mutations after reconnecting; the server must answer them from their
 * recorded outcome), in send order, nothing else may exist, and the
 * subscription must have resumed by itself.
 *
 * Reading everything back: `messages:list` shows only the newest 20, so each
 * message body is one unique search term (`whttp00042`) and each one is looked
 * up with `messages:search`; the deployment's persisted `documents` and
 * `commits` counters prove there is nothing beyond what the searches found.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { startDevServer, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";
import { adminStatus, createDeployment, setKnobs } from "../../../scripts/lib/admin.ts";
import { until } from "../../../scripts/lib/until.ts";

/** Writes per writer. */
const COUNT = 200;
/** Both writers must have this many acknowledged writes before the kill. */
const KILL_AFTER_ACKS = 50;
/** Neither writer starts a write more than this many ahead of the other's, so the crash lands mid-stream for both. */
const MAX_LEAD = 20;
/** Socket mutations the socket writer sends at once (so the kill catches several in flight). */
const SOCKET_BATCH = 8;
/** No new write starts after this (from the start of the writers). */
const WRITE_WINDOW_MS = 30_000;
/** After the write window, how long in-flight writes may still take. */
const DRAIN_MS = 8_000;

type Message = { _id: string; _creationTime: number; chatId: string; author: string; body: string };
type Status = { commits: number; documents: number; sessions: number; subscriptions: number; queryInstances: number };

interface Write {
  writer: "http" | "socket";
  index: number;
  body: string;
  /** When the first attempt was sent (ms). */
  sentAt: number;
  attempts: number;
  /** The document id the mutation returned, once acknowledged. */
  id: string | null;
  ackedAt: number | null;
  errors: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const token = (writer: "http" | "socket", index: number) => `w${writer === "http" ? "http" : "sock"}${String(index).padStart(5, "0")}`;
const indexOf = (body: string) => Number(body.slice(-5));

/** A fetch that gives up (as a network error) instead of hanging on a half-dead runtime. */
const boundedFetch: typeof fetch = (input, init) => fetch(input, { ...init, signal: AbortSignal.timeout(5_000) });

let server: DevServer;
let persistTo: string;

beforeAll(async () => {
  persistTo = mkdtempSync(join(tmpdir(), "calmsync-crash-"));
  server = await startDevServer({ persistTo });
});
afterAll(async () => {
  await server?.stop();
  if (persistTo) rmSync(persistTo, { recursive: true, force: true });
});

describe("crash recovery against wrangler dev", () => {
  it("keeps every acknowledged write, exactly once for the socket, across kill -9 and restart", { timeout: 60_000 }, async () => {
    const testStart = Date.now();
    const url = await createDeployment(server.url, "crash-e2e");
    // One test process is one client here: its read-back of every write (25 at a time) outruns clientCallRate.
    await setKnobs(url, { clientCallRate: 10_000, clientCallBurst: 10_000 });
    const send = anyApi.messages!.send!;
    const ws = WebSocket as unknown as typeof globalThis.WebSocket;
    const http = new ConvexHttpClient(url, { skipConvexDeploymentUrlCheck: true, logger: false, fetch: boundedFetch });
    const socket = new ConvexClient(url, { skipConvexDeploymentUrlCheck: true, logger: false, webSocketConstructor: ws });
    const watcher = new ConvexClient(url, { skipConvexDeploymentUrlCheck: true, logger: false, webSocketConstructor: ws });
    const httpChat = "crash-http";
    const socketChat = "crash-sock";

    const writes: Record<"http" | "socket", Write[]> = { http: [], socket: [] };
    const acked = (writer: "http" | "socket") => writes[writer].filter((w) => w.id !== null).length;
    let killedAt = 0;
    let restartedAt = 0;

    // The kill: SIGKILL goes out synchronously, so calling it from a client callback kills at that very moment.
    let killing: Promise<void> | null = null;
    let inFlightAtKill: Write[] = [];
    let ackedBeforeKill = {};
    let sentBeforeKill = {};
    let killTrigger = "";
    const killArmed = () => acked("http") >= KILL_AFTER_ACKS && acked("socket") >= KILL_AFTER_ACKS;
    const killNow = (trigger: string) => {
      if (killing) return;
      killTrigger = trigger;
      inFlightAtKill = writes.socket.filter((w) => w.id === null);
      ackedBeforeKill = { http: acked("http"), socket: acked("socket") };
      sentBeforeKill = { http: writes.http.length, socket: writes.socket.length };
      killedAt = Date.now();
      killing = server.kill();
    };

    // The live subscriber, and when each of the two clients' sockets went up or down.
    const updates: { at: number; messages: Message[] }[] = [];
    const subscriptionErrors: string[] = [];
    const unsubscribe = watcher.onUpdate(
      anyApi.messages!.list!,
      { chatId: socketChat },
      (messages: Message[]) => {
        updates.push({ at: Date.now(), messages });
        // Best moment for the kill: the subscriber sees a socket write committed that its writer has not had
        // acknowledged yet, so after the reconnect the writer re-sends a mutation the server already applied.
        if (!killing && killArmed() && messages.some((m) => writes.socket[indexOf(m.body)]?.id === null)) killNow("subscriber saw an unacknowledged write");
      },
      (error: Error) => subscriptionErrors.push(error.message),
    );
    const connectionEvents: { client: "socket" | "watcher"; at: number; connected: boolean }[] = [];
    for (const [name, client] of [
      ["socket", socket],
      ["watcher", watcher],
    ] as const) {
      let connected: boolean | null = null;
      client.subscribeToConnectionState((state) => {
        if (state.isWebSocketConnected !== connected)
          connectionEvents.push({ client: name, at: Date.now(), connected: (connected = state.isWebSocketConnected) });
      });
    }

    try {
      await until(() => updates.length > 0, "the subscription's first result", 15_000);
      expect(updates[0]!.messages).toEqual([]);

      const writersStart = Date.now();
      const writeDeadline = writersStart + WRITE_WINDOW_MS;
      const pace = async (other: "http" | "socket", index: number) => {
        while (writes[other].length < Math.min(COUNT, index - MAX_LEAD) && Date.now() < writeDeadline) await sleep(5);
      };

      // HTTP: one write at a time; a network error is retried with the same body (it may or may not
      // have been applied: the HTTP route has no idempotency key, so a retry may duplicate it).
      const httpWriter = (async () => {
        for (let index = 0; index < COUNT && Date.now() < writeDeadline; index++) {
          await pace("socket", index);
          const write: Write = { writer: "http", index, body: token("http", index), sentAt: Date.now(), attempts: 0, id: null, ackedAt: null, errors: [] };
          writes.http.push(write);
          while (write.id === null && Date.now() < writeDeadline) {
            write.attempts++;
            try {
              write.id = await http.mutation(send, { chatId: httpChat, author: "http-writer", body: write.body });
              write.ackedAt = Date.now();
            } catch (error) {
              write.errors.push(`${(error as Error).name}: ${(error as Error).message}`);
              await sleep(50);
            }
          }
        }
      })();

      // Socket: batches of SOCKET_BATCH mutations in flight at once; the client itself re-sends them after a reconnect.
      const socketWriter = (async () => {
        for (let first = 0; first < COUNT && Date.now() < writeDeadline; first += SOCKET_BATCH) {
          const last = Math.min(COUNT, first + SOCKET_BATCH) - 1;
          await pace("http", last);
          if (Date.now() >= writeDeadline) break;
          const batch: Promise<void>[] = [];
          for (let index = first; index <= last; index++) {
            const write: Write = {
              writer: "socket",
              index,
              body: token("socket", index),
              sentAt: Date.now(),
              attempts: 1,
              id: null,
              ackedAt: null,
              errors: [],
            };
            writes.socket.push(write);
            batch.push(
              socket.mutation(send, { chatId: socketChat, author: "socket-writer", body: write.body }).then(
                (id: string) => {
                  write.id = id;
                  write.ackedAt = Date.now();
                },
                (error: Error) => void write.errors.push(`${error.name}: ${error.message}`),
              ),
            );
          }
          // Bounded: a mutation still unanswered after the drain time counts as unacknowledged.
          await Promise.race([Promise.all(batch), sleep(Math.max(0, writeDeadline + DRAIN_MS - Date.now()))]);
        }
      })();

      // Mid-stream: kill -9 the runtime, then start a new one on the same storage and port.
      // Usually the subscriber's callback fires it (above); if that moment does not come soon, kill anyway.
      await until(killArmed, `${KILL_AFTER_ACKS} acknowledged writes each`, 20_000);
      await until(() => killing !== null, "the subscriber to see an unacknowledged socket write", 3_000).catch(() => killNow("fallback after 3 s"));
      await killing;
      const killMs = Date.now() - killedAt;
      await server.restart({ timeoutMs: 30_000 });
      restartedAt = Date.now();

      await Promise.all([httpWriter, socketWriter]);
      const writersDone = Date.now();

      // Both writers finished their streams, and wrote before the kill and after the restart.
      for (const writer of ["http", "socket"] as const) {
        expect(writes[writer].length, `${writer} writes started`).toBe(COUNT);
        expect(acked(writer), `${writer} writes acknowledged`).toBe(COUNT);
        expect(
          writes[writer].some((w) => w.sentAt > restartedAt),
          `${writer} wrote after the restart`,
        ).toBe(true);
      }
      // Every HTTP failure was a network error (none came from a function); the socket writer saw no failure at all.
      const httpErrors = writes.http.flatMap((w) => w.errors);
      for (const error of httpErrors) expect(error).toMatch(/fetch failed|ECONNREFUSED|ECONNRESET|socket|terminated|aborted|timeout/i);
      expect(writes.socket.flatMap((w) => w.errors)).toEqual([]);
      expect(subscriptionErrors).toEqual([]);

      // Read everything back: each body is one search term, so its search finds exactly its copies.
      const reader = new ConvexHttpClient(url, { skipConvexDeploymentUrlCheck: true, logger: false });
      const found = new Map<string, Message[]>();
      const all = [...writes.http.map((w) => [httpChat, w.body] as const), ...writes.socket.map((w) => [socketChat, w.body] as const)];
      for (let start = 0; start < all.length; start += 25) {
        await Promise.all(
          all.slice(start, start + 25).map(async ([chatId, body]) => {
            const hits: Message[] = await reader.query(anyApi.messages!.search!, { chatId, query: body });
            found.set(
              body,
              hits.filter((m) => m.body === body),
            );
          }),
        );
      }

      const checkWriter = (writer: "http" | "socket", chatId: string, author: string) => {
        let previous = -Infinity;
        for (const write of writes[writer]) {
          const copies = found.get(write.body)!;
          // Whole documents only: every field as sent.
          for (const copy of copies) expect(copy).toMatchObject({ chatId, author, body: write.body });
          if (writer === "socket") {
            // Exactly once, and the very document the acknowledgement named.
            expect(
              copies.map((m) => m._id),
              `copies of ${write.body}`,
            ).toEqual([write.id]);
          } else {
            // Present; a duplicate only where a retry followed a failed attempt.
            expect(
              copies.map((m) => m._id),
              `copies of ${write.body}`,
            ).toContain(write.id);
            expect(copies.length, `copies of ${write.body} (${write.attempts} attempts)`).toBeLessThanOrEqual(write.attempts);
          }
          // Acknowledged writes were committed in send order.
          const creationTime = copies.find((m) => m._id === write.id)!._creationTime;
          expect(creationTime, `_creationTime of ${write.body}`).toBeGreaterThan(previous);
          previous = creationTime;
        }
      };
      checkWriter("http", httpChat, "http-writer");
      checkWriter("socket", socketChat, "socket-writer");

      // Nothing exists beyond what the searches found, and every commit was one of these writes.
      const foundCount = [...found.values()].reduce((n, copies) => n + copies.length, 0);
      const status = await adminStatus<Status>(url);
      expect(status.documents).toBe(foundCount);
      expect(status.commits).toBe(foundCount);

      // The newest 20 of each chat agree with what the searches found.
      const newest = (chatId: string) =>
        [...found.values()]
          .flat()
          .filter((m) => m.chatId === chatId)
          .sort((a, b) => b._creationTime - a._creationTime)
          .slice(0, 20)
          .map((m) => m._id);
      for (const chatId of [httpChat, socketChat]) {
        const listed: Message[] = await reader.query(anyApi.messages!.list!, { chatId });
        expect(
          listed.map((m) => m._id),
          `newest of ${chatId}`,
        ).toEqual(newest(chatId));
      }

      // The subscription resumed by itself and caught up with the last write.
      const lastSocketId = writes.socket.at(-1)!.id;
      await until(() => updates.at(-1)?.messages[0]?._id === lastSocketId, "the subscription to show the last socket write", 15_000);
      expect(updates.at(-1)!.messages.map((m) => m._id)).toEqual(newest(socketChat));
      // The new runtime holds exactly the two reconnected sockets and the one subscription: nothing of the dead sessions.
      const after = await adminStatus<Status>(url);
      expect({ sessions: after.sessions, subscriptions: after.subscriptions, queryInstances: after.queryInstances }).toEqual({
        sessions: 2,
        subscriptions: 1,
        queryInstances: 1,
      });
      const firstAfterRestart = writes.socket.find((w) => w.sentAt > restartedAt)!.index;
      const resumed = updates.find((u) => u.at > restartedAt && u.messages.some((m) => indexOf(m.body) >= firstAfterRestart));
      expect(resumed, "an update carrying a write sent after the restart").toBeDefined();
      // Every update was a consistent, committed state: newest first, no repeats, and nothing it showed was lost.
      const surviving = new Set([...found.values()].flat().map((m) => m._id));
      for (const { messages } of updates) {
        const indexes = messages.map((m) => indexOf(m.body));
        expect(indexes).toEqual([...indexes].sort((a, b) => b - a));
        expect(new Set(indexes).size).toBe(indexes.length);
        for (const m of messages) expect(surviving.has(m._id), `${m.body} shown live, then lost`).toBe(true);
      }

      // The numbers, for the record.
      const firstAckAfter = (writer: "http" | "socket") => Math.min(...writes[writer].filter((w) => w.ackedAt! > killedAt).map((w) => w.ackedAt!));
      const reconnected = (client: "socket" | "watcher") => connectionEvents.find((e) => e.client === client && e.connected && e.at > killedAt)?.at;
      const report = {
        totalMs: Date.now() - testStart,
        writersMs: writersDone - writersStart,
        killTrigger,
        killMs,
        restartMs: restartedAt - killedAt - killMs,
        ackedBeforeKill,
        sentBeforeKill,
        acknowledged: { http: acked("http"), socket: acked("socket") },
        socketInFlightAtKill: inFlightAtKill.length,
        // Unacknowledged at the kill yet committed before it.
        socketCommittedUnackedAtKill: inFlightAtKill.filter((w) => found.get(w.body)![0]!._creationTime < killedAt).length,
        // Of those, acknowledged only after the restart: re-sent on the new socket and answered from the recorded outcome.
        socketRetriesAnsweredFromRecord: inFlightAtKill.filter((w) => found.get(w.body)![0]!._creationTime < killedAt && w.ackedAt! > restartedAt).length,
        httpFailedAttempts: httpErrors.length,
        httpWritesRetried: writes.http.filter((w) => w.attempts > 1).length,
        httpDuplicates: writes.http.filter((w) => found.get(w.body)!.length > 1).map((w) => w.body),
        documents: status.documents,
        socketReconnectedMsAfterKill: (reconnected("socket") ?? NaN) - killedAt,
        watcherReconnectedMsAfterKill: (reconnected("watcher") ?? NaN) - killedAt,
        socketReconnectedMsAfterRestart: (reconnected("socket") ?? NaN) - restartedAt,
        firstHttpAckMsAfterKill: firstAckAfter("http") - killedAt,
        firstSocketAckMsAfterKill: firstAckAfter("socket") - killedAt,
        firstResumedUpdateMsAfterKill: resumed!.at - killedAt,
        subscriptionUpdates: updates.length,
      };
      console.log(`crash-recovery: ${JSON.stringify(report)}`);
      unsubscribe();
    } catch (error) {
      const summary = (writer: "http" | "socket") =>
        writes[writer]
          .map((w) => `${w.index}:${w.sentAt - killedAt}/${w.ackedAt === null ? "-" : w.ackedAt - killedAt}/${w.attempts}${w.errors.length ? "!" : ""}`)
          .join(" ");
      console.error(
        `killedAt ${killedAt} restartedAt+${restartedAt - killedAt}\nhttp: ${summary("http")}\nsocket: ${summary("socket")}\nconnection: ${JSON.stringify(connectionEvents.map((e) => ({ ...e, at: e.at - killedAt })))}`,
      );
      console.error(
        `crash-recovery failed; runtime output:\n${server
          .output()
          .replace(/^.*200 OK.*\n/gm, "")
          .slice(-6000)}`,
      );
      throw error;
    } finally {
      await Promise.all([socket.close(), watcher.close()]);
    }
  });
});
