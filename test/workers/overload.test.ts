import { describe, expect, it } from "vitest";
import { runInDurableObject } from "cloudflare:test";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import type { SyncCounters } from "../../src/sync/front.ts";
import { ProtocolClient } from "./protocol-client.ts";
import { bindings, fresh, setKnobs, status, worker } from "./helpers.ts";

/** A session watching one chat's `messages:list` (query 0) through the shared strict protocol client. */
async function watch(deployment: string, chatId: string): Promise<ProtocolClient> {
  const client = await ProtocolClient.open(deployment);
  client.add(0, "messages:list", { chatId });
  return client;
}

const latest = (client: ProtocolClient) => client.results.get(0);

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("overload degrades freshness, not availability", () => {
  it("2,000 subscriptions invalidated by one burst with refreshQueueLimit 100: no socket closed, all end correct, queue within its limit", async () => {
    const deployment = fresh("postmortem");
    // A queue limit far below the sessions, set at runtime, as the postmortem's hard-coded 10,000 was
    // far below its herd. It holds from the start, so the queue's lifetime peak is checked below.
    // Thousands of clients from this one address (clientSessionRate would otherwise see one client).
    await setKnobs(deployment, {
      refreshQueueLimit: 100,
      refreshSliceQueryRuns: 20,
      refreshSliceTransitions: 100,
      clientSessionRate: 100_000,
      clientSessionBurst: 100_000,
    });
    const chats = Array.from({ length: 200 }, (_, i) => `chat${i}`);
    const sessions: { session: ProtocolClient; chat: string }[] = [];
    for (let i = 0; i < 2_000; i++) {
      const chat = chats[i % chats.length]!;
      sessions.push({ session: await watch(deployment, chat), chat });
    }
    await until(() => sessions.every((s) => latest(s.session) !== undefined), "every first result");

    // The burst: one commit with a message in every chat; every session is invalidated at once.
    const api = deploymentStub(bindings, deployment);
    const burst = await api.run("mutation", "messages:broadcast", { chatIds: chats, author: "burst", body: "burst" }, "t");
    expect(burst.status).toBe("success");
    const newIds = new Map(chats.map((chat, i) => [chat, (burst as { value: string[] }).value[i]]));
    let peakSeen = 0;
    await until(async () => {
      const s = await status(deployment);
      peakSeen = Math.max(peakSeen, s.limits.refreshQueue.depth);
      return s.limits.refreshQueue.depth === 0 && s.limits.refreshQueue.overflow === 0;
    }, "the refresh queue to drain");

    const final = await status(deployment);
    expect(final.limits.refreshQueue.limit).toBe(100);
    expect(final.limits.refreshQueue.peak).toBeLessThanOrEqual(100);
    expect(peakSeen).toBeLessThanOrEqual(100);
    expect(final.limits.refreshQueue.overflowPeak).toBeGreaterThan(1_000); // the limit was really hit
    expect(final.limits.refreshSlices.count).toBeGreaterThan(10); // spread over many slices
    expect(final.sessions).toBe(2_000);
    for (const { session, chat } of sessions) {
      expect(session.closed).toBeNull();
      expect(session.chainingErrors).toEqual([]);
      expect((latest(session) as { _id: string }[])[0]?._id, chat).toBe(newIds.get(chat));
    }
    // Shared executions: each chat's query ran once for the burst, not once per session.
    expect(final.invalidations).toBeLessThanOrEqual(chats.length * 2);
    for (const { session } of sessions) session.close();
  });
});

