/**
 * One socket floods, another client keeps working: a raw-protocol socket
 * pipelines `flood` mutations at once while an official `ConvexClient` sends
 * `writes` mutations one after another and a second one watches them arrive.
 * Measures each quiet write from commit to the watcher's update (the
 * document's `_creationTime` is its commit's wall clock, on the same machine),
 * and from `mutation()` to that update (queueing before the commit included),
 * idle first and then during the flood; and counts how many flood mutations
 * committed before each quiet one.
 *
 * The limit row: the same flood on a bare socket (`BARE_SOCKET_HEADER`, local
 * only), whose frames the object drops before any work of ours, so the quiet
 * client then waits only for what the runtime costs to deliver the flood.
 * With sync shards the flood and the quiet clients are placed on named
 * shards (`SHARD_PIN_HEADER`, local only).
 * Used by `npm run bench flood` and by the end-to-end fairness test.
 */
import WebSocket from "ws";
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import { percentile, table } from "./harness.ts";
import { base64ToU64 } from "../../src/engine/values.ts";
import { startDevServer } from "../lib/wrangler-dev.ts";
import { createDeployment, setKnobs } from "../lib/admin.ts";
import { until } from "../lib/until.ts";
import { BARE_SOCKET_HEADER, SHARD_PIN_HEADER } from "../../src/knobs/wire.ts";

export interface FloodReport {
  flood: number;
  accepted: number;
  refused: number;
  refusalMessage: string | null;
  /** Quiet writes, `mutation()` called to the watcher's update. */
  idleMs: number[];
  floodMs: number[];
  /** Quiet writes, commit to the watcher's update. */
  idleCommitMs: number[];
  floodCommitMs: number[];
  /** For each quiet write during the flood: flood mutations committed before it. */
  floodCommitsBefore: number[];
  /** How long the flood took to be answered in full. */
  floodAnsweredMs: number;
  /** The flooder's close (code and reason) if the deployment closed it. */
  flooderClosed: string | null;
  /** CPU the runtime's processes used (ms, `cpuMs`): over the idle writes, and from the flood's start until the runtime is quiet again. */
  idleCpuMs: RuntimeCpu | null;
  floodCpuMs: RuntimeCpu | null;
}

export interface FloodOptions {
  flood?: number;
  writes?: number;
  /** The flood on a bare socket: the limit row. */
  bare?: boolean;
  /** With sync shards: the shard of the flooding socket, and of the quiet writer and watcher. */
  floodShard?: number;
  quietShard?: number;
  /** The runtime's CPU so far (ms), if the caller can read it. */
  cpuMs?: () => RuntimeCpu | null;
}

/** CPU used (ms) by wrangler's dev proxy and by the runtime serving the Worker (`DevServer.runtimeCpuMs`). */
export interface RuntimeCpu {
  proxy: number;
  worker: number;
}

const cpuBetween = (a: RuntimeCpu, b: RuntimeCpu): RuntimeCpu => ({ proxy: b.proxy - a.proxy, worker: b.worker - a.worker });

/** A WebSocket class that opens its sockets with `headers` (a shard pin, a bare socket). */
function socketClass(headers: Record<string, string>): typeof globalThis.WebSocket {
  return class extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { headers });
    }
  } as unknown as typeof globalThis.WebSocket;
}

/** Waits until the runtime's CPU stops moving (less than one 10 ms tick per 250 ms), then returns it. */
async function settledCpu(cpuMs: () => RuntimeCpu | null): Promise<RuntimeCpu | null> {
  let last = cpuMs();
  if (last === null) return null;
  for (let i = 0; i < 120; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = cpuMs()!;
    if (now.proxy + now.worker - last.proxy - last.worker <= 10) return now;
    last = now;
  }
  return last;
}

