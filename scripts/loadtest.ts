/**
 * `npm run loadtest -- --scenario <chat|outage> [--clients N] [--seconds S] [--client KIND] [--compare] [--shards 1,4] [--url U] [--allow-remote] [--out DIR]`
 *
 * Real clients against a real deployment: starts `wrangler dev` on a free
 * loopback port (or targets `--url`, which must be loopback unless
 * `--allow-remote`), opens N clients of one kind, runs the scenario, stops by
 * itself, and records per second: sessions (live, waiting, background),
 * socket attempts, refusals, closes by code, query executions, refresh queue
 * depth, transitions, commits and commit → client update latency. Writes a
 * JSON report and a self-contained HTML report with charts.
 *
 * Client kinds, each the real thing: `current` (the `convex` package),
 * `legacy` (`convex@1.24.6`, before the June 2025 backoff fix, under an npm
 * alias), `transport` (current with `calmsync/client`, a third of the pages
 * hidden). `--compare` runs the scenario once per kind, each on a fresh
 * deployment of the same server. `--shards 1,4` runs each kind once per
 * placement: on the deployment object alone (1), and with its sockets spread
 * over that many sync shards (knob `syncShards`, set before any client opens).
 *
 * Scenarios:
 * - `chat`: every client watches its chat's newest 20 messages and a search
 *   in it; a writer sends steadily to random chats; search compaction runs
 *   every few seconds.
 * - `outage`: the chat scenario, then the postmortem replayed: the deployment
 *   is put on the free tier's knobs at runtime (the wrong-hardware mistake), a
 *   burst touches every chat, the runtime is killed and restarted, the tier is
 *   restored. Reports what the operator saw (knobs below the tier), the time
 *   from the restart until every client is live again and until equilibrium
 *   (live, executions back to the steady rate), peak executions per second,
 *   socket attempts and the peak of waiting sessions.
 * - `search`: every client watches a search in its chat; the writer sends
 *   words nobody searches for while compactions run every 2 s, and a prober
 *   times searches over HTTP. Reports the invalidations over the run (search
 *   maintenance and unrelated writes must cause none) and search latency.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { ConvexClient as ConvexClient1246 } from "convex-1.24.6/browser";
import { anyApi } from "convex/server";
import { calmsyncWebSocket } from "../src/client/index.ts";
import { TIERS } from "../src/knobs/tiers.ts";
import { startDevServer, TEST_ADMIN_KEY, type DevServer } from "./lib/wrangler-dev.ts";
import { adminStatus, createDeployment, knobReport, MANY_CLIENTS_FROM_HERE, setKnobs } from "./lib/admin.ts";
import { machine, percentile } from "./bench/harness.ts";

const KINDS = ["current", "legacy", "transport"] as const;
type Kind = (typeof KINDS)[number];
const SCENARIOS = ["chat", "outage", "search"] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Options {
  scenario: Scenario;
  clients: number;
  seconds: number;
  kinds: Kind[];
  /** syncShards of each run (1: the deployment object alone). */
  shards: number[];
  url: string | null;
  out: string;
}

function parseArgs(argv: string[]): Options {
  const value = (flag: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
  const scenario = (value("--scenario") ?? "chat") as Scenario;
  if (!SCENARIOS.includes(scenario)) throw new Error(`--scenario must be one of ${SCENARIOS.join(", ")}`);
  const clients = Number(value("--clients") ?? 300);
  const seconds = Number(value("--seconds") ?? 60);
  if (!Number.isInteger(clients) || clients < 1 || clients > 2_000) throw new Error("--clients must be 1-2000 (loopback: about 4 file descriptors per socket)");
  if (!Number.isFinite(seconds) || seconds < 3 || seconds > 600) throw new Error("--seconds must be 3-600");
  const kind = (value("--client") ?? "current") as Kind;
  if (!KINDS.includes(kind)) throw new Error(`--client must be one of ${KINDS.join(", ")}`);
  const url = value("--url") ?? null;
  if (url && !argv.includes("--allow-remote")) {
    const host = new URL(url).hostname;
    if (!(host === "localhost" || host === "[::1]" || host.startsWith("127.")))
      throw new Error(`--url ${url} is not a loopback address; add --allow-remote to load it anyway`);
  }
  const shards = (value("--shards") ?? "1").split(",").map(Number);
  if (shards.some((n) => !Number.isInteger(n) || n < 1 || n > 64)) throw new Error("--shards must be a comma-separated list of 1-64");
  return {
    scenario,
    clients,
    seconds,
    kinds: argv.includes("--compare") ? [...KINDS] : [kind],
    shards,
    url,
    out: resolve(value("--out") ?? "test-results/loadtest"),
  };
}

/** One second of a run; deployment counters are null when the admin status could not be read (a restart). */
interface Second {
  t: number;
  sessions: number | null;
  waiting: number | null;
  background: number | null;
  attempts: number;
  refusals: number;
  closes: Record<string, number>;
  queryExecutions: number;
  refreshQueue: number | null;
  transitions: number;
  commits: number;
  latencyP50: number | null;
  latencyP99: number | null;
  live: number;
}

interface RunReport {
  kind: Kind;
  shards: number;
  scenario: Scenario;
  clients: number;
  seconds: Second[];
  summary: Record<string, number | string | null>;
}

const CHATS = 50;
const WORDS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "olive", "peach"];

