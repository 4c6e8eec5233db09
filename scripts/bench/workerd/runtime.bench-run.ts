/**
 * Executions per second of `messages:list` (a chat's newest 20 of 200
 * messages) inside one Durable Object, these ways:
 * - through the engine's function path, a run every call (`engine.runQuery`):
 *   the Convex runtime on calmsync, or whatever engine the checked-out commit
 *   has (`npm run bench -- runtime` also runs this file on the commit before
 *   the runtime, for the old look-alike engine);
 * - where the engine has a query cache (`engine.query`, issue 27 item 4): a
 *   repeat caller's call answered from it (a hit, no run); and, one call in
 *   flight (50 identical misses at once share one run), a call that misses
 *   (its entry marked dirty first, as a commit into its read-set would: a run
 *   plus the cache's bookkeeping) beside `engine.runQuery` also one in flight,
 *   rounds alternating;
 * - the same read done directly in SQL in the same object: the index range
 *   joined to the documents, newest 20, each parsed (the floor any engine
 *   pays), with no function, read-set or budget;
 * - and, where the engine has guarded code (codegen's loop and call guards,
 *   src/engine/sync-guard.ts), the same query with the app's file as written
 *   (no guard calls) put in its place, rounds alternating with the guarded one.
 * Prints one table row per way, tagged so scripts/bench.ts can merge runs.
 */
