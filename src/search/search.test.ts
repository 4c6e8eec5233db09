import { describe, expect, it } from "vitest";
import { defineSchema, defineTable, mutationGeneric as mutation, queryGeneric as query } from "convex/server";
import { v } from "convex/values";
import { Engine, FunctionError, MemoryStore, registerModules, Schema, SubscriptionIndex, encodeKey, type Document } from "../engine/index.ts";
import { SearchIndexes } from "./search-indexes.ts";
import { MemorySearchStorage } from "./storage.ts";
import { compactSearchIndexes, type CompactionStep } from "./compactor.ts";

const schema = new Schema(
  defineSchema({
    messages: defineTable({ chatId: v.string(), author: v.string(), body: v.string() }).searchIndex("search_body", {
      searchField: "body",
      filterFields: ["chatId", "author"],
    }),
  }),
);

const functions = registerModules({
  messages: {
    search: query({
      args: { chatId: v.string(), query: v.string(), author: v.optional(v.string()), limit: v.optional(v.number()) },
      handler: (ctx, { chatId, query, author, limit }) =>
        ctx.db
          .query("messages")
          .withSearchIndex("search_body", (q) => {
            const built = q.search("body", query).eq("chatId", chatId);
            return author === undefined ? built : built.eq("author", author);
          })
          .take(limit ?? 10),
    }),
    unpartitioned: query({
      args: { query: v.string() },
      handler: (ctx, { query }) =>
        ctx.db
          .query("messages")
          .withSearchIndex("search_body", (q) => q.search("body", query).eq("author", "x"))
          .take(10),
    }),
    all: query({
      args: { chatId: v.string(), query: v.string() },
      handler: (ctx, { chatId, query }) =>
        ctx.db
          .query("messages")
          .withSearchIndex("search_body", (q) => q.search("body", query).eq("chatId", chatId))
          .collect(),
    }),
    send: mutation({
      args: { chatId: v.string(), author: v.string(), body: v.string() },
      handler: (ctx, args) => ctx.db.insert("messages", args),
    }),
    edit: mutation({ args: { id: v.id("messages"), body: v.string() }, handler: (ctx, { id, body }) => ctx.db.patch(id, { body }) }),
    move: mutation({ args: { id: v.id("messages"), chatId: v.string() }, handler: (ctx, { id, chatId }) => ctx.db.patch(id, { chatId }) }),
    remove: mutation({ args: { id: v.id("messages") }, handler: (ctx, { id }) => ctx.db.delete(id) }),
  },
});

function setup(budgetBytes = 64 * 1_048_576) {
  const storage = new MemorySearchStorage();
  let store: MemoryStore;
  const search = new SearchIndexes({
    schema,
    storage,
    budgetBytes: () => budgetBytes,
    documents: function* (table) {
      for (const entry of store.scanIndex(`${table}.by_creation_time`, { start: "", end: null }, "asc")) yield entry.document;
    },
  });
  store = new MemoryStore(search);
  let clock = 1_700_000_000_000;
  const engine = new Engine({ schema, functions, store, now: () => (clock += 1) });
  const send = async (chatId: string, body: string, author = "ann") => (await engine.runMutation("messages:send", { chatId, author, body })).value as string;
  const find = async (chatId: string, q: string, extra: Record<string, unknown> = {}) =>
    ((await engine.runQuery("messages:search", { chatId, query: q, ...extra })).value as Document[]).map((d) => d.body);
  return { storage, search, store, engine, send, find };
}

const compactAll = (search: SearchIndexes, beforeStep?: (step: CompactionStep) => void) =>
  compactSearchIndexes(search, { minLogEntries: 1, minLogBytes: 0, budgetDocuments: Infinity, maxChunkBytes: 4_096, maxFailures: Infinity, beforeStep });

