import { describe, expect, it } from "vitest";
import { AuthenticationError, Engine, loadApp, MemoryStore, registerModules, Schema } from "../engine/index.ts";
import { app as generated } from "../../convex/_generated/modules.js";
import { localFront, type SyncKnobs, type LocalSourceOptions } from "./local-source.ts";
import type { SyncFrontOptions } from "./front.ts";
import { decodeTs } from "../protocol/sync.ts";
import { MemorySyncStorage } from "./storage.ts";
import { latestResult, TEST_SYNC_KNOBS } from "./testing.ts";
import type { Connection, SessionAttachment } from "./session.ts";

const app = await loadApp(generated);

const KNOBS: SyncKnobs = TEST_SYNC_KNOBS;

function setup(knobs: Partial<SyncKnobs> = {}, options: Partial<LocalSourceOptions & Omit<SyncFrontOptions, "source" | "knobs">> = {}) {
  const engine = new Engine({ schema: new Schema(app.schema), functions: registerModules(app.modules), store: new MemoryStore() });
  const sync = localFront({
    engine,
    storage: new MemorySyncStorage(),
    knobs: () => ({ ...KNOBS, ...knobs }),
    advanceTimestamp: () => undefined,
    log: () => undefined,
    ...options,
  });
  const open = (name: string) => {
    const frames: { type: string; [k: string]: unknown }[] = [];
    const closed: { code: number; reason: string }[] = [];
    const connection: Connection = {
      send: (f) => frames.push(JSON.parse(f)) > 0,
      close: (code, reason) => closed.push({ code, reason }),
      saveAttachment: (_a: SessionAttachment) => undefined,
    };
    const session = sync.open(connection, name);
    const send = (message: unknown) => sync.receive(session, JSON.stringify(message));
    const latest = (queryId: number) => latestResult(frames, queryId);
    /** Connect, with the connection id as the session id. */
    const connect = () => send({ type: "Connect", sessionId: name, connectionCount: 0, lastCloseReason: null });
    /** The first query set: `messages:list` of each chat, query ids in order. */
    const watch = (...chats: string[]) =>
      send({
        type: "ModifyQuerySet",
        baseVersion: 0,
        newVersion: 1,
        modifications: chats.map((chatId, queryId) => ({ type: "Add", queryId, udfPath: "messages:list", args: [{ chatId }] })),
      });
    return { session, frames, closed, send, latest, connect, watch };
  };
  /** Until no function is queued and no session waits for a turn (checked twice: a turn can queue more). */
  const idle = async () => {
    for (let quiet = 0; quiet < 2;) {
      await new Promise((r) => setTimeout(r, 1));
      quiet = sync.scheduler.waiting === 0 && engine.queuedFunctions === 0 ? quiet + 1 : 0;
    }
  };
  return { engine, sync, open, idle };
}

describe("SyncFront", () => {
  it("runs a query once for every session subscribed to it", async () => {
    const { engine, open, idle } = setup();
    const clients = Array.from({ length: 50 }, (_, i) => open(`c${i}`));
    for (const c of clients) {
      await c.connect();
      await c.watch("a");
    }
    await idle();
    expect(engine.counters.queryExecutions).toBe(1);
    await engine.runMutation("messages:send", { chatId: "a", author: "x", body: "hi" });
    await idle();
    expect(engine.counters.queryExecutions).toBe(2); // the first run and one shared re-run
    for (const c of clients) expect((c.latest(0) as { body: string }[])[0]?.body).toBe("hi");
  });

  it("serves correct results after the result cache evicted them, by re-running", async () => {
    const { engine, sync, open, idle } = setup({ queryResultCacheBytes: 1_048_576 });
    const big = "x".repeat(30_000);
    for (let chat = 0; chat < 40; chat++) await engine.runMutation("messages:send", { chatId: `c${chat}`, author: "x", body: `${big}${chat}` });
    const first = open("first");
    await first.connect();
    await first.watch(...Array.from({ length: 40 }, (_, chat) => `c${chat}`));
    await idle();
    expect(sync.source.instances.results.evictions).toBeGreaterThan(0);
    expect(sync.source.instances.results.bytes).toBeLessThanOrEqual(1_048_576 + 70_000);
    // A second session subscribing to the same queries (most recently cached first) gets the same
    // results, re-running only the evicted ones.
    const runsBefore = engine.counters.queryExecutions;
    const second = open("second");
    await second.connect();
    await second.send({
      type: "ModifyQuerySet",
      baseVersion: 0,
      newVersion: 1,
      modifications: Array.from({ length: 40 }, (_, i) => 39 - i).map((chat) => ({
        type: "Add",
        queryId: chat,
        udfPath: "messages:list",
        args: [{ chatId: `c${chat}` }],
      })),
    });
    await idle();
    const reRuns = engine.counters.queryExecutions - runsBefore;
    expect(reRuns).toBeGreaterThan(0);
    expect(reRuns).toBeLessThan(40);
    for (let chat = 0; chat < 40; chat++) expect(second.latest(chat)).toEqual(first.latest(chat));
  });
});