/** Polls the deployment's counters each second and the clients' own counts. */
async function runScenario(
  server: { url: string; restart?: () => Promise<void>; kill?: () => Promise<void> },
  options: Options,
  kind: Kind,
  shards: number,
): Promise<RunReport> {
  const url = await createDeployment(server.url, `load-${options.scenario}-${kind}-${shards}-${Date.now().toString(36)}`);
  // Before any socket: the Worker asks a deployment it has not seen for its shard count at once.
  if (shards > 1) await setKnobs(url, { syncShards: shards });
  await setKnobs(url, MANY_CLIENTS_FROM_HERE);
  const standard = Object.fromEntries((await knobReport(url)).map((k) => [k.name, k.default]));
  let attempts = 0;
  let refusals = 0;
  const closes: Record<string, number> = {};
  const latencies: number[] = [];
  const live = new Set<number>();
  const seen = new Map<number, Set<string>>();
  class CountingWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols);
      attempts++;
      // A refused upgrade surfaces as an error ("Unexpected server response: 429"), then a close.
      this.on("error", (error: Error) => {
        if (/Unexpected server response: 429/.test(error.message)) refusals++;
      });
      this.on("close", (code: number) => (closes[code] = (closes[code] ?? 0) + 1));
    }
  }
  const clients = Array.from({ length: options.clients }, (_, i) => {
    const chatId = `chat${i % CHATS}`;
    const common = { skipConvexDeploymentUrlCheck: true, logger: false, unsavedChangesWarning: false };
    const hidden = kind === "transport" && i % 3 === 0;
    const client =
      kind === "legacy"
        ? new ConvexClient1246(url, { ...common, webSocketConstructor: CountingWebSocket as never })
        : new ConvexClient(url, {
            ...common,
            webSocketConstructor: (kind === "transport"
              ? calmsyncWebSocket({
                  WebSocket: CountingWebSocket as never,
                  backgroundAfterMs: 1_000,
                  visibility: { hidden: () => hidden, subscribe: () => () => undefined },
                })
              : CountingWebSocket) as never,
          });
    const known = new Set<string>();
    seen.set(i, known);
    if (options.scenario === "search") {
      (client as ConvexClient).onUpdate(anyApi.messages!.search!, { chatId, query: WORDS[i % WORDS.length]! }, () => live.add(i));
      return client as { close(): Promise<void> };
    }
    (client as ConvexClient).onUpdate(anyApi.messages!.list!, { chatId }, (messages: { _id: string; _creationTime: number }[]) => {
      live.add(i);
      const now = Date.now();
      for (const m of messages) {
        if (known.has(m._id)) continue;
        if (known.size > 0) latencies.push(now - m._creationTime);
        known.add(m._id);
      }
    });
    (client as ConvexClient).onUpdate(anyApi.messages!.search!, { chatId, query: WORDS[i % WORDS.length]! }, () => undefined);
    return client as { close(): Promise<void> };
  });
  const writer = new ConvexHttpClient(url, { skipConvexDeploymentUrlCheck: true });
  const auth = { Authorization: `Bearer ${TEST_ADMIN_KEY}` };
  const seconds: Second[] = [];
  const start = Date.now();
  const end = start + options.seconds * 1_000;
  let stopped = false;
  let sends = 0;
  // Steady writes: 20/s to random chats (bounded by the run's time).
  const writing = (async () => {
    while (!stopped && Date.now() < end) {
      // The search scenario writes words nobody searches for: no subscription may be invalidated by them.
      const word = options.scenario === "search" ? "zzfiller" : WORDS[sends % WORDS.length];
      await writer
        .mutation(anyApi.messages!.send!, { chatId: `chat${Math.floor(Math.random() * CHATS)}`, author: "load", body: `${word} message ${sends++}` })
        .catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const events: string[] = [];
  const outage = options.scenario === "outage" ? planOutage(options.seconds) : null;
  const done = new Set<string>();
  /** Each outage step once, at its second or the first poll after it (a restart can take several seconds). */
  const due = (step: keyof ReturnType<typeof planOutage>, t: number) => outage !== null && t >= outage[step] && !done.has(step) && done.add(step) !== undefined;
  const restoreTier = async (t: number) => {
    events.push(`${t}s: tier restored`);
    const restore = Object.fromEntries(Object.keys(TIERS.free.knobs).map((k) => [k, standard[k]!]));
    await setKnobs(url, restore).catch((e) => events.push(`restoring failed: ${e}`));
  };
  let previous: Record<string, number> | null = null;
  /** When every client was live again after the restart. */
  let liveAgainAt: number | null = null;
  let restartedAt: number | null = null;
  let peakExecutions = 0;
  let compactions = 0;
  const searchLatencies: number[] = [];
  let invalidationsAtStart: number | null = null;
  let invalidationsAtEnd: number | null = null;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 1_000));
    const t = Math.round((Date.now() - start) / 1_000);
    if (t % (options.scenario === "search" ? 2 : 5) === 0) {
      const report = await fetch(`${url}/api/admin/compact`, { method: "POST", headers: auth })
        .then((r) => r.json() as Promise<{ compacted: number }>)
        .catch(() => null);
      compactions += report?.compacted ?? 0;
    }
    if (options.scenario === "search") {
      const started = performance.now();
      await writer.query(anyApi.messages!.search!, { chatId: `chat${t % CHATS}`, query: WORDS[t % WORDS.length]! }).catch(() => undefined);
      searchLatencies.push(performance.now() - started);
    }
    if (due("lowerTier", t)) {
      events.push(`${t}s: tier lowered to free at runtime`);
      await setKnobs(url, TIERS.free.knobs as Record<string, number>).catch((e) => events.push(`lowering failed: ${e}`));
      // What the operator sees: the admin status (and the dashboard's banner) names the knobs below the tier.
      const seen = await adminStatus<{ tier: { belowTier: string[] } }>(url).catch(() => null);
      events.push(`operator saw: ${seen?.tier.belowTier.length ? `BELOW TIER: ${seen.tier.belowTier.join(", ")}` : "nothing"}`);
    }
    if (due("burst", t)) {
      events.push(`${t}s: a burst touching every chat`);
      await writer
        .mutation(anyApi.messages!.broadcast!, { chatIds: Array.from({ length: CHATS }, (_, c) => `chat${c}`), author: "burst", body: "burst everywhere" })
        .catch(() => undefined);
    }
    if (due("restart", t) && server.kill && server.restart) {
      events.push(`${t}s: runtime killed and restarted`);
      live.clear();
      await server.kill();
      restartedAt = Date.now();
      await server.restart();
    }
    if (due("restoreTier", t)) await restoreTier(t);
    if (restartedAt !== null && liveAgainAt === null && live.size === options.clients) liveAgainAt = Date.now();
    const status = await adminStatus<{
      invalidations: number;
      queryExecutions: number;
      transitionsSent: number;
      commits: number;
      sessions: number;
      shards: { waiting: number | null }[];
      limits: { sessions: { current: number; background: number }; waiting: { current: number }; refreshQueue: { depth: number; overflow: number } };
    }>(url).catch(() => null);
    const counters = status ? { queryExecutions: status.queryExecutions, transitions: status.transitionsSent, commits: status.commits } : null;
    // Counters restart with the object: a drop is a restart, and the delta is the new value.
    const delta = (name: "queryExecutions" | "transitions" | "commits") =>
      counters && previous ? (counters[name] >= previous[name]! ? counters[name] - previous[name]! : counters[name]) : 0;
    const sorted = latencies.splice(0).sort((a, b) => a - b);
    const executions = delta("queryExecutions");
    peakExecutions = Math.max(peakExecutions, executions);
    seconds.push({
      t,
      // The whole deployment's: the object's own and its shards'.
      sessions: status?.sessions ?? null,
      waiting: status ? status.limits.waiting.current + status.shards.reduce((n, shard) => n + (shard.waiting ?? 0), 0) : null,
      background: status?.limits.sessions.background ?? null,
      attempts,
      refusals,
      closes: { ...closes },
      queryExecutions: executions,
      refreshQueue: status ? status.limits.refreshQueue.depth + status.limits.refreshQueue.overflow : null,
      transitions: delta("transitions"),
      commits: delta("commits"),
      latencyP50: sorted.length ? percentile(sorted, 50) : null,
      latencyP99: sorted.length ? percentile(sorted, 99) : null,
      live: live.size,
    });
    if (counters) previous = counters;
    // Counted once every client is live (first results are runs, not invalidations).
    if (status && live.size === options.clients) {
      invalidationsAtStart ??= status.invalidations;
      invalidationsAtEnd = status.invalidations;
    }
  }
  // A slow restart can push the last step past the end of a short run: never leave the deployment below its tier.
  if (outage !== null && due("restoreTier", Infinity)) await restoreTier(Math.round((Date.now() - start) / 1_000));
  stopped = true;
  await writing;
  await Promise.all(clients.map((c) => c.close()));
  const all = seconds.flatMap((s) => (s.latencyP50 === null ? [] : [s.latencyP50]));
  return {
    kind,
    shards,
    scenario: options.scenario,
    clients: options.clients,
    seconds,
    summary: {
      socketAttempts: attempts,
      refusals,
      closes: JSON.stringify(closes),
      peakWaitingSessions: Math.max(0, ...seconds.map((s) => s.waiting ?? 0)),
      peakExecutionsPerSecond: peakExecutions,
      medianOfSecondP50LatencyMs: all.length
        ? percentile(
            [...all].sort((a, b) => a - b),
            50,
          )
        : null,
      liveAtEnd: live.size,
      allLiveAgainMs: restartedAt === null ? null : liveAgainAt === null ? "not within the run" : liveAgainAt - restartedAt,
      backToEquilibriumMs: equilibriumMs(seconds, outage, restartedAt === null ? null : Math.round((restartedAt - start) / 1_000), options.clients),
      compactions,
      invalidationsOnceLive: invalidationsAtStart === null || invalidationsAtEnd === null ? null : invalidationsAtEnd - invalidationsAtStart,
      searchP50Ms: searchLatencies.length
        ? Math.round(
            percentile(
              [...searchLatencies].sort((a, b) => a - b),
              50,
            ),
          )
        : null,
      searchP99Ms: searchLatencies.length
        ? Math.round(
            percentile(
              [...searchLatencies].sort((a, b) => a - b),
              99,
            ),
          )
        : null,
      events: events.join("; "),
    },
  };
}

