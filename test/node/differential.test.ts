/**
 * Differential test: the same unmodified Convex function modules
 * (test/fixtures/differential/convex) run on calmsync's engine and on
 * `convex-test`, Convex's own in-process test backend, over generated data
 * and operations: index ranges in both orders, filters with every operator,
 * pagination with inserts and deletes between pages, text search, get (both
 * forms), normalizeId, unique/first, async iteration, patches (including
 * clearing a field), replaces and deletes. Every result must agree.
 *
 * Where the two legitimately differ, Convex's behaviour is the reference and
 * the difference is pinned by a test of its own below:
 * - search ranking: calmsync ranks with BM25 (MiniSearch), convex-test by its
 *   own scoring, so search results are compared as sets;
 * - internal functions: convex-test lets a test call them; a calmsync client
 *   cannot (Convex's backend refuses them to clients);
 * - `q.neg` in a filter: convex-test answers "not implemented", so the
 *   generated filters leave it out (calmsync's contract tests cover it).
 * Documents are compared without `_id` and `_creationTime` (each backend makes
 * its own), which is why every item carries a generated `key`.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { convexTest } from "convex-test";
import {
  Engine,
  FileStorage,
  FunctionError,
  MemoryBlobStore,
  MemoryStore,
  newUploadSecret,
  registerModules,
  Schema,
  UploadTokens,
  type Value,
} from "../../src/engine/index.ts";
import { SearchIndexes } from "../../src/search/search-indexes.ts";
import { MemorySearchStorage } from "../../src/search/storage.ts";
import { generate } from "../../scripts/codegen.ts";

const FIXTURE = fileURLToPath(new URL("../fixtures/differential/convex/", import.meta.url));

type Call = (path: string, args: Record<string, Value>) => Promise<unknown>;
type Backend = { query: Call; mutation: Call; action: Call };

let calmsync: Backend & { engine: Engine };
let reference: Backend;

async function calmsyncBackend(): Promise<Backend & { engine: Engine }> {
  const schema = new Schema((await import(`${FIXTURE}schema.ts`)).default);
  const items = await import(`${FIXTURE}items.ts`);
  const files = await import(`${FIXTURE}files.ts`);
  let store: MemoryStore;
  const search = new SearchIndexes({
    schema,
    storage: new MemorySearchStorage(),
    budgetBytes: () => 64 * 1_048_576,
    documents: function* (table) {
      for (const entry of store.scanIndex(`${table}.by_creation_time`, { start: "", end: null }, "asc")) yield entry.document;
    },
  });
  store = new MemoryStore(search);
  const fileStorage = new FileStorage({
    blobs: new MemoryBlobStore(),
    tokens: new UploadTokens({ secret: newUploadSecret, ttlMs: () => 3_600_000, now: Date.now }),
    baseUrl: () => "https://calmsync.example",
  });
  const engine = new Engine({ schema, functions: registerModules({ items, files }), store, files: fileStorage });
  return {
    engine,
    query: async (path, args) => (await engine.runQuery(path, args)).value,
    mutation: async (path, args) => (await engine.runMutation(path, args)).value,
    action: async (path, args) => (await engine.runAction(path, args)).value,
  };
}

async function referenceBackend(): Promise<Backend> {
  const schema = (await import(`${FIXTURE}schema.ts`)).default;
  // convex-test finds the functions' root by the `_generated` folder among the module keys.
  const t = convexTest(schema, {
    "/fixture/convex/_generated/server.ts": () => import(`${FIXTURE}_generated/server.ts`),
    "/fixture/convex/_generated/api.ts": () => import(`${FIXTURE}_generated/api.ts`),
    "/fixture/convex/items.ts": () => import(`${FIXTURE}items.ts`),
    "/fixture/convex/files.ts": () => import(`${FIXTURE}files.ts`),
  });
  // convex-test takes function references or their names; the names keep both backends' calls alike.
  const byName = t as unknown as Record<"query" | "mutation" | "action", (path: string, args: unknown) => Promise<unknown>>;
  return {
    query: (path, args) => byName.query(path, args),
    mutation: (path, args) => byName.mutation(path, args),
    action: (path, args) => byName.action(path, args),
  };
}

/** A document without what each backend makes up for itself. */
function comparable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(comparable);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === "_id" || k === "_creationTime" || k === "continueCursor" || k === "splitCursor") continue;
      out[k] = comparable(v);
    }
    return out;
  }
  return value;
}

function seeded(seed: number): () => number {
  return () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
}

const WORDS = ["river", "stone", "cloud", "ember", "harbor", "lantern", "meadow", "orbit", "quartz", "willow"];
const GROUPS = ["g0", "g1", "g2"];