export async function measureFlood(deploymentUrl: string, options: FloodOptions = {}): Promise<FloodReport> {
  const floodCount = options.flood ?? 5_000;
  const writes = options.writes ?? 20;
  const cpuMs = options.cpuMs ?? (() => null);
  const pin = (shard: number | undefined): Record<string, string> => (shard === undefined ? {} : { [SHARD_PIN_HEADER]: String(shard) });
  const quietSocket = socketClass(pin(options.quietShard));
  const writer = new ConvexClient(deploymentUrl, { skipConvexDeploymentUrlCheck: true, webSocketConstructor: quietSocket, logger: false });
  const watcher = new ConvexClient(deploymentUrl, { skipConvexDeploymentUrlCheck: true, webSocketConstructor: quietSocket, logger: false });
  const seen = new Map<string, { at: number; wall: number; creationTime: number }>();
  const unsubscribe = watcher.onUpdate(anyApi.messages!.list!, { chatId: "quiet" }, (messages: { body: string; _creationTime: number }[]) => {
    for (const m of messages) if (!seen.has(m.body)) seen.set(m.body, { at: performance.now(), wall: Date.now(), creationTime: m._creationTime });
  });
  const commitToSeen = (body: string) => seen.get(body)!.wall - seen.get(body)!.creationTime;
  const quietWrite = async (body: string): Promise<number> => {
    const start = performance.now();
    await writer.mutation(anyApi.messages!.send!, { chatId: "quiet", author: "quiet", body });
    await until(() => seen.has(body), `the watcher to see ${body}`, 60_000);
    return seen.get(body)!.at - start;
  };

  const flooderHeaders = { ...pin(options.floodShard), ...(options.bare ? { [BARE_SOCKET_HEADER]: "1" } : {}) };
  const flooder = new (socketClass(flooderHeaders))(`${deploymentUrl.replace(/^http/, "ws")}/api/1.49.0/sync`);
  const responses: { success: boolean; result: unknown; ts?: string }[] = [];
  // Where the deployment throttles sockets (sessionFrameRate, maxThrottledFramesPerSession), the flooder may be closed with a FatalError.
  let flooderClosed: string | null = null;
  flooder.addEventListener("close", (event) => (flooderClosed = `${event.code} ${event.reason}`));
  flooder.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as { type: string; success: boolean; result: unknown; ts?: string };
    if (message.type === "MutationResponse") responses.push(message);
  });
  await new Promise<void>((resolve, reject) => {
    flooder.addEventListener("open", () => resolve());
    flooder.addEventListener("error", () => reject(new Error("the flooding socket did not open")));
  });
  try {
    // Idle: warm up, then measure.
    await quietWrite("warm-up");
    const idleMs: number[] = [];
    const idleCpuStart = await settledCpu(cpuMs);
    for (let i = 0; i < writes; i++) idleMs.push(await quietWrite(`idle-${i}`));
    const idleCpuEnd = await settledCpu(cpuMs);
    const idleCommitMs = idleMs.map((_, i) => commitToSeen(`idle-${i}`));

    const floodCpuStart = cpuMs();
    flooder.send(JSON.stringify({ type: "Connect", sessionId: crypto.randomUUID(), connectionCount: 0, lastCloseReason: null, clientTs: Date.now() }));
    flooder.send(JSON.stringify({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] }));
    const floodStart = performance.now();
    for (let i = 0; i < floodCount; i++)
      flooder.send(
        JSON.stringify({ type: "Mutation", requestId: i, udfPath: "messages:send", args: [{ chatId: "flood", author: "flood", body: `flood-${i}` }] }),
      );
    const floodMs: number[] = [];
    const quietBodies: string[] = [];
    for (let i = 0; i < writes && (responses.length < floodCount || flooderClosed !== null); i++) {
      quietBodies.push(`flood-time-${i}`);
      floodMs.push(await quietWrite(`flood-time-${i}`));
    }
    // A bare socket answers nothing: the flood is over when the runtime is quiet again.
    if (!options.bare)
      await until(() => responses.length === floodCount || flooderClosed !== null, "every flood mutation answered (or the flooder closed)", 300_000);
    const floodCpuEnd = await settledCpu(cpuMs);
    const floodAnsweredMs = performance.now() - floodStart;

    const accepted = responses.filter((r) => r.success);
    const refused = responses.filter((r) => !r.success);
    // A document's _creationTime is its commit's ts in ms (ns / 1e6), so the two orders compare.
    const commitMs = accepted.map((r) => Number(base64ToU64(r.ts!)) / 1e6);
    const floodCommitsBefore = quietBodies.map((body) => commitMs.filter((ms) => ms < seen.get(body)!.creationTime).length);
    return {
      flood: floodCount,
      accepted: accepted.length,
      refused: refused.length,
      refusalMessage: refused[0] ? String(refused[0].result) : null,
      idleMs,
      floodMs,
      idleCommitMs,
      floodCommitMs: quietBodies.map(commitToSeen),
      floodCommitsBefore,
      floodAnsweredMs,
      flooderClosed,
      idleCpuMs: idleCpuStart === null ? null : cpuBetween(idleCpuStart, idleCpuEnd!),
      floodCpuMs: floodCpuStart === null ? null : cpuBetween(floodCpuStart, floodCpuEnd!),
    };
  } finally {
    unsubscribe();
    flooder.close();
    await Promise.all([writer.close(), watcher.close()]);
  }
}

const cpuText = (cpu: RuntimeCpu | null) => (cpu === null ? "-" : `${cpu.proxy} + ${cpu.worker} ms`);

