/**
 * `npm run bench`: every benchmark, printed as markdown for docs/BENCHMARKS.md.
 *
 * 1. Engine benchmarks in plain Node (no Cloudflare runtime).
 * 2. Fan-out over real loopback sockets against `wrangler dev`.
 * 3. Fan-out inside workerd (10,000 sockets would exhaust this machine's file
 *    descriptors through wrangler dev's proxy, which holds ~4 per socket).
 * 4. Fairness and slow consumers over loopback sockets against `wrangler dev`.
 *
 * 5. The function path inside workerd: `messages:list` through the Convex
 *    runtime, the same read in SQL, and the engine before the runtime (run
 *    from a temporary git worktree of that commit).
 *
 * 6. A 100 MiB file up and down through wrangler dev: streamed by the Worker, and through an HTTP action.
 *
 * 7. Vector search at 100,000 x 1,536 in one object through wrangler dev
 *    (VECTOR_BENCH_DOCUMENTS sets another count).
 *
 * 8. A snapshot import of 1,000,000 small documents into one object through
 *    wrangler dev, and its export (IMPORT_BENCH_DOCUMENTS sets another count).
 *
 * `npm run bench -- <name>` runs one: subscriptions, search, fanout, load, wave, rpc, flood, slow, files, vectors, runtime, import.
 * `npm run bench -- profile [load|runtime|fanout]` profiles those inside workerd instead (below).
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { machine } from "./bench/harness.ts";
import { benchSearchSubscriptions, benchSubscriptionIndex } from "./bench/subscription-index.ts";
import { benchFanout } from "./bench/fanout.ts";
import { benchSearch } from "./bench/search.ts";
import { benchSlowConsumer } from "./bench/slow-consumer.ts";
import { benchFlood } from "./bench/flood.ts";
import { benchFiles } from "./bench/files.ts";
import { benchVectors } from "./bench/vectors.ts";
import { benchImport } from "./bench/import.ts";
import { profileWorkerdBench } from "./bench/workerd-profile.ts";

const only = process.argv[2];
const run = (name: string) => !only || only === name;

console.log(`# calmsync benchmarks\n\n${new Date().toISOString().slice(0, 10)} · ${machine()}\n`);
if (run("subscriptions")) {
  console.log(`## Subscription index: 10,000 writes\n\n${benchSubscriptionIndex()}\n`);
  console.log(`## Search subscriptions: 2,000 writes\n\n${benchSearchSubscriptions()}\n`);
}
if (run("search")) console.log(`## Search\n\n${benchSearch()}\n`);
/** Runs the workerd benchmarks (vitest-plugin) and returns each printed table by name. */
function workerdTables(files: string[], extraEnv: Record<string, string> = {}): Map<string, string> {
  const result = spawnSync(process.execPath, ["node_modules/vitest/vitest.mjs", "run", "-c", "vitest.bench.config.ts", ...files], {
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", ...extraEnv },
  });
  const tables = new Map<string, string>();
  for (const match of result.stdout.matchAll(/BENCH-TABLE:(\w+)\n([\s\S]*?)\nBENCH-END/g)) tables.set(match[1]!, match[2]!);
  if (result.status !== 0 || tables.size < files.length) {
    throw new Error(`workerd benchmarks failed:\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`);
  }
  return tables;
}

if (run("fanout")) {
  console.log(`## Fan-out over loopback sockets (wrangler dev)\n\n${await benchFanout([1_000])}\n`);
  // One workerd per placement: after the one-object runs' 11,000 sockets, the 4-shard run in the same
  // process did not finish within 10 minutes, while alone it takes about a minute.
  const shardCounts = (process.env.BENCH_FANOUT_SHARDS || "1,4").split(",");
  const tables = shardCounts.map((shards) => workerdTables(["scripts/bench/workerd/fanout.bench-run.ts"], { BENCH_FANOUT_SHARDS: shards }));
  // One table: the first run's header, then every run's rows.
  const fanout = tables
    .flatMap((each, i) =>
      each
        .get("fanout")!
        .split("\n")
        .slice(i === 0 ? 0 : 2),
    )
    .join("\n");
  console.log(`## Fan-out inside workerd (sockets without TCP)\n\n${fanout}\n`);
  const limit = tables[shardCounts.indexOf("1")]?.get("fanoutlimit");
  if (limit) console.log(`### Fan-out against its limit (same run, same object and sockets)\n\n${limit}\n`);
}
if (run("load")) {
  const tables = workerdTables(["scripts/bench/workerd/load.bench-run.ts"]);
  console.log(`## Commits under 10,000 live subscriptions (inside workerd)\n\n${tables.get("load")}\n`);
  console.log(`### Commits against their limit (same run, same object, sockets and writers)\n\n${tables.get("loadlimit")}\n`);
}
if (run("wave")) {
  const tables = workerdTables(["scripts/bench/workerd/wave.bench-run.ts"]);
  console.log(`## A reconnect wave: waiting room against 429 (inside workerd)\n\n${tables.get("wave")}\n`);
}
if (run("rpc")) {
  const tables = workerdTables(["scripts/bench/workerd/rpc.bench-run.ts"]);
  console.log(`## One Durable Object calling another over RPC (inside workerd)\n\n${tables.get("rpc")}\n`);
}
if (run("flood")) console.log(`## One socket floods, another client writes (wrangler dev)\n\n${await benchFlood()}\n`);
if (run("slow")) console.log(`## A client that stops reading (wrangler dev)\n\n${await benchSlowConsumer()}\n`);
if (run("files")) console.log(`## A 100 MiB file up and down (wrangler dev, R2 simulated)\n\n${await benchFiles()}\n`);
if (run("vectors")) {
  const count = Number(process.env.VECTOR_BENCH_DOCUMENTS ?? 100_000);
  console.log(`## Vector search: ${count.toLocaleString("en-US")} x 1,536 in one object (wrangler dev)\n\n${await benchVectors(count)}\n`);
}
if (run("import")) {
  const count = Number(process.env.IMPORT_BENCH_DOCUMENTS ?? 1_000_000);
  console.log(`## Snapshot import: ${count.toLocaleString("en-US")} small documents into one object (wrangler dev)\n\n${await benchImport(count)}\n`);
}

