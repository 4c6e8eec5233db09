/**
 * Fan-out in the local runtime: N sessions (raw protocol sockets on loopback
 * against `wrangler dev`) subscribe to the same query; one commit changes it.
 * Measures the time from sending the mutation until every session holds its
 * Transition, and checks the query ran once for all of them (shared instance).
 */
import { startDevServer } from "../lib/wrangler-dev.ts";
import { adminStatus, createDeployment, MANY_CLIENTS_FROM_HERE, setKnobs } from "../lib/admin.ts";
import { table } from "./harness.ts";
import { subscribeFrames } from "./frames.ts";

interface Session {
  ws: WebSocket;
  gotFirst: boolean;
  gotUpdate: boolean;
}

const status = (url: string) => adminStatus(url);

async function waitFor(check: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function openSessions(wsUrl: string, count: number, marker: { body: string }): Promise<Session[]> {
  const sessions: Session[] = [];
  const batch = 250;
  for (let i = 0; i < count; i += batch) {
    const opened = Array.from({ length: Math.min(batch, count - i) }, () => {
      const ws = new WebSocket(wsUrl);
      const session: Session = { ws, gotFirst: false, gotUpdate: false };
      ws.addEventListener("message", (event) => {
        const data = event.data as string;
        if (!data.startsWith('{"type":"Transition"')) return;
        if (!session.gotFirst) session.gotFirst = true;
        else if (data.includes(marker.body)) session.gotUpdate = true;
      });
      sessions.push(session);
      return new Promise<void>((resolve, reject) => {
        ws.addEventListener("open", () => {
          for (const frame of subscribeFrames("hot", { clientTs: Date.now() })) ws.send(frame);
          resolve();
        });
        ws.addEventListener("error", () => reject(new Error(`socket ${sessions.length} of ${count} failed to open`)));
      });
    });
    await Promise.all(opened);
  }
  return sessions;
}

export async function benchFanout(sizes = [1_000, 10_000]): Promise<string> {
  const server = await startDevServer();
  const rows: (string | number)[][] = [];
  try {
    for (const size of sizes) {
      const base = await createDeployment(server.url, `fanout-${size}`);
      await setKnobs(base, MANY_CLIENTS_FROM_HERE);
      const marker = { body: `fanout-${size}-${Date.now()}` };
      const connectStart = performance.now();
      const sessions = await openSessions(`${base.replace("http", "ws")}/api/1.49.0/sync`, size, marker);
      await waitFor(() => sessions.every((s) => s.gotFirst), "every first result", 300_000);
      const connectMs = performance.now() - connectStart;
      const before = await status(base);

      const start = performance.now();
      const sent = fetch(`${base}/api/mutation`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ path: "messages:send", format: "convex_encoded_json", args: [{ chatId: "hot", author: "bench", body: marker.body }] }),
      });
      let firstMs = 0;
      await waitFor(
        () => {
          if (!firstMs && sessions.some((s) => s.gotUpdate)) firstMs = performance.now() - start;
          return sessions.every((s) => s.gotUpdate);
        },
        "every session's transition",
        300_000,
      );
      const allMs = performance.now() - start;
      await sent;
      const after = await status(base);
      rows.push([
        size.toLocaleString("en-US"),
        `${(connectMs / 1000).toFixed(1)} s`,
        `${firstMs.toFixed(0)} ms`,
        `${allMs.toFixed(0)} ms`,
        `${((allMs * 1000) / size).toFixed(0)} µs`,
        after.queryExecutions! - before.queryExecutions!,
        after.transitionsSent! - before.transitionsSent!,
      ]);
      for (const s of sessions) s.ws.close();
      await waitFor(() => true, "", 0);
      await new Promise((r) => setTimeout(r, 1_000));
    }
  } finally {
    await server.stop();
  }
  return table(["sessions", "connect + subscribe all", "first Transition", "last Transition", "per session", "query executions", "transitions sent"], rows);
}