describe("a fan-out's Transitions are encoded once and shared (issue 27 item 2)", () => {
  it("sessions holding the same query at the same versions get the same frame; one at another version gets its own header", async () => {
    const { engine, open, idle } = setup();
    const same = Array.from({ length: 3 }, (_, i) => open(`same${i}`));
    const other = open("other");
    for (const c of [...same, other]) {
      await c.connect();
      await c.watch("a");
    }
    // "other" moves to query set version 2 (a second query, on a chat nobody writes).
    await other.send({
      type: "ModifyQuerySet",
      baseVersion: 1,
      newVersion: 2,
      modifications: [{ type: "Add", queryId: 1, udfPath: "messages:list", args: [{ chatId: "z" }] }],
    });
    await idle();
    const raw = new Map<string, string[]>();
    for (const c of [...same, other]) raw.set(c.session.connectionId, []);
    for (const c of [...same, other]) {
      const send = c.session.connection.send.bind(c.session.connection);
      c.session.connection.send = (f: string) => (raw.get(c.session.connectionId)!.push(f), send(f));
    }
    await engine.runMutation("messages:send", { chatId: "a", author: "x", body: "shared" });
    await idle();
    const frames = [...same, other].map((c) => raw.get(c.session.connectionId)!.filter((f) => f.includes('"shared"')));
    for (const f of frames) expect(f).toHaveLength(1);
    expect(frames[1]![0]).toBe(frames[0]![0]);
    expect(frames[2]![0]).toBe(frames[0]![0]);
    const parsed = frames.map(
      (f) => JSON.parse(f[0]!) as { startVersion: { querySet: number }; endVersion: { querySet: number }; modifications: { queryId: number }[] },
    );
    expect(parsed[0]!.startVersion.querySet).toBe(1);
    expect(parsed[3]!.startVersion.querySet).toBe(2);
    expect(parsed[3]!.endVersion.querySet).toBe(2);
    expect(parsed[3]!.modifications.map((m) => m.queryId)).toEqual([0]);
    expect(other.latest(0)).toEqual(same[0]!.latest(0));
  });
});

describe("paginated subscriptions (query journals)", () => {
  it("sends the journal with every update, re-runs with it so the first page grows, and pins a re-added page to the client's journal", async () => {
    const { engine, open, idle } = setup();
    for (let i = 0; i < 8; i++) await engine.runMutation("messages:send", { chatId: "a", author: "x", body: `m${i}` });
    const client = open("c");
    await client.connect();
    const history = { type: "Add", queryId: 0, udfPath: "messages:history", args: [{ chatId: "a", paginationOpts: { numItems: 3, cursor: null, id: 1 } }] };
    await client.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [history] });
    await idle();
    const updates = () =>
      client.frames.flatMap((f) =>
        f.type === "Transition" ? (f.modifications as { type: string; queryId: number; value: { page: { body: string }[] }; journal: string | null }[]) : [],
      );
    const first = updates().at(-1)!;
    expect(first.value.page.map((m) => m.body)).toEqual(["m7", "m6", "m5"]);
    expect(first.journal).toEqual(expect.any(String));
    await engine.runMutation("messages:send", { chatId: "a", author: "x", body: "new" });
    await idle();
    const grown = updates().at(-1)!;
    expect(grown.value.page.map((m) => m.body)).toEqual(["new", "m7", "m6", "m5"]);
    expect(grown.journal).toBe(first.journal);

    // After a reconnect the client re-adds the query with the journal it holds: the same pinned page.
    const again = open("c2");
    await again.connect();
    await again.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [{ ...history, journal: grown.journal }] });
    await idle();
    expect((again.latest(0) as { page: { body: string }[] }).page.map((m) => m.body)).toEqual(["new", "m7", "m6", "m5"]);
  });
});