/**
 * From the restart until equilibrium: every client live and query executions
 * back to the steady rate (at most 1.5x the median of the seconds before the
 * tier was lowered, plus 5), held for two seconds in a row.
 */
function equilibriumMs(seconds: Second[], outage: ReturnType<typeof planOutage> | null, restartT: number | null, clients: number): number | string | null {
  if (!outage || restartT === null) return null;
  const before = seconds
    .filter((s) => s.t > 2 && s.t < outage.lowerTier)
    .map((s) => s.queryExecutions)
    .sort((a, b) => a - b);
  const steady = before.length ? percentile(before, 50) : 0;
  const after = seconds.filter((s) => s.t > restartT);
  for (let i = 0; i + 1 < after.length; i++) {
    const calm = (s: Second) => s.live === clients && s.queryExecutions <= steady * 1.5 + 5;
    if (calm(after[i]!) && calm(after[i + 1]!)) return (after[i]!.t - restartT) * 1_000;
  }
  return "not within the run";
}

/** When the outage's steps happen, in seconds from the start. */
function planOutage(seconds: number) {
  return {
    lowerTier: Math.round(seconds * 0.25),
    burst: Math.round(seconds * 0.35),
    restart: Math.round(seconds * 0.45),
    restoreTier: Math.round(seconds * 0.6),
  };
}

