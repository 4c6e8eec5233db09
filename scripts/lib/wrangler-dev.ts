/**
 * Starts `wrangler dev` (the real local runtime) on a free loopback port with
 * fresh storage, for end-to-end tests with real clients. Always stopped by
 * `stop()`; the process group is killed so workerd goes with it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const TEST_ADMIN_KEY = "e2e-admin-key";

export interface DevServer {
  url: string;
  output: () => string;
  stop: () => Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export async function startDevServer(options: { timeoutMs?: number } = {}): Promise<DevServer> {
  const root = resolve(import.meta.dirname, "../..");
  const [port, inspectorPort] = [await freePort(), await freePort()];
  const persistTo = mkdtempSync(join(tmpdir(), "calmsync-e2e-"));
  const wrangler = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
  const child: ChildProcess = spawn(
    process.execPath,
    [wrangler, "dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort), "--persist-to", persistTo, "--var", `ADMIN_KEY:${TEST_ADMIN_KEY}`, "--show-interactive-dev-session=false"],
    { cwd: root, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" } },
  );
  let log = "";
  child.stdout!.on("data", (chunk) => (log += chunk));
  child.stderr!.on("data", (chunk) => (log += chunk));
  let exited = false;
  child.once("exit", () => (exited = true));

  const stop = async () => {
    if (!exited && child.pid) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        /* already gone */
      }
      const deadline = Date.now() + 5_000;
      while (!exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (!exited) process.kill(-child.pid, "SIGKILL");
    }
    rmSync(persistTo, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.timeoutMs ?? 90_000);
  while (Date.now() < deadline) {
    if (exited) break;
    try {
      const response = await fetch(`${url}/api/status`, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) return { url, output: () => log, stop };
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await stop();
  throw new Error(`wrangler dev did not start on ${url}:\n${log.slice(-4000)}`);
}