describe("per-session limits", () => {
  it("refuses a query set past maxQueriesPerSession as a protocol error for that socket only", async () => {
    const { open, idle } = setup({ maxQueriesPerSession: 3 });
    const add = (n: number, from = 0) =>
      Array.from({ length: n }, (_, i) => ({ type: "Add", queryId: from + i, udfPath: "messages:list", args: [{ chatId: `c${from + i}` }] }));
    const ok = open("ok");
    await ok.connect();
    await ok.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: add(3) });
    const greedy = open("greedy");
    await greedy.connect();
    await greedy.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: add(2) });
    await greedy.send({ type: "ModifyQuerySet", baseVersion: 1, newVersion: 2, modifications: add(2, 2) });
    await idle();
    expect(ok.closed).toEqual([]);
    expect(greedy.closed).toEqual([{ code: 1008, reason: "ProtocolError" }]);
    expect(greedy.frames.find((f) => f.type === "FatalError")?.error).toMatch(/Query set of 4 queries exceeds the limit of 3 per session/);
  });

  it("fails mutations past maxPendingMutationsPerSession individually, without closing", async () => {
    const { open, idle } = setup({ maxPendingMutationsPerSession: 2 });
    const client = open("busy");
    await client.connect();
    const sent = Array.from({ length: 5 }, (_, i) =>
      client.send({ type: "Mutation", requestId: i, udfPath: "messages:send", args: [{ chatId: "a", author: "x", body: `${i}` }] }),
    );
    await Promise.all(sent);
    await idle();
    const responses = client.frames.filter((f) => f.type === "MutationResponse");
    expect(responses.filter((r) => r.success)).toHaveLength(2);
    expect(responses.filter((r) => !r.success).map((r) => r.result)).toEqual(
      Array(3).fill(expect.stringMatching(/Too many concurrent mutations.*2 are waiting/)),
    );
    expect(client.closed).toEqual([]);
  });

  it("frames past sessionFrameBurst wait, unparsed, for sessionFrameRate, then are handled in order", async () => {
    const { sync, open, idle } = setup({ sessionFrameRate: 200, sessionFrameBurst: 2 });
    const client = open("fast");
    const mutation = (i: number) => ({ type: "Mutation", requestId: i, udfPath: "messages:send", args: [{ chatId: "a", author: "x", body: `${i}` }] });
    const handled = [client.connect(), ...Array.from({ length: 5 }, (_, i) => client.send(mutation(i)))];
    // Connect and the first mutation had tokens; the other four wait without being read.
    expect(sync.counters.framesThrottled).toBe(4);
    expect(sync.counters.protocolErrors).toBe(0);
    await Promise.all(handled);
    await idle();
    const responses = client.frames.filter((f) => f.type === "MutationResponse");
    expect(responses.map((r) => [r.requestId, r.success])).toEqual([0, 1, 2, 3, 4].map((i) => [i, true]));
    expect(client.closed).toEqual([]);
  });

  it("a socket with more than maxThrottledFramesPerSession frames waiting closes with a FatalError; another session goes on", async () => {
    const { sync, open, idle } = setup({ sessionFrameRate: 1, sessionFrameBurst: 2, maxThrottledFramesPerSession: 3 });
    const flooder = open("flooder");
    const quiet = open("quiet");
    await flooder.connect();
    await quiet.connect();
    for (let i = 0; i < 10; i++)
      void flooder.send({ type: "Mutation", requestId: i, udfPath: "messages:send", args: [{ chatId: "a", author: "x", body: `${i}` }] });
    expect(flooder.closed).toEqual([{ code: 1008, reason: "ProtocolError" }]);
    expect(flooder.frames.some((f) => f.type === "FatalError" && /maxThrottledFramesPerSession/.test(String(f.error)))).toBe(true);
    expect(sync.counters.framesThrottled).toBe(3);
    await quiet.send({ type: "Mutation", requestId: 0, udfPath: "messages:send", args: [{ chatId: "b", author: "y", body: "hello" }] });
    await idle();
    expect(quiet.frames.filter((f) => f.type === "MutationResponse").map((r) => r.success)).toEqual([true]);
    expect(quiet.closed).toEqual([]);
  });
  it("a socket closed for flooding drops its waiting frames at once, unread, instead of waking for each (issue 27 item 5)", async () => {
    const { sync, open } = setup({ sessionFrameRate: 1, sessionFrameBurst: 2, maxThrottledFramesPerSession: 3 });
    const flooder = open("flooder");
    await flooder.connect();
    const handled = Array.from({ length: 10 }, (_, i) =>
      flooder.send({ type: "Mutation", requestId: i, udfPath: "messages:send", args: [{ chatId: "a", author: "x", body: `${i}` }] }),
    );
    expect(flooder.closed).toEqual([{ code: 1008, reason: "ProtocolError" }]);
    // At 1 frame/s the three waiting frames were due 1, 2 and 3 s from now; closed, they end within a few ms.
    const ended = await Promise.race([Promise.all(handled).then(() => true), new Promise((r) => setTimeout(() => r(false), 50))]);
    expect(ended).toBe(true);
    expect(flooder.session.inbound).toBeNull();
    expect(flooder.session.throttledFrames).toBe(0);
    // None of the flood's frames past the burst was read: one mutation ran, nothing was answered after the close.
    expect(flooder.frames.filter((f) => f.type === "MutationResponse")).toHaveLength(0);
    expect(sync.counters.framesThrottled).toBe(3);
  });
});

