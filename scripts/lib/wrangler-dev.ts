/**
 * Starts `wrangler dev` (the real local runtime) on a free loopback port, for
 * end-to-end tests with real clients. Always stopped by `stop()`; the process
 * group is killed so workerd goes with it.
 *
 * Storage is a fresh temporary directory, deleted by `stop()`, unless the
 * caller passes `persistTo`: then that directory is used and kept. Crash
 * tests `kill()` the runtime (SIGKILL to the whole process group, workerd
 * included: no shutdown of any kind) and `restart()` it on the same port and
 * storage, so clients pointed at `url` reconnect to the new process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { MANIFEST, manifestHash } from "../../src/tiers.ts";

export const TEST_ADMIN_KEY = "e2e-admin-key";

/** The tier stamp `npm run deploy` would write for the local (`dev`) environment, as `--var` flags. */
const DEV_STAMP = ["--var", `CALMSYNC_TIER:${MANIFEST.environments.dev.tier}`, "--var", `CALMSYNC_MANIFEST_HASH:${manifestHash()}`];

export interface DevServerOptions {
  /** How long to wait for the runtime to answer `/api/status` (default 90 s). */
  timeoutMs?: number;
  /** Storage directory to use and keep (default: a fresh temporary one, deleted by `stop()`). */
  persistTo?: string;
  /** More vars for the Worker (`--var NAME:value`), e.g. auth providers for convex/auth.config.ts. */
  vars?: Record<string, string>;
}

export interface DevServer {
  url: string;
  /** The storage directory (`--persist-to`). */
  persistTo: string;
  /** Everything the runtime printed, across restarts. */
  output: () => string;
  /** Stops the runtime (SIGTERM, then SIGKILL); deletes the storage unless the caller chose `persistTo`. */
  stop: () => Promise<void>;
  /** Hard-kills the runtime: SIGKILL to the whole process group (workerd included); resolves once every process in it is gone. Keeps the storage. */
  kill: () => Promise<void>;
  /** Starts a new `wrangler dev` on the same port, inspector port and storage (after `kill()` or `stop()`); resolves once it answers. */
  restart: (options?: { timeoutMs?: number }) => Promise<void>;
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

/**
 * Whether any process of the group led by `pgid` is still running. A killed
 * process stays a zombie until something reaps it (an orphan waits for PID 1,
 * which in a container may take seconds), so on Linux zombies count as gone.
 */
function groupAlive(pgid: number): boolean {
  if (process.platform === "linux") {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      } catch {
        continue; // exited meanwhile
      }
      // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ")".
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z" && state !== "X") return true;
    }
    return false;
  }
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One `wrangler dev` process group. */
interface Run {
  child: ChildProcess;
  exited: () => boolean;
}

export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  const root = resolve(import.meta.dirname, "../..");
  const [port, inspectorPort] = [await freePort(), await freePort()];
  const ownStorage = options.persistTo === undefined;
  const persistTo = options.persistTo ?? mkdtempSync(join(tmpdir(), "calmsync-e2e-"));
  const wrangler = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
  const url = `http://127.0.0.1:${port}`;
  let log = "";
  let run: Run | null = null;

  const spawnRuntime = (): Run => {
    const child: ChildProcess = spawn(
      process.execPath,
      [wrangler, "dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort), "--persist-to", persistTo, "--var", `ADMIN_KEY:${TEST_ADMIN_KEY}`, ...DEV_STAMP, ...Object.entries(options.vars ?? {}).flatMap(([name, value]) => ["--var", `${name}:${value}`]), "--show-interactive-dev-session=false"],
      { cwd: root, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" } },
    );
    child.stdout!.on("data", (chunk) => (log += chunk));
    child.stderr!.on("data", (chunk) => (log += chunk));
    let exited = false;
    child.once("exit", () => (exited = true));
    return { child, exited: () => exited };
  };

  /** Signals the current process group and waits (up to `waitMs`) until the leader exited and no member is left. */
  const signal = async (sig: NodeJS.Signals, waitMs: number): Promise<boolean> => {
    const current = run;
    const pgid = current?.child.pid;
    if (!current || !pgid) return true;
    try {
      process.kill(-pgid, sig);
    } catch {
      /* already gone */
    }
    const deadline = Date.now() + waitMs;
    while ((!current.exited() || groupAlive(pgid)) && Date.now() < deadline) await sleep(20);
    return current.exited() && !groupAlive(pgid);
  };

  const kill = async () => {
    if (!(await signal("SIGKILL", 10_000))) throw new Error(`wrangler dev (process group ${run?.child.pid}) survived SIGKILL`);
    run = null;
  };

  const halt = async () => {
    if (run && !(await signal("SIGTERM", 5_000))) await signal("SIGKILL", 5_000);
    run = null;
  };

  const stop = async () => {
    await halt();
    if (ownStorage) rmSync(persistTo, { recursive: true, force: true });
  };

  const launch = async (timeoutMs: number) => {
    if (run) throw new Error("wrangler dev is already running; kill() or stop() it first");
    log += `\n--- wrangler dev starting on ${url} (persist ${persistTo}) ---\n`;
    const current = (run = spawnRuntime());
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (current.exited()) break;
      try {
        const response = await fetch(`${url}/api/status`, { signal: AbortSignal.timeout(2_000) });
        if (response.ok) return;
      } catch {
        /* not up yet */
      }
      await sleep(100);
    }
    await halt();
    throw new Error(`wrangler dev did not start on ${url}:\n${log.slice(-4000)}`);
  };

  try {
    await launch(options.timeoutMs ?? 90_000);
  } catch (error) {
    if (ownStorage) rmSync(persistTo, { recursive: true, force: true });
    throw error;
  }
  return {
    url,
    persistTo,
    output: () => log,
    stop,
    kill,
    restart: async (restartOptions = {}) => launch(restartOptions.timeoutMs ?? options.timeoutMs ?? 90_000),
  };
}
