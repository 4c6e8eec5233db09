/**
 * A client that stops reading: workerd reports no buffered amount for a
 * socket, so the server cannot see it. What it can bound is what it sends:
 * one Transition per turn with the latest state, at most
 * `sessionSendBytesPerSecond` per session. This measures how many bytes a
 * paused socket is made to queue while its 2 MB query result is edited
 * `edits` times, with the send budget effectively off and at its default, in
 * one run against `wrangler dev` (the bytes arrive once the socket reads again).
 */
import WebSocket from "ws";
import { startDevServer } from "../lib/wrangler-dev.ts";
import { adminStatus, createDeployment, knobReport, setKnobs } from "../lib/admin.ts";
import { table } from "./harness.ts";

async function post(url: string, path: string, args: unknown): Promise<{ value: string }> {
  const response = await fetch(`${url}/api/mutation`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ path, args: [args] }),
  });
  return (await response.json()) as { value: string };
}

export async function queuedBytes(
  serverUrl: string,
  name: string,
  rate: number,
  edits: number,
): Promise<{ bytes: number; transitions: number; seconds: number; putOff: number; resultBytes: number }> {
  const url = await createDeployment(serverUrl, name);
  await setKnobs(url, { sessionSendBytesPerSecond: rate });
  const body = "x".repeat(200_000);
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) ids.push((await post(url, "messages:send", { chatId: "big", author: "a", body: body + i })).value);
  const ws = new WebSocket(`${url.replace("http", "ws")}/api/1.49.0/sync`);
  let received = 0;
  ws.on("message", (data) => (received += String(data).length));
  await new Promise((resolve) => ws.on("open", resolve));
  ws.send(JSON.stringify({ type: "Connect", sessionId: crypto.randomUUID(), connectionCount: 0, lastCloseReason: null }));
  ws.send(
    JSON.stringify({
      type: "ModifyQuerySet",
      baseVersion: 0,
      newVersion: 1,
      modifications: [{ type: "Add", queryId: 0, udfPath: "messages:list", args: [{ chatId: "big" }] }],
    }),
  );
  while (received < 2_000_000) await new Promise((r) => setTimeout(r, 20));
  const before = received;
  const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  socket.pause();
  const started = performance.now();
  for (let i = 0; i < edits; i++) await post(url, "messages:edit", { id: ids[i % ids.length], body: `${body}edit${i}` });
  const seconds = (performance.now() - started) / 1000;
  const status = await adminStatus(url);
  socket.resume();
  // Everything queued arrives once the socket reads again; wait for the flow to stop.
  let last = -1;
  while (last !== received) {
    last = received;
    await new Promise((r) => setTimeout(r, 500));
  }
  ws.close();
  return { bytes: received - before, transitions: status.transitionsSent! - 1, seconds, putOff: status.sendsPutOff!, resultBytes: before };
}

export async function benchSlowConsumer(edits = 40): Promise<string> {
  const server = await startDevServer();
  try {
    const knob = (await knobReport(server.url)).find((k) => k.name === "sessionSendBytesPerSecond")!;
    const unbounded = await queuedBytes(server.url, "slow-unbounded", knob.max, edits);
    const budgeted = await queuedBytes(server.url, "slow-budget", knob.default, edits);
    const mb = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MiB`;
    const row = (label: string, r: typeof unbounded) => [
      label,
      edits,
      `${r.seconds.toFixed(1)} s`,
      r.transitions,
      r.putOff,
      mb(r.bytes),
      mb(r.bytes / r.seconds) + "/s",
    ];
    return [
      table(
        ["send budget", "edits of a 2 MB result", "edits took", "Transitions sent", "turns put off", "queued for the paused socket", "queued per second"],
        [row("off (1 GiB/s)", unbounded), row(`default (${mb(knob.default)}/s)`, budgeted)],
      ),
      "",
      `Queued with the budget / without: ${(budgeted.bytes / unbounded.bytes).toFixed(2)}x.`,
    ].join("\n");
  } finally {
    await server.stop();
  }
}
