import { describe, expect, it } from "vitest";
import { Engine, MemoryStore, registerModules } from "../engine/index.ts";
import schema from "../app/schema.ts";
import * as messages from "../app/messages.ts";
import { SyncServer, type SyncKnobs } from "./sync-server.ts";
import { MemorySyncStorage } from "./storage.ts";
import type { Connection, SessionAttachment } from "./session.ts";

const KNOBS: SyncKnobs = {
  maxFrameBytes: 1_048_576,
  idlePingMs: 30_000,
  maxClockAheadMs: 60_000,
  resubscribeRate: 100_000,
  resubscribeBurst: 100_000,
  queryResultCacheMB: 16,
  maxQueriesPerSession: 1_000,
  maxPendingMutationsPerSession: 1_000,
  refreshQueueLimit: 10_000,
  refreshSliceQueryRuns: 100,
  refreshSliceTransitions: 1_000,
  maxTransitionBytes: 16_777_216,
  maxSessionBufferBytes: 33_554_432,
};

function setup(knobs: Partial<SyncKnobs> = {}) {
  const engine = new Engine({ schema, functions: registerModules({ messages }), store: new MemoryStore() });
  const sync = new SyncServer({ engine, storage: new MemorySyncStorage(), knobs: () => ({ ...KNOBS, ...knobs }), advanceTimestamp: () => undefined, log: () => undefined });
  const open = (name: string) => {
    const frames: { type: string; [k: string]: unknown }[] = [];
    const closed: { code: number; reason: string }[] = [];
    const connection: Connection = {
      send: (f) => frames.push(JSON.parse(f)) > 0,
      bufferedBytes: () => null,
      close: (code, reason) => closed.push({ code, reason }),
      saveAttachment: (_a: SessionAttachment) => undefined,
    };
    const session = sync.open(connection, name);
    const send = (message: unknown) => sync.receive(session, JSON.stringify(message));
    const latest = (queryId: number) => {
      for (let i = frames.length - 1; i >= 0; i--) {
        const m = frames[i]!;
        if (m.type !== "Transition") continue;
        const mod = (m.modifications as { queryId: number; value: unknown }[]).find((x) => x.queryId === queryId);
        if (mod) return mod.value;
      }
      return undefined;
    };
    return { session, frames, closed, send, latest };
  };
  const idle = async () => {
    while (sync.scheduler.waiting > 0) await new Promise((r) => setTimeout(r, 1));
    await engine.exclusive(async () => undefined);
  };
  return { engine, sync, open, idle };
}

describe("SyncServer", () => {
  it("runs a query once for every session subscribed to it", async () => {
    const { engine, open, idle } = setup();
    const clients = Array.from({ length: 50 }, (_, i) => open(`c${i}`));
    for (const c of clients) {
      await c.send({ type: "Connect", sessionId: c.session.connectionId, connectionCount: 0, lastCloseReason: null });
      await c.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [{ type: "Add", queryId: 0, udfPath: "messages:list", args: [{ chatId: "a" }] }] });
    }
    await idle();
    expect(engine.counters.queryExecutions).toBe(1);
    await engine.runMutation("messages:send", { chatId: "a", author: "x", body: "hi" });
    await idle();
    expect(engine.counters.queryExecutions).toBe(2); // the first run and one shared re-run
    for (const c of clients) expect((c.latest(0) as { body: string }[])[0]?.body).toBe("hi");
  });

  it("serves correct results after the result cache evicted them, by re-running", async () => {
    const { engine, sync, open, idle } = setup({ queryResultCacheMB: 1 });
    const big = "x".repeat(30_000);
    for (let chat = 0; chat < 40; chat++) await engine.runMutation("messages:send", { chatId: `c${chat}`, author: "x", body: `${big}${chat}` });
    const first = open("first");
    await first.send({ type: "Connect", sessionId: "s1", connectionCount: 0, lastCloseReason: null });
    await first.send({
      type: "ModifyQuerySet",
      baseVersion: 0,
      newVersion: 1,
      modifications: Array.from({ length: 40 }, (_, chat) => ({ type: "Add", queryId: chat, udfPath: "messages:list", args: [{ chatId: `c${chat}` }] })),
    });
    await idle();
    expect(sync.instances.results.evictions).toBeGreaterThan(0);
    expect(sync.instances.results.bytes).toBeLessThanOrEqual(1_048_576 + 70_000);
    // A second session subscribing to the same queries (most recently cached first) gets the same
    // results, re-running only the evicted ones.
    const runsBefore = engine.counters.queryExecutions;
    const second = open("second");
    await second.send({ type: "Connect", sessionId: "s2", connectionCount: 0, lastCloseReason: null });
    await second.send({
      type: "ModifyQuerySet",
      baseVersion: 0,
      newVersion: 1,
      modifications: Array.from({ length: 40 }, (_, i) => 39 - i).map((chat) => ({ type: "Add", queryId: chat, udfPath: "messages:list", args: [{ chatId: `c${chat}` }] })),
    });
    await idle();
    const reRuns = engine.counters.queryExecutions - runsBefore;
    expect(reRuns).toBeGreaterThan(0);
    expect(reRuns).toBeLessThan(40);
    for (let chat = 0; chat < 40; chat++) expect(second.latest(chat)).toEqual(first.latest(chat));
  });
});

describe("per-session limits", () => {
  it("refuses a query set past maxQueriesPerSession as a protocol error for that socket only", async () => {
    const { open, idle } = setup({ maxQueriesPerSession: 3 });
    const add = (n: number, from = 0) =>
      Array.from({ length: n }, (_, i) => ({ type: "Add", queryId: from + i, udfPath: "messages:list", args: [{ chatId: `c${from + i}` }] }));
    const ok = open("ok");
    await ok.send({ type: "Connect", sessionId: "ok", connectionCount: 0, lastCloseReason: null });
    await ok.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: add(3) });
    const greedy = open("greedy");
    await greedy.send({ type: "Connect", sessionId: "greedy", connectionCount: 0, lastCloseReason: null });
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
    await client.send({ type: "Connect", sessionId: "busy", connectionCount: 0, lastCloseReason: null });
    const sent = Array.from({ length: 5 }, (_, i) => client.send({ type: "Mutation", requestId: i, udfPath: "messages:send", args: [{ chatId: "a", author: "x", body: `${i}` }] }));
    await Promise.all(sent);
    await idle();
    const responses = client.frames.filter((f) => f.type === "MutationResponse");
    expect(responses.filter((r) => r.success)).toHaveLength(2);
    expect(responses.filter((r) => !r.success).map((r) => r.result)).toEqual(Array(3).fill(expect.stringMatching(/Too many concurrent mutations.*2 are waiting/)));
    expect(client.closed).toEqual([]);
  });
});
