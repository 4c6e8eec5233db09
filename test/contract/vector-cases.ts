/**
 * Vector search every store must give: run on the in-memory store in Node
 * (src/vectors/vector-indexes.test.ts) and on the Durable Object's SQLite
 * inside workerd (test/workers/vectors.test.ts), through `convex/server`
 * functions and `ctx.vectorSearch` as an app calls it.
 */
import { expect } from "vitest";
import { actionGeneric as action, defineSchema, defineTable, mutationGeneric as mutation } from "convex/server";
import { v } from "convex/values";
import { Engine, FunctionError, registerModules, Schema, SchemaError, type DocumentStore, type Value } from "../../src/engine/index.ts";
import type { VectorIndexes, VectorKnobs } from "../../src/vectors/vector-indexes.ts";

export const DIMENSIONS = 64;
export const KINDS = ["a", "b", "c", "d", "e", "f", "g", "h"];

// `embedding` takes anything, so documents with unindexable vectors can be stored (as they can be in a schemaless Convex table).
const docs = defineTable({ kind: v.string(), tag: v.optional(v.string()), embedding: v.optional(v.any()), title: v.optional(v.string()) });
/** The app before it had a vector index, and after (the backfill case moves between them). */
export const plainSchema = new Schema(defineSchema({ docs }));
export const vectorSchema = new Schema(
  defineSchema({ docs: docs.vectorIndex("by_embedding", { vectorField: "embedding", dimensions: DIMENSIONS, filterFields: ["kind", "tag"] }) }),
);

export const functions = registerModules({
  docs: {
    insertMany: mutation({ args: { docs: v.array(v.any()) }, handler: async (ctx, args) => Promise.all(args.docs.map((doc) => ctx.db.insert("docs", doc))) }),
    patch: mutation({ args: { id: v.id("docs"), fields: v.any() }, handler: (ctx, { id, fields }) => ctx.db.patch(id, fields) }),
    replace: mutation({ args: { id: v.id("docs"), doc: v.any() }, handler: (ctx, { id, doc }) => ctx.db.replace(id, doc) }),
    remove: mutation({ args: { id: v.id("docs") }, handler: (ctx, { id }) => ctx.db.delete(id) }),
    insertThenThrow: mutation({
      args: { doc: v.any() },
      handler: async (ctx, { doc }) => {
        await ctx.db.insert("docs", doc);
        throw new Error("changed my mind");
      },
    }),
    /** The demo's shape: `q.or` of `q.eq` over one field, or no filter. */
    search: action({
      args: { vector: v.array(v.float64()), limit: v.optional(v.any()), field: v.optional(v.string()), values: v.optional(v.array(v.any())) },
      handler: (ctx, { vector, limit, field, values }) =>
        ctx.vectorSearch("docs", "by_embedding", {
          vector,
          limit,
          ...(values
            ? { filter: (q) => (values.length === 1 ? q.eq(field as "kind", values[0]) : q.or(...values.map((value) => q.eq(field as "kind", value)))) }
            : {}),
        }),
    }),
    searchIndex: action({
      args: { index: v.string(), vector: v.array(v.float64()) },
      handler: (ctx, { index, vector }) => ctx.vectorSearch("docs", index as "by_embedding", { vector }),
    }),
  },
});

export interface VectorStore {
  store: DocumentStore;
  vectors: VectorIndexes;
}

/**
 * Opens the case's storage with a schema: a second call keeps the documents
 * and brings vector indexes in line with the new schema (the deployment's
 * backfill on SQLite, a rebuild in memory).
 */
export type OpenVectorStore = (schema: Schema, knobs: () => VectorKnobs) => VectorStore;
export type VectorCase = (open: OpenVectorStore) => Promise<void>;

export const TEST_KNOBS: VectorKnobs = { vectorMemoryBudgetBytes: 33_554_432, vectorExactMaxCandidates: 1_024, vectorRerankCandidates: 512 };

function engineOn({ store }: VectorStore, schema = vectorSchema) {
  return new Engine({ schema, functions, store, now: Date.now });
}