function html(reports: RunReport[], options: Options, machine: string): string {
  const series: [string, (s: Second) => number | null][] = [
    ["live clients", (s) => s.live],
    ["sessions (admitted)", (s) => s.sessions],
    ["waiting sessions", (s) => s.waiting],
    ["socket attempts (total)", (s) => s.attempts],
    ["query executions/s", (s) => s.queryExecutions],
    ["refresh queue", (s) => s.refreshQueue],
    ["commit → update p99 (ms)", (s) => s.latencyP99],
  ];
  const chart = ([title, pick]: [string, (s: Second) => number | null]) => {
    const points = reports.map((r) => r.seconds.map((s) => [s.t, pick(s)] as [number, number | null]));
    const maxT = Math.max(1, ...points.flat().map(([t]) => t));
    const maxY = Math.max(1, ...points.flat().map(([, y]) => y ?? 0)) * 1.1;
    const lines = points
      .map(
        (p, i) =>
          `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="1.5" points="${p
            .filter(([, y]) => y !== null)
            .map(([t, y]) => `${((t / maxT) * 400).toFixed(1)},${(118 - (y! / maxY) * 114).toFixed(1)}`)
            .join(" ")}"/>`,
      )
      .join("");
    return `<figure><figcaption>${title} <small>(max ${Math.round(maxY / 1.1)})</small></figcaption><svg viewBox="0 0 400 120" preserveAspectRatio="none">${lines}</svg></figure>`;
  };
  const colors = ["#2a6fdb", "#d33", "#2a2", "#a3a", "#e80", "#088"];
  const legend = reports.map((r, i) => `<span style="color:${colors[i % colors.length]}">■ ${runName(r)}</span>`).join(" ");
  const rows = Object.keys(reports[0]!.summary)
    .map((key) => `<tr><th>${key}</th>${reports.map((r) => `<td>${String(r.summary[key] ?? "")}</td>`).join("")}</tr>`)
    .join("");
  return `<!doctype html><meta charset="utf-8"><title>calmsync load test: ${options.scenario}</title>
<style>body{font:14px system-ui;margin:1.5rem;max-width:1100px}figure{display:inline-block;width:32%;margin:0 1% 1rem 0}svg{width:100%;height:120px;border:1px solid #ddd}td,th{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #eee}</style>
<h1>calmsync load test: ${options.scenario}</h1>
<p>${options.clients} clients per kind, ${options.seconds} s · ${new Date().toISOString()} · ${machine}</p>
<p>${legend}</p>${series.map(chart).join("")}
<h2>Summary</h2><table><tr><th></th>${reports.map((r) => `<th>${runName(r)}</th>`).join("")}</tr>${rows}</table>`;
}

