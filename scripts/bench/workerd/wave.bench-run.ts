/**
 * A reconnect wave inside workerd: 10,000 sessions arrive at once (each
 * subscribing to one of 1,000 chats), admitted at 500/s (burst 1,000), with
 * the waiting room against the same wave refused with 429 (clients honouring
 * `retryAfterMs`). Reports the time until every session holds its first
 * result, socket attempts, and the peak of query executions per second.
 */
import { it } from "vitest";
import { exports } from "cloudflare:workers";
import { subscribeFrames } from "../frames.ts";

const SESSIONS = 10_000;
const CHATS = 1_000;
const worker = (exports as unknown as { default: Fetcher }).default;
const admin = { Authorization: "Bearer bench-admin-key" };

async function adminJson<T>(deployment: string, path: string, init?: RequestInit): Promise<T> {
  const response = await worker.fetch(`http://bench/d/${deployment}/api/admin/${path}`, { ...init, headers: { ...admin, "Content-Type": "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

async function wave(deployment: string, waitingRoom: boolean): Promise<string> {
  await adminJson(deployment, "knobs", {
    method: "PATCH",
    // One test client opens every socket: its own limit (clientSessionRate, issue 28) would refuse it long before the deployment's.
    body: JSON.stringify({
      maxSessions: 16_000,
      maxWaitingSessions: waitingRoom ? 16_000 : 0,
      sessionAdmitRate: 500,
      sessionAdmitBurst: 1_000,
      clientSessionRate: 100_000,
      clientSessionBurst: 100_000,
    }),
  });
  let live = 0;
  let attempts = 0;
  let refusals = 0;
  const sockets: WebSocket[] = [];
  const start = performance.now();
  // Peak executions/s, sampled every 250 ms from the deployment's counters.
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    let last = (await adminJson<{ queryExecutions: number }>(deployment, "status")).queryExecutions;
    let lastAt = performance.now();
    while (sampling) {
      await new Promise((r) => setTimeout(r, 250));
      const now = (await adminJson<{ queryExecutions: number }>(deployment, "status")).queryExecutions;
      const at = performance.now();
      peak = Math.max(peak, ((now - last) * 1000) / (at - lastAt));
      [last, lastAt] = [now, at];
    }
  })();
  async function connect(i: number): Promise<void> {
    for (;;) {
      attempts++;
      const response = await worker.fetch(`http://bench/d/${deployment}/api/1.49.0/sync`, { headers: { Upgrade: "websocket" } });
      if (!response.webSocket) {
        refusals++;
        const { retryAfterMs } = (await response.json()) as { retryAfterMs: number };
        await new Promise((r) => setTimeout(r, retryAfterMs));
        continue;
      }
      const ws = response.webSocket;
      ws.accept();
      let seen = false;
      ws.addEventListener("message", (event) => {
        if (!seen && (event.data as string).startsWith('{"type":"Transition"')) {
          seen = true;
          live++;
        }
      });
      for (const frame of subscribeFrames(`chat${i % CHATS}`)) ws.send(frame);
      sockets.push(ws);
      return;
    }
  }
  await Promise.all(Array.from({ length: SESSIONS }, (_, i) => connect(i)));
  while (live < SESSIONS) await new Promise((r) => setTimeout(r, 20));
  const allInMs = performance.now() - start;
  sampling = false;
  await sampler;
  for (const ws of sockets) ws.close(1000, "done");
  return `| ${waitingRoom ? "waiting room" : "refused with 429 (clients honour retryAfterMs)"} | ${(allInMs / 1000).toFixed(1)} s | ${attempts.toLocaleString("en-US")} | ${refusals.toLocaleString("en-US")} | ${Math.round(peak).toLocaleString("en-US")} |`;
}

it("a reconnect wave of 10,000 sessions: waiting room against 429", async () => {
  const rows = [await wave("wave-waiting", true), await wave("wave-refused", false)];
  console.log(
    [
      "BENCH-TABLE:wave",
      "| 10,000 sessions at once, admitted at 500/s | until every session holds its first result | socket attempts | refusals | peak query executions/s |",
      "| --- | --- | --- | --- | --- |",
      ...rows,
      "BENCH-END",
    ].join("\n"),
  );
});
