/**
 * The deployment's query cache (issue 27 item 4): one-shot queries (HTTP, an
 * action's `ctx.runQuery`) answered from the shared query instances without a
 * run while no commit has written into what they read.
 */
import { describe, expect, it } from "vitest";
import { queryGeneric } from "convex/server";
import { Engine, FunctionError, loadApp, MemoryStore, registerModules, Schema, type UserIdentity } from "../engine/index.ts";
import { app as generated } from "../../convex/_generated/modules.js";
import { localFront, type SyncKnobs } from "./local-source.ts";
import { MemorySyncStorage } from "./storage.ts";
import { latestResult, TEST_SYNC_KNOBS } from "./testing.ts";
import type { Connection } from "./session.ts";

const app = await loadApp(generated);

/** Queries that read the clock, and one that does not. */
const clock = {
  now: queryGeneric({ args: {}, handler: async () => Date.now() }),
  date: queryGeneric({ args: {}, handler: async () => new Date().getTime() }),
  constant: queryGeneric({ args: {}, handler: async () => 1 }),
};

function setup(knobs: Partial<SyncKnobs> = {}, now: () => number = Date.now) {
  const functions = registerModules({ ...app.modules, clock });
  const engine = new Engine({ schema: new Schema(app.schema), functions, store: new MemoryStore() });
  const sync = localFront({
    engine,
    storage: new MemorySyncStorage(),
    knobs: () => ({ ...TEST_SYNC_KNOBS, ...knobs }),
    advanceTimestamp: () => undefined,
    log: () => undefined,
    now,
  });
  const runs = () => engine.counters.queryExecutions;
  const list = async (chatId: string) => (await engine.query("messages:list", { chatId })).value as { body: string }[];
  return { engine, sync, runs, list };
}

const ada: UserIdentity = { tokenIdentifier: "https://issuer|ada", subject: "ada", issuer: "https://issuer", name: "Ada" };
const bob: UserIdentity = { tokenIdentifier: "https://issuer|bob", subject: "bob", issuer: "https://issuer", name: "Bob" };