async function both(kind: "query" | "mutation" | "action", path: string, args: Record<string, Value>): Promise<[unknown, unknown]> {
  const settle = (p: Promise<unknown>) =>
    p.then(
      (value) => ({ ok: true, value }),
      (error: Error) => ({ ok: false, value: error.message }),
    );
  const [mine, theirs] = await Promise.all([settle(calmsync[kind](path, args)), settle(reference[kind](path, args))]);
  expect(
    mine.ok,
    `${path} ${JSON.stringify(args)} succeeded on calmsync: ${mine.ok} (${JSON.stringify(mine.value)}), on convex-test: ${theirs.ok} (${JSON.stringify(theirs.value)})`,
  ).toBe(theirs.ok);
  return [mine.value, theirs.value];
}

/** A call's outcome as data, so two backends' failures compare as failures (their messages are their own). */
const settled = [(value: unknown) => ({ ok: true, value }), () => ({ ok: false })] as const;

async function sameResult(kind: "query" | "mutation" | "action", path: string, args: Record<string, Value>): Promise<unknown> {
  const [mine, theirs] = await both(kind, path, args);
  expect(comparable(mine), `${path} ${JSON.stringify(args)}`).toEqual(comparable(theirs));
  return mine;
}

beforeAll(async () => {
  generate(FIXTURE);
  calmsync = await calmsyncBackend();
  reference = await referenceBackend();
});

