/**
 * `npm run bench`: every benchmark, printed as markdown for docs/BENCHMARKS.md.
 *
 * 1. Engine benchmarks in plain Node (no Cloudflare runtime).
 * 2. Fan-out over real loopback sockets against `wrangler dev`.
 * 3. Fan-out inside workerd (10,000 sockets would exhaust this machine's file
 *    descriptors through wrangler dev's proxy, which holds ~4 per socket).
 * 4. Fairness and slow consumers over loopback sockets against `wrangler dev`.
 *
 * `npm run bench -- <name>` runs one: subscriptions, search, fanout, load, wave, flood, slow.
 */
import { spawnSync } from "node:child_process";
import { machine } from "./bench/harness.ts";
import { benchSearchSubscriptions, benchSubscriptionIndex } from "./bench/subscription-index.ts";
import { benchFanout } from "./bench/fanout.ts";
import { benchSearch } from "./bench/search.ts";
import { benchSlowConsumer } from "./bench/slow-consumer.ts";
import { benchFlood } from "./bench/flood.ts";

const only = process.argv[2];
const run = (name: string) => !only || only === name;

console.log(`# calmsync benchmarks\n\n${new Date().toISOString().slice(0, 10)} · ${machine()}\n`);
if (run("subscriptions")) {
  console.log(`## Subscription index: 10,000 writes\n\n${benchSubscriptionIndex()}\n`);
  console.log(`## Search subscriptions: 2,000 writes\n\n${benchSearchSubscriptions()}\n`);
}
if (run("search")) console.log(`## Search\n\n${benchSearch()}\n`);
/** Runs the workerd benchmarks (vitest-plugin) and returns each printed table by name. */
function workerdTables(files: string[]): Map<string, string> {
  const result = spawnSync(process.execPath, ["node_modules/vitest/vitest.mjs", "run", "-c", "vitest.bench.config.ts", ...files], {
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
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
  const tables = workerdTables(["scripts/bench/workerd/fanout.bench-run.ts"]);
  console.log(`## Fan-out inside workerd (sockets without TCP)\n\n${tables.get("fanout")}\n`);
}
if (run("load")) {
  const tables = workerdTables(["scripts/bench/workerd/load.bench-run.ts"]);
  console.log(`## Commits under 10,000 live subscriptions (inside workerd)\n\n${tables.get("load")}\n`);
}
if (run("wave")) {
  const tables = workerdTables(["scripts/bench/workerd/wave.bench-run.ts"]);
  console.log(`## A reconnect wave: waiting room against 429 (inside workerd)\n\n${tables.get("wave")}\n`);
}
if (run("flood")) console.log(`## One socket floods, another client writes (wrangler dev)\n\n${await benchFlood()}\n`);
if (run("slow")) console.log(`## A client that stops reading (wrangler dev)\n\n${await benchSlowConsumer()}\n`);
