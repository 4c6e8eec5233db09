/**
 * One socket floods, another client keeps working: a raw-protocol socket
 * pipelines `flood` mutations at once while an official `ConvexClient` sends
 * `writes` mutations one after another and a second one watches them arrive.
 * Measures each quiet write from commit to the watcher's update (the
 * document's `_creationTime` is its commit's wall clock, on the same machine),
 * and from `mutation()` to that update (queueing before the commit included),
 * idle first and then during the flood; and counts how many flood mutations
 * committed before each quiet one.
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
}

const WS = WebSocket as unknown as typeof globalThis.WebSocket;

export async function measureFlood(deploymentUrl: string, options: { flood?: number; writes?: number } = {}): Promise<FloodReport> {
  const floodCount = options.flood ?? 5_000;
  const writes = options.writes ?? 20;
  const writer = new ConvexClient(deploymentUrl, { skipConvexDeploymentUrlCheck: true, webSocketConstructor: WS, logger: false });
  const watcher = new ConvexClient(deploymentUrl, { skipConvexDeploymentUrlCheck: true, webSocketConstructor: WS, logger: false });
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

  const flooder = new WS(`${deploymentUrl.replace(/^http/, "ws")}/api/1.49.0/sync`);
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
    for (let i = 0; i < writes; i++) idleMs.push(await quietWrite(`idle-${i}`));
    const idleCommitMs = idleMs.map((_, i) => commitToSeen(`idle-${i}`));

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
    await until(() => responses.length === floodCount || flooderClosed !== null, "every flood mutation answered (or the flooder closed)", 300_000);
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
    };
  } finally {
    unsubscribe();
    flooder.close();
    await Promise.all([writer.close(), watcher.close()]);
  }
}

/** p50 / p99 of a list of milliseconds, as "a / b ms". */
export function p50p99(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${percentile(sorted, 50).toFixed(1)} / ${percentile(sorted, 99).toFixed(1)} ms`;
}

/** The per-socket frame throttle of issue 27 item 5, as the second row sets it: 100 frames/s, burst 100, closed past 400 waiting. */
export const FLOOD_THROTTLE = { sessionFrameRate: 100, sessionFrameBurst: 100, maxThrottledFramesPerSession: 400 };

/** `npm run bench flood`: the flood against a fresh `wrangler dev`, as a markdown table: default knobs, then the frame throttle, same run. */
export async function benchFlood(flood = 5_000, writes = 30): Promise<string> {
  const server = await startDevServer();
  try {
    const plain = await measureFlood(await createDeployment(server.url, "flood-bench"), { flood, writes });
    const throttledUrl = await createDeployment(server.url, "flood-bench-throttled");
    await setKnobs(throttledUrl, FLOOD_THROTTLE);
    const throttled = await measureFlood(throttledUrl, { flood, writes });
    const p99 = (values: number[]) =>
      percentile(
        [...values].sort((a, b) => a - b),
        99,
      );
    const rows = (label: string, r: FloodReport) => [
      [`${label}: idle (${r.idleMs.length})`, p50p99(r.idleCommitMs), p50p99(r.idleMs), "1.0x"],
      [`${label}: during the flood (${r.floodMs.length})`, p50p99(r.floodCommitMs), p50p99(r.floodMs), `${(p99(r.floodMs) / p99(r.idleMs)).toFixed(1)}x`],
    ];
    const summary = (label: string, r: FloodReport) =>
      `${label}: ${r.flood.toLocaleString("en-US")} mutations pipelined on one socket: ${r.accepted} accepted, ${r.refused} refused at once (maxPendingMutationsPerSession)` +
      (r.flooderClosed ? `, then the socket was closed (${r.flooderClosed})` : "") +
      `, done in ${(r.floodAnsweredMs / 1000).toFixed(1)} s. Commit → Transition p99 during the flood / idle: ${(p99(r.floodCommitMs) / p99(r.idleCommitMs)).toFixed(1)}x. ` +
      `Flood commits before each quiet write: ${r.floodCommitsBefore.join(", ")}.`;
    const throttleLabel = `throttled (${Object.entries(FLOOD_THROTTLE)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")})`;
    return [
      table(
        ["quiet client's writes", "commit → Transition p50 / p99", "mutation() → Transition p50 / p99", "mutation() p99 ÷ idle"],
        [...rows("default knobs", plain), ...rows(throttleLabel, throttled)],
      ),
      "",
      summary("Default knobs", plain),
      "",
      summary(throttleLabel, throttled),
    ].join("\n");
  } finally {
    await server.stop();
  }
}