describe("one-shot queries answered from the shared instances", () => {
  it("answers a repeat call without a run", async () => {
    const { engine, runs, list } = setup();
    await engine.runMutation("messages:send", { chatId: "a", author: "x", body: "hi" });
    expect((await list("a")).map((m) => m.body)).toEqual(["hi"]);
    expect(runs()).toBe(1);
    for (let i = 0; i < 5; i++) expect((await list("a")).map((m) => m.body)).toEqual(["hi"]);
    expect(runs()).toBe(1);
    // Other arguments are another query.
    await list("b");
    expect(runs()).toBe(2);
  });

  it("runs again after a commit into what it read, and not after one outside it", async () => {
    const { engine, runs, list } = setup();
    await list("a");
    expect(runs()).toBe(1);
    await engine.runMutation("messages:send", { chatId: "b", author: "x", body: "elsewhere" });
    expect(await list("a")).toEqual([]);
    expect(runs()).toBe(1);
    await engine.runMutation("messages:send", { chatId: "a", author: "x", body: "here" });
    expect((await list("a")).map((m) => m.body)).toEqual(["here"]);
    expect(runs()).toBe(2);
    await list("a");
    expect(runs()).toBe(2);
  });

  it("keys a query that reads the identity by the caller's identity", async () => {
    const { engine, runs } = setup();
    const viewer = async (identity: UserIdentity | null) => (await engine.query("users:viewer", {}, { identity })).value as { name: string } | null;
    expect(await viewer(null)).toBeNull();
    // The shared (anonymous) result is not Ada's: her call runs as her, and from then on the query is keyed by identity.
    expect((await viewer(ada))?.name).toBe("Ada");
    expect((await viewer(bob))?.name).toBe("Bob");
    const afterEach = runs();
    expect((await viewer(ada))?.name).toBe("Ada");
    expect((await viewer(bob))?.name).toBe("Bob");
    expect(await viewer(null)).toBeNull();
    expect(runs()).toBe(afterEach);
  });

  it("answers an action's ctx.runQuery from the cache, as the action's caller", async () => {
    const { engine, runs } = setup();
    expect((await engine.runAction("users:greet", {}, { identity: ada })).value).toBe("Hello, Ada");
    const after = runs();
    expect((await engine.runAction("users:greet", {}, { identity: ada })).value).toBe("Hello, Ada");
    expect((await engine.runAction("users:greet", {}, { identity: null })).value).toBe("Hello, stranger");
    // Ada's first call ran the shared instance (anonymously, then as her once it read the identity): both answers are held.
    expect(runs()).toBe(after);
  });

  it("serves a result that read the clock only while it is young (5 s, as Convex)", async () => {
    let now = 1_000_000;
    const { engine, runs } = setup({}, () => now);
    for (const path of ["clock:now", "clock:date", "clock:constant"]) {
      const before = runs();
      await engine.query(path, {});
      await engine.query(path, {});
      expect(runs()).toBe(before + 1);
    }
    now += 5_001;
    const before = runs();
    for (const path of ["clock:now", "clock:date", "clock:constant"]) await engine.query(path, {});
    // The two that read the clock ran again; the constant did not.
    expect(runs()).toBe(before + 2);
  });

  it("never serves a failure from the cache", async () => {
    const { engine, runs, list } = setup();
    const call = () => engine.query("messages:list", { chatId: 1 as unknown as string });
    await expect(call()).rejects.toBeInstanceOf(FunctionError);
    await expect(call()).rejects.toBeInstanceOf(FunctionError);
    expect(runs()).toBe(2);
    // The same function with valid arguments is cached as usual.
    await list("a");
    await list("a");
    expect(runs()).toBe(3);
  });

  it("gives a session that subscribes to a cached query its result without a run", async () => {
    const { engine, sync, runs, list } = setup();
    await engine.runMutation("messages:send", { chatId: "a", author: "x", body: "hi" });
    await list("a");
    expect(runs()).toBe(1);
    const frames: { type: string; [k: string]: unknown }[] = [];
    const connection: Connection = { send: (f) => frames.push(JSON.parse(f)) > 0, close: () => undefined, saveAttachment: () => undefined };
    const session = sync.open(connection, "s");
    await sync.receive(session, JSON.stringify({ type: "Connect", sessionId: "s", connectionCount: 0, lastCloseReason: null }));
    await sync.receive(
      session,
      JSON.stringify({
        type: "ModifyQuerySet",
        baseVersion: 0,
        newVersion: 1,
        modifications: [{ type: "Add", queryId: 0, udfPath: "messages:list", args: [{ chatId: "a" }] }],
      }),
    );
    for (let i = 0; i < 20 && latestResult(frames, 0) === undefined; i++) await new Promise((r) => setTimeout(r, 1));
    expect((latestResult(frames, 0) as { body: string }[]).map((m) => m.body)).toEqual(["hi"]);
    expect(runs()).toBe(1);
    // Held by the session now, and still the cache: a one-shot call runs nothing either.
    await list("a");
    expect(runs()).toBe(1);
    expect(sync.source.instances.size).toBe(1);
  });

  it("keeps a query its last subscriber dropped: a session that adds it again (or a one-shot call) runs nothing; a commit into it drops it", async () => {
    const { engine, sync, runs, list } = setup();
    await engine.runMutation("messages:send", { chatId: "a", author: "x", body: "hi" });
    const subscribe = async (name: string) => {
      const frames: { type: string; [k: string]: unknown }[] = [];
      const connection: Connection = { send: (f) => frames.push(JSON.parse(f)) > 0, close: () => undefined, saveAttachment: () => undefined };
      const session = sync.open(connection, name);
      await sync.receive(session, JSON.stringify({ type: "Connect", sessionId: name, connectionCount: 0, lastCloseReason: null }));
      const add = { type: "Add", queryId: 0, udfPath: "messages:list", args: [{ chatId: "a" }] };
      await sync.receive(session, JSON.stringify({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [add] }));
      for (let i = 0; i < 20 && latestResult(frames, 0) === undefined; i++) await new Promise((r) => setTimeout(r, 1));
      expect((latestResult(frames, 0) as { body: string }[]).map((m) => m.body)).toEqual(["hi"]);
      await sync.receive(session, JSON.stringify({ type: "ModifyQuerySet", baseVersion: 1, newVersion: 2, modifications: [{ type: "Remove", queryId: 0 }] }));
    };
    await subscribe("first");
    expect(runs()).toBe(1);
    expect(sync.source.instances.size).toBe(0);
    await subscribe("second");
    await list("a");
    expect(runs()).toBe(1);
    await engine.runMutation("messages:send", { chatId: "a", author: "x", body: "again" });
    expect(sync.source.instances.get(`messages:list|{"chatId":"a"}`)).toBeUndefined();
    expect((await list("a")).map((m) => m.body)).toEqual(["again", "hi"]);
    expect(runs()).toBe(2);
  });

  it("keeps cache entries within queryResultCacheBytes: the least recently used are dropped, instance and all", async () => {
    const { engine, sync, runs, list } = setup({ queryResultCacheBytes: 1_048_576 });
    const big = "x".repeat(30_000);
    for (let chat = 0; chat < 40; chat++) await engine.runMutation("messages:send", { chatId: `c${chat}`, author: "x", body: `${big}${chat}` });
    for (let chat = 0; chat < 40; chat++) await list(`c${chat}`);
    const instances = sync.source.instances;
    expect(instances.results.bytes).toBeLessThanOrEqual(1_048_576);
    expect(instances.results.evictions).toBeGreaterThan(0);
    // Nobody holds them: the held count is zero, and the evicted ones are gone (not kept dirty or empty).
    expect(instances.size).toBe(0);
    expect(instances.get(`messages:list|{"chatId":"c0"}`)).toBeUndefined();
    const before = runs();
    await list("c39");
    expect(runs()).toBe(before);
    await list("c0");
    expect(runs()).toBe(before + 1);
  });
});