/** p50 / p99 of a list of milliseconds, as "a / b ms". */
export function p50p99(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${percentile(sorted, 50).toFixed(1)} / ${percentile(sorted, 99).toFixed(1)} ms`;
}

/** The frame throttle's defaults before issue 27 item 5 (a 5,000-frame flood passed unthrottled), for the comparison row. */
const EARLIER_THROTTLE = { sessionFrameRate: 1_000, sessionFrameBurst: 10_000, maxThrottledFramesPerSession: 10_000 };

/** One scenario of `npm run bench flood`: a fresh deployment with these knobs, the flood placed as `options` say. */
interface FloodScenario {
  label: string;
  knobs?: Record<string, number>;
  options: Omit<FloodOptions, "flood" | "writes" | "cpuMs">;
}

const SCENARIOS: FloodScenario[] = [
  { label: "limit: bare socket, one object", options: { bare: true } },
  { label: "calmsync, default knobs, one object", options: {} },
  // Our cost per frame for a socket already closed, beside the bare socket's: closed at its 12th frame, every later frame takes that path (the quiet client sends a few frames at a time).
  {
    label: "calmsync, flooder closed at its 12th frame, one object",
    knobs: { sessionFrameRate: 1_000, sessionFrameBurst: 10, maxThrottledFramesPerSession: 1 },
    options: {},
  },
  { label: "calmsync, the defaults before issue 27 item 5, one object", knobs: EARLIER_THROTTLE, options: {} },
  { label: "limit: bare socket on shard 0, quiet on shard 1", knobs: { syncShards: 2 }, options: { bare: true, floodShard: 0, quietShard: 1 } },
  { label: "calmsync, 2 shards: flood on 0, quiet on 1", knobs: { syncShards: 2 }, options: { floodShard: 0, quietShard: 1 } },
  { label: "limit: bare socket and quiet on shard 0", knobs: { syncShards: 2 }, options: { bare: true, floodShard: 0, quietShard: 0 } },
  { label: "calmsync, 2 shards: flood and quiet on 0", knobs: { syncShards: 2 }, options: { floodShard: 0, quietShard: 0 } },
];

/**
 * `npm run bench flood`: the flood against a fresh `wrangler dev`, as a markdown table: each scenario
 * on its own fresh deployment, calmsync with default knobs beside the limit row (a bare socket) in the
 * same run; `BENCH_FLOOD_ONLY=<substring>` runs only the scenarios whose label contains it.
 */
export async function benchFlood(flood = 5_000, writes = 30): Promise<string> {
  const server = await startDevServer();
  const only = process.env.BENCH_FLOOD_ONLY;
  try {
    const p99 = (values: number[]) =>
      percentile(
        [...values].sort((a, b) => a - b),
        99,
      );
    const rows: string[][] = [];
    const notes: string[] = [];
    let n = 0;
    for (const scenario of SCENARIOS) {
      if (only && !scenario.label.includes(only)) continue;
      const url = await createDeployment(server.url, `flood-bench-${n++}`);
      if (scenario.knobs) await setKnobs(url, scenario.knobs);
      const r = await measureFlood(url, { flood, writes, cpuMs: server.runtimeCpuMs, ...scenario.options });
      // The flood's CPU less the idle writes' (the quiet client's writes during the flood cost about as much), per flood frame.
      const perFrame = (part: keyof RuntimeCpu) => (((r.floodCpuMs![part] - r.idleCpuMs![part]) * 1000) / flood).toFixed(0);
      const cpu =
        r.floodCpuMs === null || r.idleCpuMs === null
          ? "-"
          : `${(Number(perFrame("proxy")) + Number(perFrame("worker"))).toFixed(0)} µs (proxy ${perFrame("proxy")}, runtime ${perFrame("worker")})`;
      rows.push([
        scenario.label,
        `${p50p99(r.idleMs)}`,
        `${p50p99(r.floodMs)}`,
        `${(p99(r.floodMs) / p99(r.idleMs)).toFixed(1)}x`,
        p50p99(r.floodCommitMs),
        cpu,
      ]);
      notes.push(
        `${scenario.label}: ${r.flood.toLocaleString("en-US")} mutations pipelined on one socket` +
          (scenario.options.bare
            ? ""
            : `: ${r.accepted} answered with success, ${r.refused} refused${r.refusalMessage ? ` (${r.refusalMessage.slice(0, 120)})` : ""}`) +
          (r.flooderClosed ? `, then the socket was closed (${r.flooderClosed})` : "") +
          `; runtime quiet again after ${(r.floodAnsweredMs / 1000).toFixed(1)} s; CPU (proxy + runtime) ${cpuText(r.floodCpuMs)} during the flood, ${cpuText(r.idleCpuMs)} over the ${writes} idle writes. ` +
          (scenario.options.bare ? "" : `Flood commits before each quiet write: ${r.floodCommitsBefore.join(", ")}.`),
      );
    }
    return [
      table(
        [
          "scenario",
          "quiet mutation() → Transition idle p50 / p99",
          "during the flood p50 / p99",
          "p99 ÷ idle",
          "commit → Transition during the flood p50 / p99",
          "CPU per flood frame (wrangler's proxy, the runtime)",
        ],
        rows,
      ),
      "",
      ...notes.map((note) => `- ${note}`),
    ].join("\n");
  } finally {
    await server.stop();
  }
}