/** A deterministic generator (mulberry32), so failures reproduce. */
export function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(next() || 1e-12)) * Math.cos(2 * Math.PI * next());
}

/**
 * `count` vectors around `clusters` random centres (spread `spread` around
 * unit-scale centres): the shape of text embeddings, where topics cluster.
 */
export function clusteredVectors(count: number, dimensions: number, clusters: number, seed: number, spread = 0.6): number[][] {
  const next = random(seed);
  const centres = Array.from({ length: clusters }, () => Array.from({ length: dimensions }, () => gaussian(next)));
  return Array.from({ length: count }, (_, i) => centres[i % clusters]!.map((x) => x + spread * gaussian(next)));
}

export function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    // As stored: float32.
    const x = Math.fround(a[i]!);
    const y = Math.fround(b[i]!);
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return dot / Math.sqrt(na * nb);
}

/** The exact top `limit` of `docs` by cosine with `query`, among those `keep` lets through. */
export function exactTop(docs: { id: string; embedding: number[] }[], query: number[], limit: number, keep: (i: number) => boolean = () => true) {
  return docs
    .map((doc, i) => ({ id: doc.id, score: cosine(doc.embedding, query), i }))
    .filter(({ i }) => keep(i))
    .sort((x, y) => y.score - x.score)
    .slice(0, limit);
}

type Hit = { _id: string; _score: number };

async function search(engine: Engine, args: Record<string, Value>): Promise<Hit[]> {
  return (await engine.runAction("docs:search", args)).value as Hit[];
}

async function insertAll(engine: Engine, rows: Record<string, Value>[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < rows.length; i += 200) ids.push(...((await engine.runMutation("docs:insertMany", { docs: rows.slice(i, i + 200) })).value as string[]));
  return ids;
}

async function expectBadRequest(promise: Promise<unknown>, message: RegExp): Promise<void> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, "expected the call to fail").toBeInstanceOf(FunctionError);
  expect((error as FunctionError).message).toMatch(message);
}

const axis = (i: number, scale = 1) => Array.from({ length: DIMENSIONS }, (_, d) => (d === i ? scale : d === (i + 1) % DIMENSIONS ? 0.1 : 0));