describe("byte budgets (issue 28 finding 2)", () => {
  /** A mutation frame of about 3,100 characters. */
  const big = (requestId: number, author: string) => ({
    type: "Mutation",
    requestId,
    udfPath: "messages:send",
    args: [{ chatId: "a", author, body: "x".repeat(3_000) }],
  });
  const budgets = { maxFrameBytes: 4_096, maxPendingBytesPerSession: 8_000, maxPendingBytes: 12_000 };

  it("pending mutations (run or held while waiting) are held to maxPendingBytesPerSession, and all sessions' to maxPendingBytes; past either that request fails alone", async () => {
    const { engine, sync, open, idle } = setup(budgets);
    // The function lock is busy: every mutation stays pending.
    let unblock!: () => void;
    const blocked = engine.exclusive(() => new Promise<void>((resolve) => (unblock = resolve)), {});
    const a = open("a");
    const b = open("b");
    for (const c of [a, b]) await c.connect();
    for (let i = 0; i < 3; i++) await a.send(big(i, "a"));
    // Two fit a's budget (about 6,200 of 8,000); the third fails, naming the knob.
    expect(a.frames).toEqual([
      {
        type: "MutationResponse",
        requestId: 2,
        success: false,
        result: expect.stringMatching(/more than 8000 bytes of requests waiting.*knob maxPendingBytesPerSession/),
        logLines: [],
      },
    ]);
    // b is within its own budget, but the object's (12,000) has room for one more only.
    for (let i = 0; i < 2; i++) await b.send(big(i, "b"));
    expect(b.frames).toEqual([
      { type: "MutationResponse", requestId: 1, success: false, result: expect.stringMatching(/overloaded.*knob maxPendingBytes\)/), logLines: [] },
    ]);
    expect(sync.pendingBytes.total).toBeLessThanOrEqual(12_000);
    // A waiting session's held mutations count too (they are kept in memory until admission).
    const waitingFrames: { type: string; [k: string]: unknown }[] = [];
    const waiting = sync.open({ send: (f) => waitingFrames.push(JSON.parse(f)) > 0, close: () => undefined, saveAttachment: () => undefined }, "w", true);
    await sync.receive(waiting, JSON.stringify({ type: "Connect", sessionId: "w", connectionCount: 0, lastCloseReason: null }));
    await sync.receive(waiting, JSON.stringify(big(0, "w")));
    expect(waitingFrames).toEqual([expect.objectContaining({ requestId: 0, success: false, result: expect.stringMatching(/overloaded/) })]);
    expect(a.closed).toEqual([]);
    expect(b.closed).toEqual([]);
    unblock();
    await blocked;
    await idle();
    expect(a.frames.filter((f) => f.type === "MutationResponse" && f.success)).toHaveLength(2);
    expect(b.frames.filter((f) => f.type === "MutationResponse" && f.success)).toHaveLength(1);
    // Answered, they hold nothing: the next one is accepted.
    expect(sync.pendingBytes.total).toBe(0);
    await b.send(big(5, "b"));
    await idle();
    expect(b.frames.at(-2)).toMatchObject({ type: "MutationResponse", requestId: 5, success: true });
    expect(engine.store.commitCount()).toBe(4);
  });

  it("an action's arguments count while it runs", async () => {
    const { engine, open, idle } = setup({ ...budgets, maxPendingBytesPerSession: 4_096 });
    let unblock!: () => void;
    const blocked = engine.exclusive(() => new Promise<void>((resolve) => (unblock = resolve)), {});
    const c = open("c");
    await c.connect();
    // A mutation waits behind the busy lock; an action beside it would pass the session's budget.
    await c.send(big(0, "c"));
    await c.send({ type: "Action", requestId: 1, udfPath: "assistant:suggest", args: [{ chatId: "c", prompt: "x".repeat(2_000), delayMs: 0 }] });
    expect(c.frames).toEqual([
      expect.objectContaining({ type: "ActionResponse", requestId: 1, success: false, result: expect.stringMatching(/knob maxPendingBytesPerSession/) }),
    ]);
    unblock();
    await blocked;
    await idle();
    await c.send({ type: "Action", requestId: 2, udfPath: "assistant:suggest", args: [{ chatId: "c", prompt: "x".repeat(2_000), delayMs: 0 }] });
    const answered = () => c.frames.find((f) => f.type === "ActionResponse" && f.requestId === 2);
    for (let i = 0; i < 100 && !answered(); i++) await new Promise((r) => setTimeout(r, 5));
    expect(answered()).toMatchObject({ success: true });
    expect(c.closed).toEqual([]);
  });

  it("query instances are bounded per object (maxQueryInstances): a change needing more closes that socket with 1013, nothing of it applied; shared queries cost nothing", async () => {
    const { sync, open, idle } = setup({ maxQueryInstances: 3 });
    const a = open("a");
    const b = open("b");
    const c = open("c");
    for (const client of [a, b, c]) await client.connect();
    await a.watch("x", "y");
    // Two shared with a and one new: three instances in all.
    await b.watch("x", "y", "z");
    await idle();
    expect(sync.source.instanceCount).toBe(3);
    // Anyone's fourth distinct query is refused.
    await c.watch("x", "w");
    expect(c.closed).toEqual([{ code: 1013, reason: expect.stringMatching(/SubscriptionsWorkerFullError: too many queries held here/) }]);
    expect(sync.source.instanceCount).toBe(3);
    expect(c.session.queries.size).toBe(0);
    // The others are served as before, and a query already held is always accepted.
    const d = open("d");
    await d.connect();
    await d.watch("z");
    await idle();
    for (const client of [a, b, d]) expect(client.closed).toEqual([]);
    expect(d.latest(0)).toEqual([]);
  });

  it("frames queued behind a sign-in still being checked are bounded: past the budget that socket closes with 1013, the others go on", async () => {
    const { sync, open, idle } = setup(budgets, { authenticate: () => new Promise(() => undefined) });
    const slow = open("slow");
    const other = open("other");
    for (const c of [slow, other]) await c.connect();
    void slow.send({ type: "Authenticate", tokenType: "User", value: "token", baseVersion: 0 });
    // The provider never answers; the client keeps sending. Without a bound every frame stays in memory.
    for (let i = 0; i < 10; i++) void slow.send(big(i, "slow"));
    expect(slow.closed).toEqual([{ code: 1013, reason: expect.stringMatching(/connection over maxPendingBytesPerSession/) }]);
    // What it held is given back; another session is served as before.
    expect(sync.pendingBytes.total).toBe(0);
    await other.send(big(0, "other"));
    await idle();
    for (let i = 0; i < 100 && !other.frames.some((f) => f.type === "MutationResponse"); i++) await new Promise((r) => setTimeout(r, 5));
    expect(other.frames.find((f) => f.type === "MutationResponse")).toMatchObject({ success: true });
    expect(other.closed).toEqual([]);
  });
});

