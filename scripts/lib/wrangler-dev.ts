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
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { MANIFEST, manifestHash } from "../../src/knobs/tiers.ts";
import { generate } from "../codegen.ts";
import { generateConvexAuthKeys, type ConvexAuthKeys } from "./auth-keys.ts";

export const TEST_ADMIN_KEY = "e2e-admin-key";

/**
 * Convex Auth's key pair (JWT_PRIVATE_KEY and JWKS), as `npm run dev` puts one in `.dev.vars`
 * (scripts/dev-vars.ts): the example app signs in with it. One pair for every server this process starts.
 */
let authKeys: Promise<ConvexAuthKeys> | undefined;

/** The tier stamp `npm run deploy` would write for the local (`dev`) environment, as `--var` flags. */
const DEV_STAMP = ["--var", `CALMSYNC_TIER:${MANIFEST.environments.dev.tier}`, "--var", `CALMSYNC_MANIFEST_HASH:${manifestHash()}`];

export interface DevServerOptions {
  /** How long to wait for the runtime to answer `/api/status` (default 90 s). */
  timeoutMs?: number;
  /** Storage directory to use and keep (default: a fresh temporary one, deleted by `stop()`). */
  persistTo?: string;
  /** More vars for the Worker (`--var NAME:value`), e.g. auth providers for convex/auth.config.ts. */
  vars?: Record<string, string>;
  /**
   * Another app's `convex/` folder to serve instead of the example chat app's, as it is: it is
   * copied into a temporary project beside a copy of calmsync and generated there (`appProject`).
   */
  app?: string;
  /** Modules to add beside the app's own in that copy (a probe a test drives), the app itself left as it is. */
  modules?: string[];
  /**
   * Start the way a Workers developer does in a fresh clone: `npx wrangler dev` in a copy of this
   * checkout with nothing generated or built and no vars of the harness (no admin key, no tier stamp).
   */
  plain?: boolean;
  /**
   * wrangler dev's local observability (on unless set false): it tails every invocation of the Worker and its objects into
   * a trace store of its own, run in the same workerd, whose memory and CPU a benchmark of the runtime would count.
   */
  localObservability?: boolean;
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
  /** Resident memory of the runtime's workerd processes now, in bytes (Linux; null elsewhere): benchmarks watch it. */
  runtimeRssBytes: () => number | null;
  /** The same, split: anonymous memory (heaps, caches) and mapped files (the binary, SQLite's shared memory index). */
  runtimeRssSplit: () => { anon: number; file: number } | null;
  /** CPU time the runtime's workerd processes have used so far, in ms, wrangler's proxy and the Worker's runtime apart (Linux; null elsewhere): benchmarks take differences. */
  runtimeCpuMs: () => { proxy: number; worker: number } | null;
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

/** The `/proc` entries of the workerd processes in the group led by `pgid` (Linux). */
function workerdProcesses(pgid: number): string[] {
  const found: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (comm === "workerd" && Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === pgid) found.push(entry);
    } catch {
      continue; // exited meanwhile
    }
  }
  return found;
}

/** Resident bytes of the workerd processes in the group led by `pgid` (Linux `/proc`): all of it, or its anonymous or file-backed part. */
function workerdRss(pgid: number, field: "VmRSS" | "RssAnon" | "RssFile" = "VmRSS"): number {
  let bytes = 0;
  for (const pid of workerdProcesses(pgid)) {
    try {
      bytes += Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
    } catch {
      continue; // exited meanwhile
    }
  }
  return bytes;
}

/**
 * CPU time (user + system, ms) the workerd processes in the group led by `pgid` have used so far
 * (Linux `/proc`; clock ticks of 10 ms): `proxy` is wrangler's dev proxy (the process listening on
 * the public port, `entry=...:<port>` with a port not 0), `worker` the runtime serving the Worker.
 */
