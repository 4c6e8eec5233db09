/**
 * The function path's fixed cost per run, in plain Node (issue 27 item 4):
 * CPU time per call (process.cpuUsage, so other load on the machine counts
 * little) of a query that returns a constant, of `messages:list` (newest 20
 * of 100 in its chat; also without its loop guard calls, the app's file as
 * written), and of `messages:list` answered from the query cache,
 * each through the engine on the in-memory store, one call at a time, rounds
 * alternating. The constant query's cost is what every run pays whatever it
 * reads: transaction, read-set, lock, argument checks, the run scope, the
 * convex/server wrapper. Run: `node scripts/bench/function-path.ts`.
 */
import { register } from "node:module";
import { queryGeneric } from "convex/server";
import { v } from "convex/values";
import { Engine, loadApp, MemoryStore, registerModules, Schema } from "../../src/engine/index.ts";
import { localFront } from "../../src/sync/local-source.ts";
import { MemorySyncStorage } from "../../src/sync/storage.ts";
import { TEST_SYNC_KNOBS } from "../../src/sync/testing.ts";

// The app's generated modules import "./_generated/server" without an extension, as bundlers allow: resolve those as `.js`, else `.ts`.
register(
  "data:text/javascript," +
    encodeURIComponent(
      "export async function resolve(s, c, next) { try { return await next(s, c); } catch (e) { if (e.code !== 'ERR_MODULE_NOT_FOUND' || /\\.[cm]?[jt]s$/.test(s)) throw e; try { return await next(s + '.js', c); } catch { return next(s + '.ts', c); } } }",
    ),
);
const { app: generated } = await import("../../convex/_generated/modules.js");

const CALLS = 2_000;
const ROUNDS = Number(process.env.ROUNDS ?? 5);

const app = await loadApp(generated);
const bench = {
  constant: queryGeneric({ args: {}, handler: async () => 1 }),
  constantWithArgs: queryGeneric({ args: { chatId: v.string() }, handler: async () => 1 }),
};
// The app's file as written (no guard calls, src/engine/sync-guard.ts), as module `plain`: the loop guard's cost is the difference.
const plain = (await import("../../convex/messages.ts")) as Record<string, unknown>;
const engine = new Engine({ schema: new Schema(app.schema), functions: registerModules({ ...app.modules, bench, plain }), store: new MemoryStore() });
// The deployment object's wiring: the sync layer's instances are the engine's query cache.
const front = localFront({ engine, storage: new MemorySyncStorage(), knobs: () => TEST_SYNC_KNOBS, advanceTimestamp: () => undefined, log: () => undefined });
// A miss every call: the entry marked dirty first, as a commit into its read-set would (a run plus the cache's bookkeeping).
const instances = (front.source as { instances?: { get(key: string): { dirty: boolean } | undefined } }).instances;
const missed = () => {
  const entry = instances?.get(`messages:list|{"chatId":"bench"}`);
  if (entry) entry.dirty = true;
  return engine.query("messages:list", { chatId: "bench" });
};
for (let i = 0; i < 200; i++)
  await engine.runMutation("messages:send", { chatId: i % 2 === 0 ? "bench" : "other", author: "a", body: `message number ${i} with a few words` });

/** CPU µs per call of `call`, `CALLS` calls one after another. */
async function cpuPerCall(call: () => Promise<unknown>): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) await call();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / CALLS;
}

const ways: [string, () => Promise<unknown>][] = [
  ["constant query, no arguments (engine.runQuery: a run)", () => engine.runQuery("bench:constant", {})],
  ["constant query, args { chatId: v.string() } (a run)", () => engine.runQuery("bench:constantWithArgs", { chatId: "bench" })],
  ["messages:list (engine.runQuery: a run)", () => engine.runQuery("messages:list", { chatId: "bench" })],
  ["messages:list without its guard calls (a run)", () => engine.runQuery("plain:list", { chatId: "bench" })],
  // An engine without the query cache (a commit before it, for A/B runs) has no `query`.
  ...("query" in engine
    ? ([
        ["messages:list (engine.query: a cache miss, a run)", missed],
        ["messages:list (engine.query: a cache hit)", () => engine.query("messages:list", { chatId: "bench" })],
      ] as [string, () => Promise<unknown>][])
    : []),
];
const best = new Map<string, number>();
for (const [, call] of ways) await cpuPerCall(call); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, call] of ways) best.set(name, Math.min(best.get(name) ?? Infinity, await cpuPerCall(call)));
}
console.log("| path | CPU µs per call (best of rounds) |\n|---|---:|");
for (const [name] of ways) console.log(`| ${name} | ${best.get(name)!.toFixed(1)} |`);