describe("search semantics", () => {
  it("ranks by relevance, matches the last term as a prefix, and filters by partition and author", async () => {
    const { send, find } = setup();
    await send("a", "the quick brown fox");
    await send("a", "quick quick quick");
    await send("a", "lazy dog sleeps");
    await send("b", "quick fox in another chat");
    await send("a", "quickly now", "bob");
    // Exact matches outrank prefix matches ("quickly" only matches the prefix "quick").
    expect(await find("a", "quick")).toEqual(["quick quick quick", "the quick brown fox", "quickly now"]);
    expect(await find("a", "fox")).toEqual(["the quick brown fox"]);
    expect(await find("a", "do")).toEqual(["lazy dog sleeps"]); // prefix on the last term
    expect(await find("a", "do quick")).toEqual(["quick quick quick", "the quick brown fox", "quickly now"]); // "do" only exact
    expect(await find("a", "q")).toEqual([]); // below the minimum prefix length
    expect(await find("a", "quick", { author: "bob" })).toEqual(["quickly now"]);
    expect(await find("b", "quick")).toEqual(["quick fox in another chat"]);
    expect(await find("c", "quick")).toEqual([]);
  });

  it("breaks score ties newest first", async () => {
    const { engine, send } = setup();
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await send("a", "same words"));
    const results = (await engine.runQuery("messages:search", { chatId: "a", query: "same" })).value as Document[];
    expect(results.map((d) => d._id)).toEqual([...ids].reverse());
  });

  it("refuses unpartitioned searches, too many terms and too many scanned results, naming why", async () => {
    const { engine, send } = setup();
    await expect(engine.runQuery("messages:unpartitioned", { query: "x" })).rejects.toThrow(/must filter on "chatId" with eq\(\)/);
    const many = Array.from({ length: 17 }, (_, i) => `w${i}`).join(" ");
    await expect(engine.runQuery("messages:search", { chatId: "a", query: many })).rejects.toThrow(/too many search terms: 17, limit 16/);
    for (let i = 0; i < 1_030; i++) await send("big", `common word ${i}`);
    await expect(engine.runQuery("messages:all", { chatId: "big", query: "common" })).rejects.toThrow(/scanned more than 1024 results/);
    const top = (await engine.runQuery("messages:search", { chatId: "big", query: "common" })).value as Document[];
    expect(top).toHaveLength(10);
    const error = await engine.runQuery("messages:all", { chatId: "big", query: "common" }).catch((e) => e);
    expect(error).toBeInstanceOf(FunctionError);
  });

  it("sees edits, moves between partitions and deletes", async () => {
    const { engine, send, find } = setup();
    const id = await send("a", "original text");
    await engine.runMutation("messages:edit", { id, body: "replacement words" });
    expect(await find("a", "original")).toEqual([]);
    expect(await find("a", "replacement")).toEqual(["replacement words"]);
    await engine.runMutation("messages:move", { id, chatId: "b" });
    expect(await find("a", "replacement")).toEqual([]);
    expect(await find("b", "replacement")).toEqual(["replacement words"]);
    await engine.runMutation("messages:remove", { id });
    expect(await find("b", "replacement")).toEqual([]);
  });
});

const WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "alphabet", "betamax", "gamut"];