describe("calmsync and convex-test agree on the same Convex modules", () => {
  it("over generated writes, ranges, filters, gets and iteration", async () => {
    const rand = seeded(42);
    const pick = <T>(list: readonly T[]) => list[Math.floor(rand() * list.length)]!;
    const live: string[] = [];
    let nextKey = 0;
    let checks = 0;
    for (let step = 0; step < 400; step++) {
      const roll = rand();
      if (roll < 0.5 || live.length < 5) {
        const key = `k${nextKey++}`;
        const item: Record<string, Value> = { key, group: pick(GROUPS), n: Math.floor(rand() * 20), body: `${pick(WORDS)} ${pick(WORDS)}` };
        if (rand() < 0.5) item.tag = pick(["red", "blue"]);
        await both("mutation", "items:insert", item);
        live.push(key);
      } else if (roll < 0.65) {
        const key = pick(live);
        await sameResult("mutation", "items:patch", {
          key,
          ...(rand() < 0.5 ? { n: Math.floor(rand() * 20) } : { body: `${pick(WORDS)} ${pick(WORDS)}` }),
          clearTag: rand() < 0.3,
        });
      } else if (roll < 0.72) {
        const key = pick(live);
        await sameResult("mutation", "items:replace", { key, group: pick(GROUPS), n: Math.floor(rand() * 20), body: pick(WORDS) });
      } else if (roll < 0.8) {
        const key = live.splice(Math.floor(rand() * live.length), 1)[0]!;
        await sameResult("mutation", "items:remove", { key });
      }
      if (step % 10 !== 9) continue;
      const order = pick(["asc", "desc"] as const);
      const lower = rand() < 0.5 ? { op: pick(["gt", "gte"] as const), value: Math.floor(rand() * 20) } : undefined;
      const upper = rand() < 0.5 ? { op: pick(["lt", "lte"] as const), value: Math.floor(rand() * 20) } : undefined;
      await sameResult("query", "items:range", {
        group: pick(GROUPS),
        order,
        ...(lower && { lower }),
        ...(upper && { upper }),
        ...(rand() < 0.5 ? { limit: 1 + Math.floor(rand() * 8) } : {}),
      });
      for (const op of ["eq", "neq", "lt", "lte", "gt", "gte"]) {
        await sameResult("query", "items:filtered", {
          op,
          value: Math.floor(rand() * 20),
          order,
          limit: 1 + Math.floor(rand() * 10),
          ...(rand() < 0.5 ? { tag: pick(["red", "blue"]) } : {}),
        });
      }
      await sameResult("query", "items:iterate", { group: pick(GROUPS), stopAfter: 1 + Math.floor(rand() * 5) });
      const byKey = (await sameResult("query", "items:byKey", { key: pick(live) })) as { same: boolean };
      expect(byKey.same).toBe(true);
      await sameResult("query", "items:byKey", { key: "missing" });
      checks++;
    }
    expect(checks).toBe(40);
  });

  it("pages through a group with inserts and deletes between pages: same pages, no gap, no duplicate", async () => {
    const rand = seeded(7);
    for (let i = 0; i < 60; i++) await both("mutation", "items:insert", { key: `p${i}`, group: "paged", n: Math.floor(rand() * 30), body: "page" });
    for (const order of ["asc", "desc"] as const) {
      let mine: string | null = null;
      let theirs: string | null = null;
      const seen: string[] = [];
      for (let pageNumber = 0; pageNumber < 30; pageNumber++) {
        const [a, b] = (await Promise.all([
          calmsync.query("items:page", { group: "paged", order, paginationOpts: { numItems: 7, cursor: mine } }),
          reference.query("items:page", { group: "paged", order, paginationOpts: { numItems: 7, cursor: theirs } }),
        ])) as [{ page: { key: string }[]; isDone: boolean; continueCursor: string }, { page: { key: string }[]; isDone: boolean; continueCursor: string }];
        expect(comparable(a.page), `${order} page ${pageNumber}`).toEqual(comparable(b.page));
        expect(a.isDone).toBe(b.isDone);
        seen.push(...a.page.map((item) => item.key));
        if (a.isDone) break;
        mine = a.continueCursor;
        theirs = b.continueCursor;
        // Between pages: a write before the cursor, one after it, and a delete.
        await both("mutation", "items:insert", { key: `p${order}${pageNumber}a`, group: "paged", n: Math.floor(rand() * 30), body: "late" });
        await both("mutation", "items:remove", { key: a.page[0]!.key });
      }
      expect(new Set(seen).size, "no duplicate").toBe(seen.length);
    }
  });

  it("search finds the same documents (as sets: ranking differs), with and without filter fields", async () => {
    for (let i = 0; i < 30; i++) {
      await both("mutation", "items:insert", { key: `s${i}`, group: GROUPS[i % 3]!, n: i, body: `${WORDS[i % 10]} ${WORDS[(i * 3) % 10]}` });
      await both("mutation", "items:insertNote", { key: `note${i}`, text: `${WORDS[(i * 7) % 10]} notes` });
    }
    const keys = (result: unknown) => (result as { key: string }[]).map((item) => item.key).sort();
    for (const word of WORDS.slice(0, 6)) {
      for (const group of GROUPS) {
        const [mine, theirs] = await both("query", "items:search", { group, text: word });
        expect(keys(mine), `${word} in ${group}`).toEqual(keys(theirs));
      }
      const [mine, theirs] = await both("query", "items:searchNotes", { text: word });
      expect(keys(mine).length).toBeGreaterThan(0);
      expect(keys(mine), `notes ${word}`).toEqual(keys(theirs));
    }
    const [empty] = await both("query", "items:search", { group: "g0", text: "" });
    expect(empty).toEqual([]);
  });

  it("ctx.storage: stored files, their _storage rows, reads, URLs and deletes (one that throws) agree", async () => {
    // Each backend makes its own ids: every call names the file by its own backend's id.
    const ids: [string, string][] = [];
    for (const [text, type] of [
      ["first file", "text/plain"],
      ["{}", "application/json"],
      ["untyped", ""],
    ]) {
      ids.push((await both("action", "files:store", { text: text!, type: type! })) as [string, string]);
    }
    await sameResult("query", "files:rows", {});
    const each = async (kind: "query" | "mutation" | "action", path: string, [mine, theirs]: [string, string], args: Record<string, Value> = {}) => {
      const results = await Promise.all([
        calmsync[kind](path, { id: mine, ...args }).then(...settled),
        reference[kind](path, { id: theirs, ...args }).then(...settled),
      ]);
      expect(comparable(results[0]), `${path} ${mine}`).toEqual(comparable(results[1]));
      return results[0];
    };
    for (const pair of ids) {
      await each("query", "files:row", pair);
      expect(await each("query", "files:hasUrl", pair)).toEqual({ ok: true, value: true });
      await each("action", "files:read", pair);
    }
    expect(await each("mutation", "files:remove", ids[0]!, { fail: true })).toMatchObject({ ok: false });
    await sameResult("query", "files:rows", {});
    await each("mutation", "files:remove", ids[0]!, { fail: false });
    expect(await each("query", "files:hasUrl", ids[0]!)).toEqual({ ok: true, value: false });
    expect(await each("action", "files:read", ids[0]!)).toEqual({ ok: true, value: null });
    expect(await each("query", "files:row", ids[0]!)).toEqual({ ok: true, value: null });
    // Deleting a file twice fails on both.
    expect(await each("mutation", "files:remove", ids[0]!, { fail: false })).toEqual({ ok: false });
    expect(((await sameResult("query", "files:rows", {})) as unknown[]).length).toBe(2);
  });

  it("argument validation fails alike", async () => {
    await both("mutation", "items:insert", { key: "bad", group: "g0", n: "not a number", body: "x" });
    await both("mutation", "items:insert", { key: "bad", group: "g0", body: "x" });
    await both("mutation", "items:patch", { key: "nobody", clearTag: false });
  });

  it("documented difference: internal functions are not callable by clients on calmsync (convex-test lets tests call them)", async () => {
    expect(await reference.query("items:secret", {})).toBe("internal");
    const error = await calmsync.engine.runQuery("items:secret", {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FunctionError);
    expect((error as FunctionError).code).toBe("FunctionNotFound");
  });
});
