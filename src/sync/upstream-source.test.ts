/**
 * Sync shards against one database object, in plain Node: the database
 * object's front with shards' peer sessions (`ShardOutbox`), three
 * shard fronts and their clients, joined by asynchronous calls that a test
 * can lose or repeat. Inside workerd the same parts are joined by RPC.
 */
import { describe, expect, it } from "vitest";
import { Engine, loadApp, MemoryStore, registerModules, Schema } from "../engine/index.ts";
import { app as generated } from "../../convex/_generated/modules.js";
import { localFront, type SyncKnobs } from "./local-source.ts";
import { MemorySyncStorage } from "./storage.ts";
import { latestResult, TEST_SYNC_KNOBS } from "./testing.ts";
import { ShardOutbox } from "./shard-outbox.ts";
import { shardFront, type UpstreamKnobs, type UpstreamSource } from "./upstream-source.ts";
import type { SyncFront } from "./front.ts";
import type { SyncSession } from "./session.ts";
import { decodeTs, encodeTs } from "../protocol/sync.ts";

const app = await loadApp(generated);

const KNOBS: SyncKnobs & UpstreamKnobs = TEST_SYNC_KNOBS;

type Frame = { type: string; [key: string]: unknown };
const hop = () => new Promise((resolve) => setTimeout(resolve, 0));

/** What happens to pushes on their way to a shard (the test's hand in the network). */
type PushFault = (seq: number) => "deliver" | "lose" | "twice";

/**
 * `refuseOpens`: the first opens of a peer session (on any shard) fail, as an unreachable database object would.
 * `rpcLimit`: a call either way carrying more characters of frames fails, as the runtime's RPC size limit does.
 */
