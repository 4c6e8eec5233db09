/**
 * Fan-out inside workerd: N sessions on real hibernatable WebSockets (opened
 * through the Worker's fetch, without TCP) subscribe to the same query; one
 * commit changes it. Reports the time until every session has its Transition,
 * how many times the query ran and how much the deployment object sent (the
 * work sync shards would take from it, docs/SHARDS.md). Prints a markdown row per size.
 *
 * The limit beside it (issue 27): the same object, holding the same hibernatable sockets, sends
 * one pre-encoded frame to each (no query, no session state, nothing per socket but the send),
 * timed by the same clients the same way. Prints calmsync beside it and the ratio.
 */
import { it } from "vitest";
import { env, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { subscribeFrames } from "../frames.ts";
import { profileWindow } from "./profile-window.ts";

/** Sessions, and the sync shards holding them (1: the deployment object itself). */
const RUNS = [
  { size: 1_000, shards: 1 },
  { size: 10_000, shards: 1 },
  { size: 10_000, shards: 4 },
];
/** One test client opens every socket and sends every write: the per-client limits (issue 26) would refuse it. */
const UNLIMITED_CLIENT = { clientSessionRate: 100_000, clientSessionBurst: 100_000, clientCallRate: 100_000, clientCallBurst: 100_000 };
const worker = (exports as unknown as { default: Fetcher }).default;

async function status(deployment: string): Promise<Record<string, number>> {
  return (await (
    await worker.fetch(`http://bench/d/${deployment}/api/admin/status`, { headers: { Authorization: "Bearer bench-admin-key" } })
  ).json()) as Record<string, number>;
}

/** Time the deployment object spent in refresh slices (its clock, which moves only across I/O inside workerd). */
const sliceMs = (status: Record<string, unknown>) => (status.limits as unknown as { refreshSlices: { ms: number } }).refreshSlices.ms;
const kib = (characters: number) => `${(characters / 1024).toLocaleString("en-US", { maximumFractionDigits: 1 })} KiB`;

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 2));
  }
}

it("fan-out to N sessions in workerd", async () => {
  const rows: string[] = [];
  const limitRows: string[] = [];
  // BENCH_FANOUT_SHARDS=1 (in the environment of `npm run bench`) runs only the runs with that many shards.
  const onlyShards = (env as unknown as { BENCH_FANOUT_SHARDS?: string }).BENCH_FANOUT_SHARDS;
  for (const { size, shards } of RUNS.filter((run) => !onlyShards || onlyShards.split(",").map(Number).includes(run.shards))) {
    const deployment = `fanout-workerd-${size}-${shards}`;
    await worker.fetch(`http://bench/d/${deployment}/api/admin/knobs`, {
      method: "PATCH",
      headers: { Authorization: "Bearer bench-admin-key", "Content-Type": "application/json" },
      body: JSON.stringify({ syncShards: shards, sessionAdmitRate: 100_000, sessionAdmitBurst: 100_000, ...UNLIMITED_CLIENT }),
    });
    const marker = `marker-${size}`;
    let first = 0;
    let updated = 0;
    let lastAt = 0;
    const limitMarker = `limit-${size}`;
    let limitGot = 0;
    const sockets: WebSocket[] = [];
    const connectStart = performance.now();
    for (let i = 0; i < size; i++) {
      const response = await worker.fetch(`http://bench/d/${deployment}/api/1.49.0/sync`, { headers: { Upgrade: "websocket" } });
      const ws = response.webSocket;
      if (!ws) throw new Error(`socket ${i} refused: ${response.status} ${await response.text()}`);
      ws.accept();
      let seenFirst = false;
      ws.addEventListener("message", (event) => {
        const data = event.data as string;
        if (!data.startsWith('{"type":"Transition"')) return;
        if (data.includes(limitMarker)) {
          limitGot++;
          lastAt = performance.now();
          return;
        }
        // Subscribed once the first result arrived (through a shard, a first Transition may come before it).
        if (!seenFirst) {
          if (!data.includes('"QueryUpdated"')) return;
          seenFirst = true;
          first++;
        } else if (data.includes(marker)) {
          updated++;
          lastAt = performance.now();
        }
      });
      for (const frame of subscribeFrames("hot")) ws.send(frame);
      sockets.push(ws);
    }
    await until(() => first === size, 600_000).catch((error: Error) =>
      Promise.reject(new Error(`${error.message}: ${first} of ${size} sessions had their first result (${shards} shards)`)),
    );
    const connectMs = performance.now() - connectStart;
    const before = await status(deployment);
    // `npm run bench -- profile fanout` profiles the one-object fan-out to 10,000 and its limit (one window each).
    const profiled = size === 10_000 && shards === 1;
    const start = performance.now();
    const fanOut = async () => {
      await worker.fetch(`http://bench/d/${deployment}/api/mutation`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ path: "messages:send", format: "convex_encoded_json", args: [{ chatId: "hot", author: "bench", body: marker }] }),
      });
      await until(() => updated === size, 600_000);
    };
    if (profiled) await profileWindow("calmsync", "session", size, fanOut);
    else await fanOut();
    const allMs = lastAt - start;
    const after = await status(deployment);
    rows.push(
      `| ${size.toLocaleString("en-US")} | ${shards} | ${(connectMs / 1000).toFixed(1)} s | ${allMs.toFixed(0)} ms | ${((allMs * 1000) / size).toFixed(0)} µs | ${after.queryExecutions! - before.queryExecutions!} | ${after.transitionsSent! - before.transitionsSent!} | ${kib(after.charactersSent! - before.charactersSent!)} | ${sliceMs(after) - sliceMs(before)} ms |`,
    );
    if (shards === 1) {
      // The limit: the same object sends one frame, encoded once, to every socket it holds.
      const ns = (env as unknown as { DEPLOYMENTS: DurableObjectNamespace }).DEPLOYMENTS;
      const stub = ns.get(ns.idFromName(deployment));
      const limitStart = performance.now();
      const frame = JSON.stringify({ type: "Transition", startVersion: null, endVersion: null, modifications: [], limit: limitMarker });
      const sendAll = async () => {
        await runInDurableObject(stub, (_instance: unknown, state: DurableObjectState) => {
          for (const ws of state.getWebSockets()) ws.send(frame);
        });
        await until(() => limitGot === size, 600_000);
      };
      if (profiled) await profileWindow("limit", "session", size, sendAll);
      else await sendAll();
      const limitMs = lastAt - limitStart;
      limitRows.push(`| ${size.toLocaleString("en-US")} | ${allMs.toFixed(0)} ms | ${limitMs.toFixed(0)} ms | ${(allMs / limitMs).toFixed(1)}x |`);
    }
    // Printed as they come too: a later run that fails keeps the earlier ones.
    console.log(`BENCH-ROW:fanout ${rows.at(-1)}`);
    if (shards === 1) console.log(`BENCH-ROW:fanoutlimit ${limitRows.at(-1)}`);
    for (const ws of sockets) ws.close(1000, "done");
  }
  console.log(
    [
      "BENCH-TABLE:fanout",
      "| sessions | sync shards | connect + subscribe all | commit to last Transition | per session | query executions | transitions sent | sent by the deployment object | its refresh slices |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
      ...rows,
      "BENCH-END",
      "BENCH-TABLE:fanoutlimit",
      "| sessions (one object) | calmsync: commit to last Transition | limit: the object sends one pre-encoded frame to each socket | calmsync ÷ limit |",
      "| --- | --- | --- | --- |",
      ...limitRows,
      "BENCH-END",
    ].join("\n"),
  );
});