export const vectorCases: Record<string, VectorCase> = {
  async "maintained at commit: insert, patch of the vector or a filter field, replace, delete, a mutation that throws, unindexable vectors"(open) {
    const opened = open(vectorSchema, () => TEST_KNOBS);
    const engine = engineOn(opened);
    const [x, y, z] = await insertAll(engine, [
      { kind: "a", embedding: axis(0) },
      { kind: "b", embedding: axis(1) },
      { kind: "a", embedding: axis(2) },
    ]);
    // Stored but not indexed, as in Convex: a missing vector, the wrong length, not numbers.
    const [missing, short] = await insertAll(engine, [{ kind: "a" }, { kind: "a", embedding: [1, 2, 3] }, { kind: "a", embedding: axis(0).map(String) }]);
    expect(opened.store.documentCount()).toBe(6);
    const near0 = await search(engine, { vector: axis(0) });
    // Best first; the unindexable ones are not there.
    expect(near0.map((h) => h._id)).toEqual([x, y, z]);
    expect(near0[0]!._score).toBeCloseTo(1, 6);
    expect(near0.map((h) => h._id)).not.toContain(missing);

    // Patching the vector moves the document; patching a filter field moves it between filter values.
    await engine.runMutation("docs:patch", { id: y, fields: { embedding: axis(0, 2) } });
    expect((await search(engine, { vector: axis(0), limit: 2 })).map((h) => h._id).sort()).toEqual([x, y].sort());
    await engine.runMutation("docs:patch", { id: x, fields: { kind: "c" } });
    expect((await search(engine, { vector: axis(0), field: "kind", values: ["a"] })).map((h) => h._id)).toEqual([z]);
    expect((await search(engine, { vector: axis(0), field: "kind", values: ["c"] })).map((h) => h._id)).toEqual([x]);
    // A patch that leaves the vector and filters alone changes nothing the index holds.
    await engine.runMutation("docs:patch", { id: z, fields: { title: "renamed" } });
    // Replacing without the vector takes the document out; giving the short one a vector puts it in.
    await engine.runMutation("docs:replace", { id: x, doc: { kind: "c" } });
    expect((await search(engine, { vector: axis(0), field: "kind", values: ["c"] })).map((h) => h._id)).toEqual([]);
    await engine.runMutation("docs:patch", { id: short, fields: { embedding: axis(5) } });
    expect((await search(engine, { vector: axis(5), limit: 1 }))[0]!._id).toBe(short);
    // A deleted document is never returned.
    await engine.runMutation("docs:remove", { id: short });
    expect((await search(engine, { vector: axis(5) })).map((h) => h._id)).not.toContain(short);
    // A mutation that throws indexes nothing.
    await expect(engine.runMutation("docs:insertThenThrow", { doc: { kind: "z", embedding: axis(9) } })).rejects.toThrow(/changed my mind/);
    expect(await search(engine, { vector: axis(9), field: "kind", values: ["z"] })).toEqual([]);

    // The same answers after the loaded index is dropped and read back from storage.
    const before = await search(engine, { vector: axis(0) });
    opened.vectors.unloadAll();
    expect(await search(engine, { vector: axis(0) })).toEqual(before);
  },

  async "past the exact threshold: candidates by sign code, exact scores, recall against the exact ranking, only the asked filter values"(open) {
    const knobs = { ...TEST_KNOBS, vectorExactMaxCandidates: 100, vectorRerankCandidates: 200 };
    const opened = open(vectorSchema, () => knobs);
    const engine = engineOn(opened);
    const embeddings = clusteredVectors(2_000, DIMENSIONS, 16, 7);
    const ids = await insertAll(
      engine,
      embeddings.map((embedding, i) => ({ kind: KINDS[i % KINDS.length]!, embedding })),
    );
    const all = ids.map((id, i) => ({ id, embedding: embeddings[i]! }));
    // Queries near the data's topics, as a user's question is near the documents it is about.
    const next = random(99);
    const queries = Array.from({ length: 20 }, (_, q) => embeddings[q * 97]!.map((x) => x + 0.6 * gaussian(next)));
    let found = 0;
    let asked = 0;
    for (const [q, query] of queries.entries()) {
      const filtered = q % 2 === 1;
      const values = filtered ? [KINDS[q % 8]!, KINDS[(q + 3) % 8]!] : undefined;
      const keep = (i: number) => !values || values.includes(KINDS[i % KINDS.length]!);
      const scoredBefore = opened.vectors.counters.vectorsScored;
      const hits = await search(engine, { vector: query, limit: 16, ...(values ? { field: "kind", values } : {}) });
      // Only the candidates are read and scored, never every vector.
      expect(opened.vectors.counters.vectorsScored - scoredBefore).toBeLessThanOrEqual(200);
      const exact = exactTop(all, query, 16, keep);
      const exactIds = new Set(exact.map((e) => e.id));
      found += hits.filter((h) => exactIds.has(h._id)).length;
      asked += exact.length;
      const byId = new Map(all.map((doc, i) => [doc.id, i]));
      for (const hit of hits) {
        expect(keep(byId.get(hit._id)!), "a hit outside the filter").toBe(true);
        expect(hit._score).toBeCloseTo(cosine(all[byId.get(hit._id)!]!.embedding, query), 5);
      }
      expect(hits.map((h) => h._score)).toEqual([...hits.map((h) => h._score)].sort((a, b) => b - a));
    }
    expect(found / asked).toBeGreaterThanOrEqual(0.95);
  },

  async "a vector index added to a table with documents covers them; removed, its rows go"(open) {
    const first = open(plainSchema, () => TEST_KNOBS);
    const plain = engineOn(first, plainSchema);
    const [x] = await insertAll(plain, [{ kind: "a", embedding: axis(3) }, { kind: "b", embedding: axis(4) }, { kind: "a" }]);
    const withIndex = open(vectorSchema, () => TEST_KNOBS);
    const engine = engineOn(withIndex);
    expect(withIndex.vectors.report()).toEqual([expect.objectContaining({ index: "docs.by_embedding", vectors: 2 })]);
    const [best] = await search(engine, { vector: axis(3), limit: 1 });
    expect(best!._id).toBe(x);
    expect(best!._score).toBeCloseTo(1, 6);
    const without = open(plainSchema, () => TEST_KNOBS);
    expect(without.vectors.storage.count("docs.by_embedding")).toBe(0);
    // Back again: rebuilt from the documents, not from stale rows.
    expect(open(vectorSchema, () => TEST_KNOBS).vectors.storage.count("docs.by_embedding")).toBe(2);
  },

  async "bad input fails only its own call with a clear error; an index past the memory budget is refused, naming the knob"(open) {
    let knobs = TEST_KNOBS;
    const opened = open(vectorSchema, () => knobs);
    const engine = engineOn(opened);
    await insertAll(engine, [{ kind: "a", tag: "t", embedding: axis(0) }]);
    await expectBadRequest(search(engine, { vector: [1, 2, 3] }), /docs\.by_embedding: the vector has 3 dimensions; the index has 64/);
    await expectBadRequest(search(engine, { vector: axis(0), limit: 0 }), /`limit` must be an integer from 1 to 256, got 0/);
    await expectBadRequest(search(engine, { vector: axis(0), limit: 257 }), /from 1 to 256, got 257/);
    await expectBadRequest(search(engine, { vector: axis(0), limit: 2.5 }), /got 2.5/);
    await expectBadRequest(search(engine, { vector: axis(0), field: "title", values: ["x"] }), /"title" is not a filter field \(filter fields: kind, tag\)/);
    await expectBadRequest(
      search(engine, { vector: axis(0), field: "kind", values: Array.from({ length: 65 }, (_, i) => `k${i}`) }),
      /too many filter expressions: 65, limit 64/,
    );
    await expectBadRequest(engine.runAction("docs:searchIndex", { index: "by_nothing", vector: axis(0) }), /no vector index "docs.by_nothing"/);
    // A filter on the second filter field, and on a value nobody has.
    expect(await search(engine, { vector: axis(0), field: "tag", values: ["t"] })).toHaveLength(1);
    expect(await search(engine, { vector: axis(0), field: "tag", values: ["none"] })).toEqual([]);
    // Limits of Convex, checked when the schema is read.
    type Config = { vectorField: "e"; dimensions: number; filterFields?: "f"[] };
    const refused =
      (config: Config, count = 1) =>
      () => {
        let table = defineTable({ e: v.array(v.float64()), f: v.string() });
        for (let i = 0; i < count; i++) table = table.vectorIndex(`v${i}`, config) as unknown as typeof table;
        return new Schema(defineSchema({ t: table }));
      };
    expect(refused({ vectorField: "e", dimensions: 1 })).toThrow(SchemaError);
    expect(refused({ vectorField: "e", dimensions: 1 })).toThrow(/dimensions must be an integer from 2 to 4096, got 1/);
    expect(refused({ vectorField: "e", dimensions: 4097 })).toThrow(/got 4097/);
    expect(refused({ vectorField: "e", dimensions: 8, filterFields: Array.from({ length: 17 }, (_, i) => `f${i}`) as "f"[] })).toThrow(
      /at most 16 filter fields, got 17/,
    );
    expect(refused({ vectorField: "e", dimensions: 8 }, 5)).toThrow(/5 vector indexes; at most 4/);
    expect(refused({ vectorField: "e", dimensions: 8 }, 4)).not.toThrow();
    // Past the budget: that search fails and says which knob; lowered back, searches work again.
    knobs = { ...TEST_KNOBS, vectorMemoryBudgetBytes: 10 };
    opened.vectors.unloadAll();
    const error = await search(engine, { vector: axis(0) }).then(
      () => null,
      (e: unknown) => e as FunctionError,
    );
    expect(error?.message).toMatch(/Vector index docs\.by_embedding holds 1 vectors, which need about 1 MB in memory, past vectorMemoryBudgetBytes/);
    knobs = TEST_KNOBS;
    expect(await search(engine, { vector: axis(0) })).toHaveLength(1);
  },
};