/** A run's name in the report: its client kind and where its sockets lived. */
function runName(report: RunReport): string {
  return report.shards > 1 ? `${report.kind}, ${report.shards} shards` : `${report.kind}, one object`;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  let server: DevServer | null = null;
  const target = options.url ? { url: options.url } : (server = await startDevServer());
  const reports: RunReport[] = [];
  try {
    for (const shards of options.shards) {
      for (const kind of options.kinds) {
        console.log(
          `${options.scenario}: ${options.clients} ${kind} clients for ${options.seconds} s against ${target.url}${shards > 1 ? ` over ${shards} sync shards` : ""}`,
        );
        reports.push(await runScenario(target, options, kind, shards));
      }
    }
  } finally {
    await server?.stop();
  }
  mkdirSync(options.out, { recursive: true });
  const base = join(options.out, `${options.scenario}-${Date.now()}`);
  writeFileSync(`${base}.json`, JSON.stringify({ options, machine: machine(), reports }, null, 2));
  writeFileSync(`${base}.html`, html(reports, options, machine()));
  console.log(`\n| ${["run", ...Object.keys(reports[0]!.summary)].join(" | ")} |`);
  for (const r of reports) console.log(`| ${[runName(r), ...Object.values(r.summary).map((v) => String(v ?? ""))].join(" | ")} |`);
  console.log(`\nReport: ${base}.html (and .json)`);
}

await main();