/** The last commit with the look-alike engine, before functions ran on convex/server. */
const ENGINE_BEFORE_RUNTIME = "ca3d67f";
const RUNTIME_BENCH = "scripts/bench/workerd/runtime.bench-run.ts";
/** What the runtime benchmark imports besides the engine (copied beside it into the older worktree). */
const PROFILE_WINDOW = "scripts/bench/workerd/profile-window.ts";

/** Runs the runtime benchmark inside workerd in `cwd`: executions per second through the engine and in SQL. */
function runtimeRates(cwd: string): {
  sqlRate: number;
  engineRate: number;
  unguardedRate?: number;
  cachedRate?: number;
  missRate?: number;
  runOneRate?: number;
} {
  const result = spawnSync(process.execPath, ["node_modules/vitest/vitest.mjs", "run", "-c", "vitest.bench.config.ts", RUNTIME_BENCH], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
  });
  const match = /BENCH-RUNTIME:(\{.*\})/.exec(result.stdout);
  if (result.status !== 0 || !match) throw new Error(`runtime benchmark failed in ${cwd}:\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`);
  return JSON.parse(match[1]!) as { sqlRate: number; engineRate: number; unguardedRate?: number };
}

/** The same benchmark on the engine before the runtime: a temporary worktree of that commit, sharing node_modules. */
function runtimeRatesBefore(): { sqlRate: number; engineRate: number } | null {
  const dir = mkdtempSync(join(tmpdir(), "calmsync-before-runtime-"));
  const git = (...args: string[]) => spawnSync("git", args, { encoding: "utf8" });
  if (git("worktree", "add", "--detach", dir, ENGINE_BEFORE_RUNTIME).status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  try {
    symlinkSync(resolve("node_modules"), join(dir, "node_modules"));
    copyFileSync(RUNTIME_BENCH, join(dir, RUNTIME_BENCH));
    copyFileSync(PROFILE_WINDOW, join(dir, PROFILE_WINDOW));
    return runtimeRates(dir);
  } finally {
    git("worktree", "remove", "--force", dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (run("runtime")) {
  const now = runtimeRates(process.cwd());
  const before = runtimeRatesBefore();
  const row = (label: string, rate: number, sql: number) => `| ${label} | ${Math.round(rate).toLocaleString("en-US")} | ${(rate / sql).toFixed(2)} |`;
  const rows = [
    "| path | executions/s | vs SQL in the same run |",
    "|---|---:|---:|",
    row("SQL: the index range joined to documents, LIMIT 20, parsed", now.sqlRate, now.sqlRate),
    row("`messages:list` on the convex/server runtime, a run every call (`engine.runQuery`)", now.engineRate, now.sqlRate),
    ...(now.cachedRate ? [row("`messages:list` through the query cache, a repeat caller (a hit: no run)", now.cachedRate, now.sqlRate)] : []),
    ...(now.unguardedRate
      ? [
          row(
            `\`messages:list\` without its guard calls (the app's file as written; guarded ÷ this: ${(now.engineRate / now.unguardedRate).toFixed(3)})`,
            now.unguardedRate,
            now.sqlRate,
          ),
        ]
      : []),
    before
      ? row(`\`messages:list\` on the engine before it (${ENGINE_BEFORE_RUNTIME})`, before.engineRate, before.sqlRate)
      : `| engine before the runtime | (commit ${ENGINE_BEFORE_RUNTIME} not in this clone) | |`,
  ];
  const miss =
    now.missRate && now.runOneRate
      ? `\nOne call in flight (50 identical misses at once share one run): a miss through the cache ${Math.round(now.missRate).toLocaleString("en-US")}/s, \`engine.runQuery\` ${Math.round(now.runOneRate).toLocaleString("en-US")}/s (miss ÷ run ${(now.missRate / now.runOneRate).toFixed(2)}).\n`
      : "";
  console.log(`## The function path: messages:list, newest 20 of 100 (inside workerd, 50 calls in flight)\n\n${rows.join("\n")}\n${miss}`);
}

/**
 * `npm run bench -- profile [load|runtime|fanout]`: CPU profiles of those workerd benchmarks' windows,
 * calmsync beside its limit, as tables of where the time goes (scripts/bench/workerd-profile.ts);
 * the `.cpuprofile` files land in bench-profiles/. Only when asked: profiling slows what it measures.
 */
if (only === "profile") {
  const which = process.argv[3];
  const profiles: [name: string, file: string, env: Record<string, string>][] = [
    ["load", "scripts/bench/workerd/load.bench-run.ts", { BENCH_LOAD_BUDGETS: "0" }],
    ["runtime", RUNTIME_BENCH, {}],
    ["fanout", "scripts/bench/workerd/fanout.bench-run.ts", { BENCH_FANOUT_SHARDS: "1" }],
  ];
  for (const [name, file, env] of profiles.filter(([name]) => !which || which === name)) {
    const table = await profileWorkerdBench(file, join("bench-profiles", name), env);
    console.log(`## Where the time goes: ${name} (workerd CPU profile, ${file})\n\n${table}\n`);
  }
}