function seeded(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

describe("determinism across compaction, reload and rebuild (randomized)", () => {
  it("returns identical results", async () => {
    for (const seed of [1, 2, 3]) {
      const rand = seeded(seed);
      const pick = () => WORDS[Math.floor(rand() * WORDS.length)]!;
      const { engine, send, search, storage } = setup();
      const ids: string[] = [];
      for (let i = 0; i < 300; i++) {
        const r = rand();
        const chat = `c${Math.floor(rand() * 3)}`;
        const body = Array.from({ length: 2 + Math.floor(rand() * 6) }, pick).join(" ");
        if (r < 0.75 || ids.length === 0) ids.push(await send(chat, body, rand() < 0.5 ? "ann" : "bob"));
        else if (r < 0.9) await engine.runMutation("messages:edit", { id: ids[Math.floor(rand() * ids.length)]!, body });
        else await engine.runMutation("messages:remove", { id: ids.splice(Math.floor(rand() * ids.length), 1)[0]! });
        if (i === 150) compactAll(search);
      }
      const queries = Array.from({ length: 40 }, () => {
        const terms = Array.from({ length: 1 + Math.floor(rand() * 3) }, pick);
        if (rand() < 0.5) terms[terms.length - 1] = terms.at(-1)!.slice(0, 2 + Math.floor(rand() * 3));
        return { chatId: `c${Math.floor(rand() * 3)}`, query: terms.join(" "), limit: 50 };
      });
      const snapshot = async () => Promise.all(queries.map(async (q) => ((await engine.runQuery("messages:search", q)).value as Document[]).map((d) => d._id)));
      const live = await snapshot();
      expect(live.some((r) => r.length > 0)).toBe(true);

      compactAll(search);
      expect(await snapshot(), `seed ${seed}: after compaction`).toEqual(live);
      search.unloadAll();
      expect(await snapshot(), `seed ${seed}: after reload from snapshot + log`).toEqual(live);
      // Rebuild every partition from the documents (what a format change does).
      search.unloadAll();
      for (const chat of ["c0", "c1", "c2"]) {
        const index = search.indexDefinition("messages.search_body");
        const meta = storage.meta(index.qualifiedName, encodeKey([chat]));
        if (meta) storage.writeSnapshot(meta, ["{}"], meta.lastLsn, "outdated-format");
      }
      expect(await snapshot(), `seed ${seed}: after rebuild from documents`).toEqual(live);
    }
  });
});

describe("interrupted compaction", () => {
  for (const step of ["load", "serialize", "write", "swap"] as CompactionStep[]) {
    it(`a throw at "${step}" leaves searches correct, now and after a reload`, async () => {
      const { send, find, search, storage } = setup();
      for (let i = 0; i < 30; i++) await send("a", `message number ${i} ${i % 2 ? "odd" : "even"}`);
      compactAll(search);
      for (let i = 30; i < 40; i++) await send("a", `message number ${i} ${i % 2 ? "odd" : "even"}`);
      const before = await find("a", "odd");
      const metaBefore = storage.partitionsToCompact(1, 0, 10)[0]!;
      const report = compactAll(search, (s) => {
        if (s === step) throw new Error(`interrupted at ${s}`);
      });
      expect(report).toMatchObject({ compacted: 0, failed: 1 });
      // The old generation and its log are untouched.
      expect(storage.partitionsToCompact(1, 0, 10)[0]).toMatchObject({
        gen: metaBefore.gen,
        logEntries: metaBefore.logEntries,
        snapshotLsn: metaBefore.snapshotLsn,
      });
      expect(await find("a", "odd")).toEqual(before);
      search.unloadAll();
      expect(await find("a", "odd")).toEqual(before);
      // And the next compaction succeeds.
      expect(compactAll(search)).toMatchObject({ compacted: 1 });
      search.unloadAll();
      expect(await find("a", "odd")).toEqual(before);
    });
  }
});

describe("a partition whose compaction keeps failing", () => {
  it("is skipped after maxFailures, so the alarm does not loop, until new writes reach it", async () => {
    const { send, find, search } = setup();
    for (let i = 0; i < 5; i++) await send("a", `poison ${i}`);
    const options = { minLogEntries: 1, minLogBytes: 0, budgetDocuments: Infinity, maxChunkBytes: 4_096, maxFailures: 2 };
    const failing = () => {
      throw new Error("always fails");
    };
    expect(compactSearchIndexes(search, { ...options, beforeStep: failing })).toMatchObject({ compacted: 0, failed: 1 });
    expect(compactSearchIndexes(search, { ...options, beforeStep: failing })).toMatchObject({ compacted: 0, failed: 1 });
    // Now skipped: nothing is attempted, nothing asks for another run.
    expect(compactSearchIndexes(search, { ...options, beforeStep: failing })).toEqual({ compacted: 0, failed: 0, moreWork: false });
    expect(await find("a", "poison", { limit: 50 })).toHaveLength(5);
    // A new write gives it another chance.
    await send("a", "poison 5");
    expect(compactSearchIndexes(search, options)).toMatchObject({ compacted: 1, failed: 0 });
  });
});

describe("memory budget", () => {
  it("unloads the least recently used partitions and reloads them on demand", async () => {
    const { send, find, search } = setup(200_000);
    for (let chat = 0; chat < 20; chat++) for (let i = 0; i < 20; i++) await send(`chat${chat}`, `hello there number ${i} in chat ${chat}`);
    compactAll(search);
    for (let chat = 0; chat < 20; chat++) expect(await find(`chat${chat}`, "hello", { limit: 50 })).toHaveLength(20);
    expect(search.memoryBytes).toBeLessThanOrEqual(200_000 + 60_000); // at most one partition over (the one in use)
    expect(search.loadedPartitions).toBeLessThan(20);
    expect(search.counters.partitionEvictions).toBeGreaterThan(0);
  });
});

describe("search read-sets", () => {
  it("invalidate only on writes in the same partition that match the filters and the terms or prefix", async () => {
    const { engine, send } = setup();
    const keep = await send("a", "unrelated chatter");
    const read = (await engine.runQuery("messages:search", { chatId: "a", query: "hello wor" })).searchReads;
    const byBob = (await engine.runQuery("messages:search", { chatId: "a", query: "hello", author: "bob" })).searchReads;
    const index = new SubscriptionIndex<string>();
    index.add("hello-wor*", new Map(), read);
    index.add("hello-by-bob", new Map(), byBob);
    const hits = async (chatId: string, body: string, author = "ann") =>
      index.affected([], (await engine.runMutation("messages:send", { chatId, author, body })).searchWrites);
    expect(await hits("b", "hello world")).toEqual(new Set()); // other partition
    expect(await hits("a", "goodbye moon")).toEqual(new Set()); // unrelated words
    expect(await hits("a", "say hello")).toEqual(new Set(["hello-wor*"])); // exact term, author ann
    expect(await hits("a", "the world is big")).toEqual(new Set(["hello-wor*"])); // prefix wor*
    expect(await hits("a", "hello from bob", "bob")).toEqual(new Set(["hello-wor*", "hello-by-bob"]));
    expect(await hits("a", "wo")).toEqual(new Set()); // shorter than the prefix
    // Editing a matching document to unrelated text still invalidates (it leaves the results).
    const id = await send("a", "hello again");
    expect(index.affected([], (await engine.runMutation("messages:edit", { id, body: "nothing" })).searchWrites)).toEqual(new Set(["hello-wor*"]));
    expect(index.affected([], (await engine.runMutation("messages:edit", { id: keep, body: "still unrelated" })).searchWrites)).toEqual(new Set());
  });
});