describe("one invalidation path: the commit", () => {
  it("a mutation run outside live sync (the HTTP path) still reaches subscribers, even with a query set change in between", async () => {
    const { engine, open, idle } = setup();
    const watcher = open("watcher");
    await watcher.connect();
    await watcher.watch("a");
    await idle();
    // The HTTP path: the engine alone, with an extra async layer before its caller resumes,
    // while a ModifyQuerySet for the same query arrives. Nobody wires the commit to sync.
    const committed = engine.runMutation("messages:send", { chatId: "a", author: "http", body: "over http" }).then(async (result) => {
      await new Promise((r) => setTimeout(r, 5));
      return result;
    });
    const joiner = open("joiner");
    await joiner.connect();
    await joiner.watch("a");
    const { ts } = await committed;
    await idle();
    // Every Transition at or past the commit's timestamp carries the new message: all of one
    // Transition's results are at its timestamp.
    for (const client of [watcher, joiner]) {
      const atOrPast = client.frames.filter((f) => f.type === "Transition" && decodeTs((f.endVersion as { ts: string }).ts, "ts") >= ts);
      expect(atOrPast.length).toBeGreaterThan(0);
      expect((client.latest(0) as { body: string }[]).map((m) => m.body)).toEqual(["over http"]);
      for (const frame of atOrPast) {
        for (const m of frame.modifications as { queryId: number; value: { body: string }[] }[]) expect(m.value.map((x) => x.body)).toEqual(["over http"]);
      }
    }
  });
});