function setup(shardCount: number, { refuseOpens = 0, knobs: overrides = {} as Partial<SyncKnobs & UpstreamKnobs>, rpcLimit = Infinity } = {}) {
  const knobs = { ...KNOBS, ...overrides };
  /** Characters of frames each call carried, up (shard to database object) and down (pushes). */
  const calls = { up: [] as number[], down: [] as number[] };
  const carry = (direction: "up" | "down", frames: string[]) => {
    const chars = frames.reduce((n, f) => n + f.length, 0);
    if (chars > rpcLimit) throw new Error(`RPC of ${chars} characters is over the limit`);
    calls[direction].push(chars);
  };
  /** Waits the shards asked for before retrying (resolved at once: time is the test's). */
  const delays: number[] = [];
  /** Timestamps shards asked the database object to move its clock past. */
  const advances: bigint[] = [];
  let refusals = refuseOpens;
  const store = new MemoryStore();
  const syncStorage = new MemorySyncStorage();
  const makeDatabase = () => {
    const engine = new Engine({ schema: new Schema(app.schema), functions: registerModules(app.modules), store });
    const sync = localFront({ engine, storage: syncStorage, knobs: () => knobs, advanceTimestamp: () => undefined, log: () => undefined });
    return { engine, sync, internal: new Map<string, SyncSession>(), outboxes: [] as ShardOutbox[] };
  };
  let database = makeDatabase();
  const shards = Array.from({ length: shardCount }, (_, k) => {
    let fault: PushFault = () => "deliver";
    let opened = 0;
    const shard: SyncFront<UpstreamSource> = shardFront({
      storage: new MemorySyncStorage(),
      delay: async (ms) => void delays.push(ms),
      random: () => 1,
      knobs: () => knobs,
      log: () => undefined,
      authenticate: async (token) => ({
        identity: { tokenIdentifier: `test|${token}`, subject: token, issuer: "test", name: token },
        expiresAt: Date.now() + 60_000,
      }),
      link: {
        open: async () => {
          await hop();
          if (refusals > 0) {
            refusals--;
            throw new Error("the database object is unreachable");
          }
          const db = database;
          const connectionId = `shard-${k}-${++opened}`;
          const outbox: ShardOutbox = new ShardOutbox(
            connectionId,
            "epoch",
            () => ({
              deliver: async (id, epoch, seq, frames) => {
                await hop();
                carry("down", frames);
                const what = fault(seq);
                if (what === "lose") return true;
                const delivered = await shard.source.deliver(id, epoch, seq, frames);
                if (what === "twice") await shard.source.deliver(id, epoch, seq, frames);
                return delivered;
              },
            }),
            () => db.internal.get(connectionId) && db.sync.drop(db.internal.get(connectionId)!, 1000, "gone"),
            undefined,
            () => knobs.maxPeerBatchBytes,
          );
          db.outboxes.push(outbox);
          db.internal.set(connectionId, db.sync.openPeer(outbox, connectionId));
          return connectionId;
        },
        send: async (connectionId, frames) => {
          await hop();
          carry("up", frames);
          const session = database.internal.get(connectionId);
          if (!session || session.closed) return false;
          for (const frame of frames) await database.sync.receive(session, frame);
          return true;
        },
        // What the deployment object does (advanceShardTimestamp): its clock moves, the peer is owed a Transition.
        advanceTimestamp: async (connectionId, ts) => {
          await hop();
          advances.push(ts);
          store.advanceTimestamp(ts);
          const peer = database.internal.get(connectionId);
          if (peer && !peer.closed) database.sync.owe(peer);
        },
      },
    });
    return { shard, setFault: (f: PushFault) => (fault = f) };
  });

  /** A client on shard `k`: its frames, and helpers over them. */
  const client = async (k: number, name: string, token?: string, maxObservedTimestamp?: string) => {
    const frames: Frame[] = [];
    const closed: { code: number; reason: string }[] = [];
    const session = shards[k]!.shard.open(
      { send: (f) => frames.push(JSON.parse(f)) > 0, close: (code, reason) => void closed.push({ code, reason }), saveAttachment: () => undefined },
      name,
    );
    const send = (message: unknown) => shards[k]!.shard.receive(session, JSON.stringify(message));
    await send({ type: "Connect", sessionId: name, connectionCount: 0, lastCloseReason: null, ...(maxObservedTimestamp ? { maxObservedTimestamp } : {}) });
    if (token) await send({ type: "Authenticate", tokenType: "User", value: token, baseVersion: 0 });
    let querySet = 0;
    const latest = (queryId: number) => latestResult(frames, queryId);
    return {
      frames,
      closed,
      latest,
      watch: (queryId: number, udfPath: string, args: unknown) =>
        send({ type: "ModifyQuerySet", baseVersion: querySet, newVersion: ++querySet, modifications: [{ type: "Add", queryId, udfPath, args: [args] }] }),
      /** Queries 0, 1, ... of `argsList`, in one query set change. */
      watchMany: (udfPath: string, argsList: unknown[]) =>
        send({
          type: "ModifyQuerySet",
          baseVersion: querySet,
          newVersion: ++querySet,
          modifications: argsList.map((args, queryId) => ({ type: "Add", queryId, udfPath, args: [args] })),
        }),
      mutate: (requestId: number, udfPath: string, args: unknown) => send({ type: "Mutation", requestId, udfPath, args: [args] }),
      /** Every Transition starts where the one before ended, and timestamps never go back. */
      chainProblems: () => {
        const problems: string[] = [];
        let held = { querySet: 0, ts: "AAAAAAAAAAA=", identity: 0 };
        for (const m of frames.filter((f) => f.type === "Transition")) {
          const start = m.startVersion as typeof held;
          if (JSON.stringify(start) !== JSON.stringify(held)) problems.push(`start ${JSON.stringify(start)} != ${JSON.stringify(held)}`);
          if (decodeTs(m.endVersion && (m.endVersion as typeof held).ts, "ts") < decodeTs(held.ts, "ts")) problems.push("ts went back");
          held = m.endVersion as typeof held;
        }
        return problems;
      },
      /** Updates of query `queryId` that repeat the value sent just before. */
      repeatedUpdates: (queryId: number) => {
        const values = frames
          .filter((f) => f.type === "Transition")
          .flatMap((f) =>
            (f.modifications as { queryId: number; type: string; value: unknown }[]).filter((m) => m.queryId === queryId && m.type === "QueryUpdated"),
          )
          .map((m) => JSON.stringify(m.value));
        return values.filter((v, i) => i > 0 && v === values[i - 1]).length;
      },
    };
  };
  /** Until the database object, the shards and the hops in between are quiet; false if they are not within `maxMs`. */
  const settle = async (maxMs = Infinity) => {
    const deadline = Date.now() + maxMs;
    for (let quiet = 0; quiet < 3;) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 2));
      const quietNow =
        database.sync.scheduler.settled &&
        database.engine.functionsIdle &&
        database.outboxes.every((outbox) => outbox.idle) &&
        shards.every((s) => s.shard.source.idle && s.shard.scheduler.settled);
      quiet = quietNow ? quiet + 1 : 0;
    }
    return true;
  };
  return {
    shards,
    client,
    settle,
    delays,
    advances,
    calls,
    get engine() {
      return database.engine;
    },
    /** The database object restarts: its memory (internal sessions included) is gone, its storage is not. */
    restartDatabase: () => {
      database = makeDatabase();
    },
  };
}