function workerdCpuMs(pgid: number): { proxy: number; worker: number } {
  const ms = { proxy: 0, worker: 0 };
  for (const pid of workerdProcesses(pgid)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const used = (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime
      const publicPort = /--socket-addr=entry=[^\0]*:(\d+)/.exec(readFileSync(`/proc/${pid}/cmdline`, "utf8"))?.[1];
      if (publicPort !== undefined && publicPort !== "0") ms.proxy += used;
      else ms.worker += used;
    } catch {
      continue; // exited meanwhile
    }
  }
  return ms;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One `wrangler dev` process group. */
interface Run {
  child: ChildProcess;
  exited: () => boolean;
}

/**
 * A temporary project that serves `convexDir` with this checkout's calmsync: its own copies of
 * `src/`, `public/`, `scripts/` and the configuration (the Worker imports
 * `../convex/_generated/modules.js` relative to itself), this checkout's `node_modules`, and
 * the app generated by our codegen (`generated: false`: nothing built yet, as in a fresh clone).
 * Returns its root; the caller removes it.
 */
export function appProject(convexDir: string, { generated = true, modules = [] }: { generated?: boolean; modules?: string[] } = {}): string {
  const repo = resolve(import.meta.dirname, "../..");
  const root = mkdtempSync(join(tmpdir(), "calmsync-app-"));
  const built = (path: string) => path.includes("_generated") || path.includes(join("public", "build"));
  for (const entry of ["src", "public", "scripts", "wrangler.toml", "package.json", "tsconfig.json"])
    cpSync(join(repo, entry), join(root, entry), { recursive: true, filter: (path) => !built(path) });
  symlinkSync(join(repo, "node_modules"), join(root, "node_modules"));
  cpSync(convexDir, join(root, "convex"), { recursive: true, filter: (path) => !built(path) });
  for (const module of modules) cpSync(module, join(root, "convex", basename(module)));
  // wrangler's build command (wrangler.toml) generates too; generating here keeps `src/` type-checkable at once.
  if (generated) generate(join(root, "convex"));
  return root;
}

export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  const repo = resolve(import.meta.dirname, "../..");
  const project = options.plain
    ? appProject(join(repo, "convex"), { generated: false })
    : options.app
      ? appProject(options.app, { modules: options.modules })
      : null;
  const root = project ?? repo;
  const [port, inspectorPort] = [await freePort(), await freePort()];
  const ownStorage = options.persistTo === undefined;
  const persistTo = options.persistTo ?? mkdtempSync(join(tmpdir(), "calmsync-e2e-"));
  const wrangler = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
  const url = `http://127.0.0.1:${port}`;
  const keys = options.plain ? {} : await (authKeys ??= generateConvexAuthKeys());
  let log = "";
  let run: Run | null = null;

  const spawnRuntime = (): Run => {
    const where = ["--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort), "--persist-to", persistTo];
    const harness = [
      "--var",
      `ADMIN_KEY:${TEST_ADMIN_KEY}`,
      ...DEV_STAMP,
      ...Object.entries({ ...keys, ...options.vars }).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
      "--show-interactive-dev-session=false",
    ];
    const [command, args] = options.plain ? ["npx", ["wrangler", "dev", ...where]] : [process.execPath, [wrangler, "dev", ...where, ...harness]];
    const child: ChildProcess = spawn(command, args, {
      cwd: root,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", ...(options.localObservability === false ? { X_LOCAL_OBSERVABILITY: "false" } : {}) },
    });
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
    if (project) rmSync(project, { recursive: true, force: true });
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
    if (project) rmSync(project, { recursive: true, force: true });
    throw error;
  }
  return {
    url,
    persistTo,
    output: () => log,
    stop,
    kill,
    restart: async (restartOptions = {}) => launch(restartOptions.timeoutMs ?? options.timeoutMs ?? 90_000),
    runtimeRssBytes: () => (process.platform === "linux" && run?.child.pid ? workerdRss(run.child.pid) : null),
    runtimeRssSplit: () =>
      process.platform === "linux" && run?.child.pid ? { anon: workerdRss(run.child.pid, "RssAnon"), file: workerdRss(run.child.pid, "RssFile") } : null,
    runtimeCpuMs: () => (process.platform === "linux" && run?.child.pid ? workerdCpuMs(run.child.pid) : null),
  };
}