describe("bounded traffic to clients", () => {
  it("a send the runtime refuses closes that session and never advances its version", async () => {
    const { engine, sync, open, idle } = setup();
    const client = open("fragile");
    await client.connect();
    await client.watch("a");
    await idle();
    const held = client.session.version;
    // From now on the runtime refuses this socket's frames (e.g. one over its 32 MiB message limit).
    (client.session.connection as { send: (f: string) => boolean }).send = () => false;
    await engine.runMutation("messages:send", { chatId: "a", author: "x", body: "lost" });
    await idle();
    expect(client.closed).toEqual([{ code: 1011, reason: "InternalServerError" }]);
    expect(client.session.version).toEqual(held);
    expect(sync.sessionCount).toBe(0);
  });

  it("a Transition over maxTransitionBytes reports what did not fit as failed, then sends it in the next one", async () => {
    const { engine, open, idle } = setup({ maxTransitionBytes: 65_536 });
    await engine.runMutation("messages:send", { chatId: "a", author: "x", body: "a".repeat(40_000) });
    await engine.runMutation("messages:send", { chatId: "b", author: "x", body: "b".repeat(40_000) });
    const client = open("big");
    await client.connect();
    await client.watch("a", "b");
    await idle();
    const transitions = client.frames.filter((f) => f.type === "Transition");
    expect(transitions.length).toBe(2);
    for (const frame of transitions) expect(JSON.stringify(frame).length).toBeLessThanOrEqual(65_536);
    const first = transitions[0]!.modifications as { type: string; queryId: number; errorMessage?: string }[];
    expect(first.map((m) => m.type)).toEqual(["QueryUpdated", "QueryFailed"]);
    expect(first[1]!.errorMessage).toMatch(/did not fit into one Transition of 65536 bytes \(knob maxTransitionBytes\)/);
    expect((transitions[1]!.modifications as { type: string; queryId: number }[]).map((m) => [m.type, m.queryId])).toEqual([["QueryUpdated", 1]]);
    expect((client.latest(1) as { body: string }[])[0]!.body).toHaveLength(40_000);
    expect(transitions[1]!.startVersion).toEqual(transitions[0]!.endVersion);
  });

  it("a session over its send budget skips intermediate versions and catches up with the latest", async () => {
    const { engine, sync, open, idle } = setup({ sessionSendBytesPerSecond: 65_536, maxTransitionBytes: 65_536 });
    const client = open("heavy");
    await client.connect();
    await client.watch("a");
    await idle();
    const before = client.frames.length;
    // 20 commits, each changing a list that grows to 20 messages of 2 KB: ~450 KB of updates against a 64 KiB/s budget.
    for (let i = 0; i < 20; i++) await engine.runMutation("messages:send", { chatId: "a", author: "x", body: `${i}`.padEnd(2_000, ".") });
    const sent = client.frames.slice(before).filter((f) => f.type === "Transition");
    // What went out at once is the burst (64 KiB) plus the one Transition that overdrew it, not 20 versions.
    expect(sent.length).toBeLessThan(20);
    expect(sent.reduce((bytes, f) => bytes + JSON.stringify(f).length, 0)).toBeLessThanOrEqual(2 * 65_536);
    expect(sync.counters.sendsPutOff).toBeGreaterThan(0);
    // It is put off, not dropped: the latest state arrives once the budget recovers.
    const deadline = Date.now() + 10_000;
    while (!(client.latest(0) as { body: string }[])[0]?.body.startsWith("19.") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await idle();
    expect((client.latest(0) as { body: string }[])[0]!.body.startsWith("19.")).toBe(true);
    expect(client.closed).toEqual([]);
  });
});

describe("fairness", () => {
  it("a session pipelining 5,000 mutations is held to its pending limit and another session's mutation runs in the next round", async () => {
    // The pending limit is what is tested: the frame throttle (which would close this flood at its 1,201st frame) is lifted.
    const { engine, open, idle } = setup({ maxPendingMutationsPerSession: 1_000, sessionFrameBurst: 10_000, maxThrottledFramesPerSession: 10_000 });
    const flooder = open("flooder");
    const quiet = open("quiet");
    for (const c of [flooder, quiet]) await c.connect();
    for (let i = 0; i < 5_000; i++)
      void flooder.send({ type: "Mutation", requestId: i, udfPath: "messages:send", args: [{ chatId: "flood", author: "f", body: `${i}` }] });
    void quiet.send({ type: "Mutation", requestId: 0, udfPath: "messages:send", args: [{ chatId: "quiet", author: "q", body: "quiet" }] });
    await idle();
    const responses = flooder.frames.filter((f) => f.type === "MutationResponse");
    expect(responses.filter((r) => !r.success)).toHaveLength(4_000);
    const quietTs = decodeTs(quiet.frames.find((f) => f.type === "MutationResponse")!.ts, "ts");
    const floodBefore = responses.filter((r) => r.success && decodeTs(r.ts, "ts") < quietTs).length;
    // Round-robin: one flood mutation ran before it, not the 1,000 queued ahead of it.
    expect(floodBefore).toBeLessThanOrEqual(2);
    expect(engine.store.commitCount()).toBe(1_001);
  });

  it("an oversized Mutation whose request id can be read fails alone; an unreadable oversized frame is still fatal", async () => {
    const { open, idle } = setup({ maxFrameBytes: 1_024 });
    const client = open("big");
    await client.connect();
    await client.send({ type: "Mutation", requestId: 3, udfPath: "messages:send", args: [{ chatId: "a", author: "x", body: "x".repeat(2_000) }] });
    await idle();
    expect(client.frames.find((f) => f.type === "MutationResponse")).toMatchObject({
      requestId: 3,
      success: false,
      result: expect.stringMatching(/Mutation request is too large: Frame of \d+ bytes is larger than the 1024-byte limit/),
    });
    expect(client.closed).toEqual([]);
    await client.send({ type: "Event", padding: "x".repeat(2_000) });
    expect(client.closed).toEqual([{ code: 1008, reason: "ProtocolError" }]);
  });
});

describe("waiting sessions", () => {
  it("a waiting session's Connect and query set are recorded but nothing runs; its mutation waits; admission serves both, in order", async () => {
    const { engine, sync, open, idle } = setup();
    const first = open("first");
    // Opened as waiting (the deployment decides when; here by hand).
    const held = ["w1", "w2"].map((name) => {
      const frames: { type: string; [k: string]: unknown }[] = [];
      const connection: Connection = { send: (f) => frames.push(JSON.parse(f)) > 0, close: () => undefined, saveAttachment: () => undefined };
      const session = sync.open(connection, name, true);
      return { session, frames, send: (m: unknown) => sync.receive(session, JSON.stringify(m)) };
    });
    expect(sync.sessionCount).toBe(1);
    expect(sync.waitingCount).toBe(2);
    await first.connect();
    for (const client of held) {
      await client.send({ type: "Connect", sessionId: client.session.connectionId, connectionCount: 0, lastCloseReason: null });
      await client.send({
        type: "ModifyQuerySet",
        baseVersion: 0,
        newVersion: 1,
        modifications: [{ type: "Add", queryId: 0, udfPath: "messages:list", args: [{ chatId: "a" }] }],
      });
    }
    // A waiting session's mutation is held (its handler does not return until admission).
    const mutated = held[0]!.send({ type: "Mutation", requestId: 0, udfPath: "messages:send", args: [{ chatId: "a", author: "w1", body: "held" }] });
    await idle();
    expect(engine.counters.queryExecutions).toBe(0);
    expect(engine.store.commitCount()).toBe(0);
    for (const client of held) expect(client.frames.filter((f) => f.type !== "Ping")).toEqual([]);
    // Room for one: the first to arrive is let in, served, and its mutation runs.
    let slots = 1;
    expect(sync.admitWaiting(() => slots-- > 0)).toBe(1);
    await mutated;
    await idle();
    expect(held[0]!.frames.find((f) => f.type === "MutationResponse")).toMatchObject({ success: true });
    expect(held[0]!.frames.some((f) => f.type === "Transition")).toBe(true);
    expect(held[1]!.frames).toEqual([]);
    expect(sync.admitWaiting(() => true)).toBe(1);
    expect(sync.admitWaiting(() => true)).toBe(0); // nobody admitted twice
    await idle();
    const transition = held[1]!.frames.find((f) => f.type === "Transition")!;
    expect((transition.modifications as { value: { body: string }[] }[])[0]!.value.map((m) => m.body)).toEqual(["held"]);
  });

  it("a waiting session that closes leaves the queue, and its held mutation runs nothing", async () => {
    const { engine, sync, idle } = setup();
    const connection: Connection = { send: () => true, close: () => undefined, saveAttachment: () => undefined };
    const session = sync.open(connection, "leaver", true);
    await sync.receive(session, JSON.stringify({ type: "Connect", sessionId: "leaver", connectionCount: 0, lastCloseReason: null }));
    const mutated = sync.receive(
      session,
      JSON.stringify({ type: "Mutation", requestId: 0, udfPath: "messages:send", args: [{ chatId: "a", author: "x", body: "never" }] }),
    );
    sync.forget(session);
    await mutated;
    await idle();
    expect(sync.waitingCount).toBe(0);
    expect(engine.store.commitCount()).toBe(0);
    expect(sync.admitWaiting(() => true)).toBe(0);
  });
});

describe("SyncFront sign-in", () => {
  const alice = { tokenIdentifier: "https://issuer.test|alice", subject: "alice", issuer: "https://issuer.test", name: "alice" };

  it("handles a socket's later messages only once its token is checked, in order", async () => {
    let accept: (verified: { identity: typeof alice; expiresAt: number }) => void = () => undefined;
    const checking = new Promise<{ identity: typeof alice; expiresAt: number }>((resolve) => (accept = resolve));
    const { engine, open, idle } = setup({}, { authenticate: () => checking });
    const c = open("c");
    await c.connect();
    // The official client's order on open: Authenticate, then its query set, then pending mutations.
    const handled = [
      c.send({ type: "Authenticate", tokenType: "User", value: "token", baseVersion: 0 }),
      c.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [{ type: "Add", queryId: 0, udfPath: "users:viewer", args: [{}] }] }),
      c.send({ type: "Mutation", requestId: 0, udfPath: "messages:send", args: [{ chatId: "a", author: "mallory", body: "hi" }] }),
    ];
    await new Promise((r) => setTimeout(r, 20));
    expect(engine.counters).toMatchObject({ queryExecutions: 0, mutationExecutions: 0 });
    expect(c.frames).toEqual([]);
    accept({ identity: alice, expiresAt: Date.now() + 60_000 });
    await Promise.all(handled);
    await idle();
    // The query never ran anonymously: every result it was sent is alice's.
    const viewerResults = c.frames
      .flatMap((f) => (f.type === "Transition" ? (f.modifications as { queryId: number; value: unknown }[]) : []))
      .filter((m) => m.queryId === 0);
    expect(viewerResults.map((m) => m.value)).toEqual([{ name: "alice", tokenIdentifier: alice.tokenIdentifier }]);
    expect(c.frames.at(-1)).toMatchObject({ type: "Transition", endVersion: { identity: 1, querySet: 1 } });
    const [message] = (await engine.runQuery("messages:list", { chatId: "a" })).value as { author: string }[];
    expect(message!.author).toBe("alice");
  });

  it("ends a session whose token expired before its next mutation or Transition, with authUpdateAttempted false", async () => {
    let now = 1_000_000;
    const { engine, open, idle } = setup({}, { now: () => now, authenticate: async () => ({ identity: alice, expiresAt: now + 1_000 }) });
    const c = open("c");
    await c.connect();
    await c.send({ type: "Authenticate", tokenType: "User", value: "token", baseVersion: 0 });
    await c.watch("a");
    await idle();
    expect(c.frames.at(-1)).toMatchObject({ type: "Transition", endVersion: { identity: 1 } });
    now += 1_000;
    await c.send({ type: "Mutation", requestId: 0, udfPath: "messages:send", args: [{ chatId: "a", author: "x", body: "late" }] });
    await idle();
    expect(engine.counters.mutationExecutions).toBe(0);
    expect(c.frames.at(-1)).toEqual({ type: "AuthError", error: "Token expired", baseVersion: 0, authUpdateAttempted: false });
    expect(c.closed).toHaveLength(1);
  });

  it("refuses a token with AuthError naming the refused Authenticate's base version", async () => {
    let first = true;
    const { open, idle } = setup(
      {},
      {
        authenticate: async () => {
          if (first) return ((first = false), { identity: alice, expiresAt: Date.now() + 60_000 });
          throw new AuthenticationError("InvalidToken", "bad signature");
        },
      },
    );
    const c = open("c");
    await c.connect();
    await c.send({ type: "Authenticate", tokenType: "User", value: "good", baseVersion: 0 });
    // A refresh sent before the first was confirmed: the error must name base 1, or the client would ignore it.
    await c.send({ type: "Authenticate", tokenType: "User", value: "bad", baseVersion: 1 });
    await idle();
    expect(c.frames.find((f) => f.type === "AuthError")).toEqual({ type: "AuthError", error: "bad signature", baseVersion: 1, authUpdateAttempted: true });
    expect(c.closed).toHaveLength(1);
  });
});
