/**
 * `npm run bench`: every benchmark, printed as markdown for docs/BENCHMARKS.md.
 *
 * 1. Engine benchmarks in plain Node (no Cloudflare runtime).
 * 2. Fan-out over real loopback sockets against `wrangler dev`.
 * 3. Fan-out inside workerd (10,000 sockets would exhaust this machine's file
 *    descriptors through wrangler dev's proxy, which holds ~4 per socket).
 */
import { spawnSync } from "node:child_process";
import { machine } from "./bench/harness.ts";
import { benchSubscriptionIndex } from "./bench/subscription-index.ts";
import { benchFanout } from "./bench/fanout.ts";
import { benchSearch } from "./bench/search.ts";

const only = process.argv[2];
const run = (name: string) => !only || only === name;

console.log(`# calmsync benchmarks\n\n${new Date().toISOString().slice(0, 10)} · ${machine()}\n`);
if (run("subscriptions")) console.log(`## Subscription index: 10,000 writes\n\n${benchSubscriptionIndex()}\n`);
if (run("search")) console.log(`## Search\n\n${benchSearch()}\n`);
if (run("fanout")) {
  console.log(`## Fan-out over loopback sockets (wrangler dev)\n\n${await benchFanout([1_000])}\n`);
  const inWorkerd = spawnSync(process.execPath, ["node_modules/vitest/vitest.mjs", "run", "-c", "vitest.bench.config.ts"], { encoding: "utf8", env: { ...process.env, WRANGLER_SEND_METRICS: "false" } });
  const table = inWorkerd.stdout.split("BENCH-TABLE\n")[1]?.split("\n").filter((line) => line.startsWith("|")).join("\n");
  if (inWorkerd.status !== 0 || !table) throw new Error(`workerd fan-out bench failed:\n${inWorkerd.stdout.slice(-3000)}\n${inWorkerd.stderr.slice(-3000)}`);
  console.log(`## Fan-out inside workerd (sockets without TCP)\n\n${table}\n`);
}