import { it } from "vitest";
import { env, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { encodeKey, keyToBytes, prefixSuccessor } from "../../../src/engine/index.ts";
import { profileWindow, profiling } from "./profile-window.ts";

const MESSAGES = 200;
const ROUNDS = 3;
const DURATION_MS = 1_500;
const worker = (exports as unknown as { default: Fetcher }).default;
const admin = { Authorization: "Bearer bench-admin-key", "Content-Type": "application/json" };

interface Engine {
  functions: ReadonlyMap<string, unknown>;
  runQuery(path: string, args: unknown): Promise<{ value: unknown }>;
  query?(path: string, args: unknown): Promise<{ value: unknown }>;
  runMutation(path: string, args: unknown): Promise<unknown>;
}

/**
 * Best of `ROUNDS` runs of `DURATION_MS` each: calls per second, 50 in flight
 * (a busy object: the function lock drains its queue without a hop through
 * the event loop between calls, as under real load).
 */
async function rate(call: () => Promise<unknown> | unknown, rounds = ROUNDS, inFlight = 50): Promise<number> {
  let best = 0;
  for (let round = 0; round < rounds; round++) {
    const start = performance.now();
    const calls = await callsIn(call, inFlight);
    best = Math.max(best, calls / ((performance.now() - start) / 1000));
  }
  return best;
}

/** Calls made in one round of `DURATION_MS`, `inFlight` at a time. */
async function callsIn(call: () => Promise<unknown> | unknown, inFlight = 50): Promise<number> {
  let calls = 0;
  const start = performance.now();
  while (performance.now() - start < DURATION_MS) {
    await Promise.all(Array.from({ length: inFlight }, () => call()));
    calls += inFlight;
  }
  return calls;
}

it("messages:list through the function path and in SQL", async () => {
  const name = "runtime-bench";
  const created = await worker.fetch(`http://bench/d/${name}/api/admin/deployment`, { method: "POST", headers: admin });
  if (!created.ok && created.status !== 409) throw new Error(`create: ${created.status} ${await created.text()}`);
  await worker.fetch(`http://bench/d/${name}/api/status`);
  const ns = (env as unknown as { DEPLOYMENTS: DurableObjectNamespace }).DEPLOYMENTS;
  const stub = ns.get(ns.idFromName(name));
  const result = await runInDurableObject(stub, async (instance: unknown, state: DurableObjectState) => {
    const runtime = (instance as { runtime: { engine: Engine; sync?: { source?: { instances?: { get(key: string): { dirty: boolean } | undefined } } } } })
      .runtime;
    const engine = runtime.engine;
    for (let i = 0; i < MESSAGES; i++)
      await engine.runMutation("messages:send", { chatId: i % 2 === 0 ? "bench" : "other", author: "a", body: `message number ${i} with a few words` });
    const viaEngine = await engine.runQuery("messages:list", { chatId: "bench" });
    if ((viaEngine.value as unknown[]).length !== 20) throw new Error("expected 20 messages");
    const sql = state.storage.sql;
    // The index range of chat "bench" in messages.by_chat, as the store binds it.
    const prefix = encodeKey(["bench"]);
    const start = keyToBytes(prefix).buffer as ArrayBuffer;
    const end = keyToBytes(prefixSuccessor(prefix)!).buffer as ArrayBuffer;
    const direct = () => {
      const rows = sql.exec<{ json: string }>(
        `SELECT d.json AS json FROM index_entries e JOIN documents d ON d.id = e.doc_id
         WHERE e.index_name = 'messages.by_chat' AND e.key >= ? AND e.key < ? ORDER BY e.key DESC LIMIT 20`,
        start,
        end,
      );
      const out: unknown[] = [];
      for (const row of rows) out.push(JSON.parse(row.json));
      if (out.length !== 20) throw new Error(`expected 20 rows, got ${out.length}`);
      return out;
    };
    const sqlRate = await rate(direct);
    const list = () => engine.runQuery("messages:list", { chatId: "bench" });
    if (profiling()) {
      // `npm run bench -- profile runtime`: one round of each, side by side in the profile's table.
      await profileWindow(
        "SQL read",
        "call",
        (calls) => calls,
        () => callsIn(direct),
      );
      await profileWindow(
        "messages:list run",
        "call",
        (calls) => calls,
        () => callsIn(list),
      );
    }
    // The query cache, where the engine has one: hits, and misses (the entry marked dirty first, as a commit into its read-set would).
    const cache = engine.query?.bind(engine);
    const instances = runtime.sync?.source?.instances;
    const cached = cache ? () => cache("messages:list", { chatId: "bench" }) : null;
    const missed = cache
      ? async () => {
          const entry = instances?.get(`messages:list|{"chatId":"bench"}`);
          if (entry) entry.dirty = true;
          return cache("messages:list", { chatId: "bench" });
        }
      : null;
    if (cached) await cached();
    const cacheRates = async () => {
      if (!cached || !missed) return {};
      let missRate = 0;
      let runOneRate = 0;
      for (let round = 0; round < ROUNDS; round++) {
        missRate = Math.max(missRate, await rate(missed, 1, 1));
        runOneRate = Math.max(runOneRate, await rate(list, 1, 1));
      }
      return { cachedRate: await rate(cached), missRate, runOneRate };
    };
    // Only an engine with guarded code has something to compare (the commit before the runtime has neither, nor this app layout).
    if (!(Symbol.for("calmsync.syncGuard") in globalThis)) return { sqlRate, engineRate: await rate(list), ...(await cacheRates()) };
    const guarded = engine.functions.get("messages:list");
    const plainModule = (await import("../../../convex/messages.ts")) as Record<string, unknown>;
    const { registerModules } = (await import("../../../src/engine/index.ts")) as unknown as {
      registerModules: (modules: Record<string, Record<string, unknown>>) => Map<string, unknown>;
    };
    const plain = registerModules({ messages: plainModule }).get("messages:list");
    const functions = engine.functions as Map<string, unknown>;
    let engineRate = 0;
    let unguardedRate = 0;
    for (let round = 0; round < ROUNDS; round++) {
      functions.set("messages:list", guarded);
      engineRate = Math.max(engineRate, await rate(list, 1));
      functions.set("messages:list", plain);
      unguardedRate = Math.max(unguardedRate, await rate(list, 1));
    }
    functions.set("messages:list", guarded);
    return { sqlRate, engineRate, unguardedRate, ...(await cacheRates()) };
  });
  console.log(`BENCH-RUNTIME:${JSON.stringify(result)}`);
});