describe("session admission", () => {
  it("turns a wave of 1,000 connects at 200/s into a ramp: 429s with spread Retry-After, and everyone is in on time", async () => {
    const deployment = fresh("wave");
    // The refusal path (no waiting room), which is what a deployment falls back to past maxWaitingSessions.
    // A wave of distinct clients, all from this one address: the per-client limit is lifted to see the deployment's.
    await setKnobs(deployment, {
      sessionAdmitRate: 200,
      sessionAdmitBurst: 200,
      maxWaitingSessions: 0,
      clientSessionRate: 100_000,
      clientSessionBurst: 100_000,
    });
    const admittedAt: number[] = [];
    const refusals: { retryAfterMs: number; header: string | null; at: number }[] = [];
    const sockets: WebSocket[] = [];
    const start = Date.now();

    const attempts: number[] = [];
    async function connect(): Promise<void> {
      for (let attempt = 1; ; attempt++) {
        const response = await worker.fetch(`http://t/d/${deployment}/api/1.49.0/sync`, { headers: { Upgrade: "websocket" } });
        if (response.webSocket) {
          response.webSocket.accept();
          sockets.push(response.webSocket);
          admittedAt.push(Date.now() - start);
          attempts.push(attempt);
          return;
        }
        expect(response.status).toBe(429);
        const body = (await response.json()) as { code: string; retryAfterMs: number };
        expect(body.code).toBe("SessionRateLimited");
        refusals.push({ retryAfterMs: body.retryAfterMs, header: response.headers.get("Retry-After"), at: Date.now() - start });
        await new Promise((r) => setTimeout(r, body.retryAfterMs)); // a client that honours the hint
      }
    }

    await Promise.all(Array.from({ length: 1_000 }, () => connect()));
    const elapsed = Date.now() - start;
    expect(admittedAt).toHaveLength(1_000);
    // 200 at once, then 800 at 200/s: at least about 4 s (a slower machine only takes longer).
    expect(elapsed).toBeGreaterThan(3_000);
    // "On time" without a clock bound: a refused client that waits out its hint mostly gets in, so
    // most clients need at most two attempts (the hints promise distinct slots, not a retry storm).
    // (700 of 1,000: a loaded 2-core machine measured 749 once, since a late retry lands in a refilled slot.)
    expect(attempts.filter((n) => n <= 2).length).toBeGreaterThanOrEqual(700);
    // Roughly the 800 beyond the burst (a few more tokens refill while the wave arrives).
    expect(refusals.length).toBeGreaterThan(600);
    for (const refusal of refusals) {
      expect(Number(refusal.header)).toBe(Math.ceil(refusal.retryAfterMs / 1000));
      expect(refusal.retryAfterMs).toBeGreaterThan(0);
    }
    // The hints are spread over the window the server can serve, not all the same: each refused client is
    // promised its own slot (1/rate apart), so the first 600 promised times span about 3 s. (Measured as
    // refusal time plus hint, so it holds however fast the wave arrives: on a slow machine the hints
    // themselves shrink, since the bucket refills while the wave is still arriving.)
    const promised = refusals.slice(0, 600).map((r) => r.at + r.retryAfterMs);
    expect(Math.max(...promised) - Math.min(...promised)).toBeGreaterThan(2_500);
    // The admitted rate stays within the bucket: at most burst + rate x seconds, in every prefix.
    admittedAt.sort((a, b) => a - b);
    for (let i = 0; i < admittedAt.length; i++) {
      const allowed = 200 + (200 * admittedAt[i]!) / 1000;
      expect(i + 1, `admitted by ${admittedAt[i]} ms`).toBeLessThanOrEqual(Math.ceil(allowed) + 2);
    }
    const s = await status(deployment);
    expect(s.limits.admissions).toMatchObject({ admitted: 1_000, ratePerSecond: 200 });
    expect(s.limits.admissions.refused).toBe(refusals.length);
    for (const ws of sockets) ws.close(1000, "done");
  });

  it("refuses past maxSessions, and sheds the newest sessions with 1013 and a retry hint when it is lowered", async () => {
    const deployment = fresh("cap");
    await setKnobs(deployment, { maxSessions: 5, maxWaitingSessions: 0 });
    const sessions: ProtocolClient[] = [];
    for (let i = 0; i < 5; i++) sessions.push(await watch(deployment, "c"));
    const refused = await worker.fetch(`http://t/d/${deployment}/api/1.49.0/sync`, { headers: { Upgrade: "websocket" } });
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ code: "TooManySessions", message: expect.stringMatching(/limit of 5 sessions/) });
    await until(() => sessions.every((s) => latest(s) !== undefined), "first results");

    await setKnobs(deployment, { maxSessions: 3 });
    await until(() => sessions.filter((s) => s.closed).length === 2, "two sessions shed");
    for (const shed of sessions.slice(3)) {
      expect(shed.closed?.code).toBe(1013);
      expect(shed.closed?.reason).toMatch(/^SubscriptionsWorkerFullError: .*retry in \d+ ms$/);
    }
    expect(sessions.slice(0, 3).every((s) => s.closed === null)).toBe(true);
    expect((await status(deployment)).sessions).toBe(3);
  });
});

/** The deployment object's sync counters (frames read, frames throttled). */
async function syncCounters(deployment: string): Promise<SyncCounters> {
  return runInDurableObject(bindings.DEPLOYMENTS.getByName(deployment), (instance) => ({
    ...(instance as unknown as { runtime: { sync: { counters: SyncCounters } } }).runtime.sync.counters,
  }));
}

describe("a socket that floods, with the default knobs (issue 27 item 5)", () => {
  it("a pipelined flood of 5,000 frames is throttled and closed with a FatalError; the frames it sent after are dropped unread; another client writes on", async () => {
    const deployment = fresh("flood-defaults");
    const quiet = await watch(deployment, "quiet");
    await quiet.until(() => latest(quiet) !== undefined, "the quiet client's first result");
    const flooder = await ProtocolClient.open(deployment);
    for (let i = 0; i < 5_000; i++) flooder.mutate("messages:send", { chatId: "flood", author: "flood", body: `flood-${i}` });
    await flooder.until(() => flooder.closed !== null, "the flooder closed", 30_000);
    expect(flooder.closed?.code).toBe(1008);
    expect(flooder.messages.find((m) => m.type === "FatalError")?.error).toMatch(/Too many frames: more than 1000 waiting.*maxThrottledFramesPerSession/);
    expect(await quiet.mutation("messages:send", { chatId: "quiet", author: "quiet", body: "still here" })).toMatchObject({ success: true });
    const counters = await syncCounters(deployment);
    // Read: the quiet client's 2 frames, the flooder's Connect and its burst of 200, and the few whose turn came
    // (200/s) before the 1,201st frame closed the socket; the other ~3,800 were dropped unread.
    expect(counters.framesThrottled).toBeGreaterThanOrEqual(1_000);
    expect(counters.framesRead).toBeLessThan(600);
    quiet.close();
  });

  it("a reconnecting client that re-sends 1,000 queued mutations at once (Connect and its query set first) is throttled, not closed: all are answered", async () => {
    const deployment = fresh("flood-reconnect");
    const client = await watch(deployment, "queued");
    const ids = Array.from({ length: 1_000 }, (_, i) => client.mutate("messages:send", { chatId: "queued", author: "me", body: `queued-${i}` }));
    // 200 are read at once, the other 802 frames at 200/s: about 4 s (the default rate, which this test guards).
    await client.until(() => ids.every((id) => client.mutationResponses.has(id)) || client.closed !== null, "every queued mutation answered", 30_000);
    expect(client.closed).toBeNull();
    expect(ids.every((id) => client.mutationResponses.get(id)?.success === true)).toBe(true);
    expect((await syncCounters(deployment)).framesThrottled).toBeGreaterThan(700);
    client.close();
  });
});