const bodies = (value: unknown) => (value as { body: string }[]).map((m) => m.body);

describe("sync shards (in Node)", () => {
  it("one commit to a query watched on every shard runs it once and reaches every session", async () => {
    const t = setup(3);
    const clients = [];
    for (let i = 0; i < 12; i++) {
      const c = await t.client(i % 3, `c${i}`);
      await c.watch(0, "messages:list", { chatId: "hot" });
      clients.push(c);
    }
    await t.settle();
    expect(t.shards.map((s) => s.shard.sessionCount)).toEqual([4, 4, 4]);
    const before = t.engine.counters.queryExecutions;
    await t.engine.runMutation("messages:send", { chatId: "hot", author: "a", body: "to everyone" });
    await t.settle();
    expect(t.engine.counters.queryExecutions - before).toBe(1);
    for (const c of clients) {
      expect(bodies(c.latest(0))).toEqual(["to everyone"]);
      expect(c.chainProblems()).toEqual([]);
    }
  });

  it("a client's own mutation is in its subscription when its Transition at the commit's ts arrives", async () => {
    const t = setup(3);
    const writer = await t.client(1, "writer");
    await writer.watch(0, "messages:list", { chatId: "own" });
    await t.settle();
    await writer.mutate(0, "messages:send", { chatId: "own", author: "w", body: "mine" });
    await t.settle();
    const responseAt = writer.frames.findIndex((f) => f.type === "MutationResponse");
    expect(writer.frames[responseAt]).toMatchObject({ success: true, requestId: 0 });
    const ts = decodeTs(writer.frames[responseAt]!.ts, "ts");
    const confirming = writer.frames.slice(responseAt).find((f) => f.type === "Transition" && decodeTs((f.endVersion as { ts: string }).ts, "ts") >= ts)!;
    expect(confirming).toBeDefined();
    // The Transition that resolves the mutation carries it (or an earlier one did).
    const seenBy = writer.frames.slice(0, writer.frames.indexOf(confirming) + 1);
    const lastList = seenBy
      .flatMap((f) => (f.type === "Transition" ? (f.modifications as { queryId: number; value: unknown }[]) : []))
      .filter((m) => m.queryId === 0)
      .at(-1);
    expect(bodies(lastList!.value)).toEqual(["mine"]);
  });

  it("repairs a lost push and ignores a repeated one, with no wrong or repeated update", async () => {
    const t = setup(2);
    const a = await t.client(0, "a");
    const b = await t.client(1, "b");
    for (const c of [a, b]) await c.watch(0, "messages:list", { chatId: "x" });
    await t.settle();
    const once = (what: "lose" | "twice") => {
      let done = false;
      return (seq: number) => (seq === 3 && !done ? ((done = true), what) : "deliver");
    };
    t.shards[0]!.setFault(once("lose"));
    t.shards[1]!.setFault(once("twice"));
    for (let i = 0; i < 5; i++) {
      await t.engine.runMutation("messages:send", { chatId: "x", author: "w", body: `m${i}` });
      await t.settle();
    }
    expect(t.shards[0]!.shard.source.counters.resyncs).toBeGreaterThanOrEqual(2); // the first open, then the repair
    expect(t.shards[1]!.shard.source.counters.pushesRejected).toBeGreaterThanOrEqual(1);
    for (const c of [a, b]) {
      expect(bodies(c.latest(0))).toEqual(["m4", "m3", "m2", "m1", "m0"]);
      expect(c.chainProblems()).toEqual([]);
      expect(c.repeatedUpdates(0)).toBe(0);
    }
  });

  it("survives a database object restart: shards add their distinct queries again, once per query", async () => {
    const t = setup(3);
    const clients = [];
    for (let i = 0; i < 9; i++) {
      const c = await t.client(i % 3, `r${i}`);
      await c.watch(0, "messages:list", { chatId: "r" });
      clients.push(c);
    }
    await t.engine.runMutation("messages:send", { chatId: "r", author: "w", body: "before" });
    await t.settle();
    t.restartDatabase();
    // The database object tells its shards (inside workerd: from its table of shards when it starts).
    await Promise.all(t.shards.map((s) => s.shard.source.resync("the database object restarted")));
    await t.settle();
    // One run per distinct query, not per session: the three shards share the one instance.
    expect(t.engine.counters.queryExecutions).toBe(1);
    await t.engine.runMutation("messages:send", { chatId: "r", author: "w", body: "after" });
    await t.settle();
    for (const c of clients) {
      expect(bodies(c.latest(0))).toEqual(["after", "before"]);
      expect(c.chainProblems()).toEqual([]);
      expect(c.repeatedUpdates(0)).toBe(0);
    }
  });

  it("runs each client's queries and mutations as that client, across shards", async () => {
    const t = setup(2);
    const ann = await t.client(0, "ann-session", "ann");
    const bob = await t.client(1, "bob-session", "bob");
    const anonymous = await t.client(1, "anon");
    for (const c of [ann, bob, anonymous]) await c.watch(0, "users:viewer", {});
    await ann.watch(1, "messages:list", { chatId: "who" });
    await t.settle();
    expect(ann.latest(0)).toMatchObject({ name: "ann" });
    expect(bob.latest(0)).toMatchObject({ name: "bob" });
    expect(anonymous.latest(0)).toBeNull();
    await bob.mutate(0, "messages:send", { chatId: "who", author: "pretender", body: "hi" });
    await t.settle();
    expect((ann.latest(1) as { author: string }[])[0]!.author).toBe("bob");
  });

  it("serves 2,000 distinct queries and 1,000 signed-in users on one shard: the peer session has limits of its own and adds them in chunks", async () => {
    const t = setup(1);
    const anonymous = [];
    for (let i = 0; i < 2_000; i++) {
      const c = await t.client(0, `a${i}`);
      await c.watch(0, "messages:list", { chatId: `chat${i}` });
      anonymous.push(c);
    }
    // Signed in, each is its own caller: 1,000 more distinct queries upstream, each naming its caller.
    const signedIn = [];
    for (let i = 0; i < 1_000; i++) {
      const c = await t.client(0, `u${i}`, `user${i}`);
      await c.watch(0, "messages:list", { chatId: "shared" });
      signedIn.push(c);
    }
    await t.settle();
    expect(t.shards[0]!.shard.source.heldCount).toBe(3_000);
    await t.engine.runMutation("messages:send", { chatId: "chat1999", author: "w", body: "to the last chat" });
    await t.engine.runMutation("messages:send", { chatId: "shared", author: "w", body: "to every signed-in user" });
    await t.settle();
    expect(bodies(anonymous[1_999]!.latest(0))).toEqual(["to the last chat"]);
    for (const c of signedIn) expect(bodies(c.latest(0))).toEqual(["to every signed-in user"]);
    // A resync adds all 3,000 again, in frames of at most peerModificationsPerFrame, and nobody sees a repeat.
    await t.shards[0]!.shard.source.resync("test");
    await t.settle();
    await t.engine.runMutation("messages:send", { chatId: "chat0", author: "w", body: "after the resync" });
    await t.settle();
    expect(bodies(anonymous[0]!.latest(0))).toEqual(["after the resync"]);
    for (const c of [...anonymous.slice(0, 50), ...signedIn.slice(0, 50)]) {
      expect(c.frames.filter((f) => f.type === "FatalError")).toEqual([]);
      expect(c.chainProblems()).toEqual([]);
      expect(c.repeatedUpdates(0)).toBe(0);
    }
  }, 60_000);

  it("retries an upstream that refuses five times with a growing backoff, then answers every pending mutation", async () => {
    const t = setup(1, { refuseOpens: 5 });
    const writers = [await t.client(0, "w1"), await t.client(0, "w2")];
    await writers[0]!.watch(0, "messages:list", { chatId: "retry" });
    await writers[0]!.mutate(0, "messages:send", { chatId: "retry", author: "w1", body: "one" });
    await writers[1]!.mutate(0, "messages:send", { chatId: "retry", author: "w2", body: "two" });
    await writers[1]!.mutate(1, "messages:send", { chatId: "retry", author: "w2", body: "three" });
    await t.settle();
    // peerRetryMinMs 1, doubling, capped at peerRetryMaxMs 10 (jitter fixed at its top here).
    expect(t.delays).toEqual([1, 2, 4, 8, 10]);
    expect(t.shards[0]!.shard.source.counters.upstreamRetries).toBe(5);
    const answered = (c: (typeof writers)[number]) => c.frames.filter((f) => f.type === "MutationResponse" && f.success === true).map((f) => f.requestId);
    expect(answered(writers[0]!)).toEqual([0]);
    expect(answered(writers[1]!)).toEqual([0, 1]);
    expect(bodies(writers[0]!.latest(0)).sort()).toEqual(["one", "three", "two"]);
  });

  it("a resync's backlog larger than one RPC goes up in several calls below maxPeerBatchBytes, and the resync does not repeat (issue 28 finding 2)", async () => {
    // Calls over 70,000 characters fail, as the runtime's 32 MiB RPC limit does at scale.
    const t = setup(1, { knobs: { maxPeerBatchBytes: 65_536 }, rpcLimit: 70_000 });
    const clients = [];
    for (let i = 0; i < 40; i++) {
      const c = await t.client(0, `c${i}`);
      // Distinct queries with large arguments: 40 x 5,000 characters to add again on a resync.
      await c.watch(0, "messages:list", { chatId: `${i}:${"x".repeat(5_000)}` });
      clients.push(c);
    }
    expect(await t.settle(5_000)).toBe(true);
    const source = t.shards[0]!.shard.source;
    const callsBefore = t.calls.up.length;
    void source.resync("test");
    expect(await t.settle(5_000)).toBe(true);
    // The first open, and the one asked for: no resync repeats a call that cannot go.
    expect(source.counters.resyncs).toBe(2);
    expect(t.calls.up.length - callsBefore).toBeGreaterThan(3);
    expect(Math.max(...t.calls.up)).toBeLessThanOrEqual(65_536);
    // The new peer session holds every query: a write reaches its client.
    await t.engine.runMutation("messages:send", { chatId: `39:${"x".repeat(5_000)}`, author: "w", body: "after the resync" });
    expect(await t.settle(5_000)).toBe(true);
    expect(bodies(clients[39]!.latest(0))).toEqual(["after the resync"]);
  });

  it("a shard's held results stay within shardResultCacheBytes: results every holder has seen are dropped and asked for again when a client needs them, with no loop (issue 28 finding 2)", async () => {
    const t = setup(1, { knobs: { shardResultCacheBytes: 1_048_576 } });
    // 40 results of about 60 kB each in memory (UTF-16): over twice the budget.
    for (let chat = 0; chat < 40; chat++)
      await t.engine.runMutation("messages:send", { chatId: `c${chat}`, author: "x", body: `${chat}:${"x".repeat(30_000)}` });
    const first = await t.client(0, "first");
    await first.watchMany(
      "messages:list",
      Array.from({ length: 40 }, (_, chat) => ({ chatId: `c${chat}` })),
    );
    expect(await t.settle(5_000)).toBe(true);
    const source = t.shards[0]!.shard.source;
    for (let chat = 0; chat < 40; chat++) expect(bodies(first.latest(chat))[0]!.startsWith(`${chat}:`)).toBe(true);
    // All 40 came in one push and went out in one Transition: none was dropped before the client's turn took it.
    const updates = first.frames.filter((f) => f.type === "Transition").map((f) => (f.modifications as unknown[]).length);
    expect(updates.filter((n) => n > 0)).toEqual([40]);
    expect(source.resultBytes).toBeLessThanOrEqual(1_048_576);
    expect(source.resultEvictions).toBeGreaterThan(0);
    // A newcomer needs them all: the dropped ones are asked for again, once, and it gets the same results.
    const second = await t.client(0, "second");
    for (let chat = 0; chat < 40; chat++) await second.watch(chat, "messages:list", { chatId: `c${chat}` });
    expect(await t.settle(5_000)).toBe(true);
    for (let chat = 0; chat < 40; chat++) expect(second.latest(chat)).toEqual(first.latest(chat));
    expect(source.resultBytes).toBeLessThanOrEqual(1_048_576);
    expect(source.counters.resyncs).toBe(1);
    expect(second.chainProblems()).toEqual([]);
    // Updates still reach both.
    await t.engine.runMutation("messages:send", { chatId: "c0", author: "x", body: "new" });
    expect(await t.settle(5_000)).toBe(true);
    for (const c of [first, second]) expect(bodies(c.latest(0))[0]).toBe("new");
  });

  it("pushes down go in several numbered calls below maxPeerBatchBytes, in order", async () => {
    const delivered: { seq: number; frames: string[] }[] = [];
    const outbox = new ShardOutbox(
      "s",
      "e",
      () => ({ deliver: async (_id, _epoch, seq, frames) => delivered.push({ seq, frames: [...frames] }) > 0 }),
      () => undefined,
      undefined,
      () => 25_000,
    );
    const frames = Array.from({ length: 10 }, (_, i) => `${i}`.padEnd(10_000, "x"));
    for (const frame of frames) outbox.send(frame);
    while (!outbox.idle) await hop();
    expect(delivered.map((push) => push.seq)).toEqual(delivered.map((_, i) => i + 1));
    expect(delivered.length).toBeGreaterThan(2);
    for (const push of delivered) expect(push.frames.join("").length).toBeLessThanOrEqual(25_000);
    expect(delivered.flatMap((push) => push.frames)).toEqual(frames);
  });

  it("a shard refuses a client's query set change past maxQueriesPerShard (1013, that socket only) instead of having its peer session refused upstream", async () => {
    const t = setup(1, { knobs: { maxQueriesPerShard: 2 } });
    const a = await t.client(0, "a");
    await a.watch(0, "messages:list", { chatId: "one" });
    await a.watch(1, "messages:list", { chatId: "two" });
    const b = await t.client(0, "b");
    await b.watch(0, "messages:list", { chatId: "three" });
    expect(b.closed).toEqual([{ code: 1013, reason: expect.stringMatching(/too many queries held here/) }]);
    expect(await t.settle(2_000)).toBe(true);
    const source = t.shards[0]!.shard.source;
    expect(source.heldCount).toBe(2);
    expect(source.counters.resyncs).toBe(1); // the first open only
    // A query already held is accepted, and the shard's clients are served.
    const c = await t.client(0, "c");
    await c.watch(0, "messages:list", { chatId: "two" });
    await t.engine.runMutation("messages:send", { chatId: "two", author: "w", body: "still served" });
    expect(await t.settle(2_000)).toBe(true);
    for (const client of [a, c]) expect(bodies(client.latest(client === a ? 1 : 0))).toEqual(["still served"]);
    expect(a.closed).toEqual([]);
  });

  it("checks Connect.maxObservedTimestamp as the object does: a newer ts moves the deployment's clock once, an absurd one closes with 1011", async () => {
    const t = setup(1);
    const first = await t.client(0, "first");
    await first.watch(0, "messages:list", { chatId: "clock" });
    await t.settle();
    const ahead = BigInt(Date.now() + 5_000) * 1_000_000n;
    const encoded = (ts: bigint) => encodeTs(ts);
    // Two clients that saw newer timestamps elsewhere (another shard, before a reset): one call for the newer one.
    const seen = [await t.client(0, "seen-late", undefined, encoded(ahead)), await t.client(0, "seen-earlier", undefined, encoded(ahead - 1_000n))];
    for (const c of seen) await c.watch(0, "messages:list", { chatId: "clock" });
    await t.settle();
    expect(t.advances).toEqual([ahead]);
    // The shard was pushed a Transition at the moved clock, so its clients' results are at or past what they saw.
    for (const c of seen) {
      const transitions = c.frames.filter((f) => f.type === "Transition");
      expect(decodeTs((transitions.at(-1)!.endVersion as { ts: string }).ts, "ts")).toBeGreaterThanOrEqual(ahead);
      expect(c.chainProblems()).toEqual([]);
    }
    const absurd = await t.client(0, "absurd", undefined, encoded(BigInt(Date.now() + 3_600_000) * 1_000_000n));
    expect(absurd.closed).toEqual([{ code: 1011, reason: "InternalServerError: maxObservedTimestamp is ahead of this deployment" }]);
    expect(t.advances).toEqual([ahead]);
  });
});
