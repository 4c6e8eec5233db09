/**
 * CPU profiles of a workerd benchmark's windows (`profileWindow` in scripts/bench/workerd/),
 * taken through workerd's inspector: runs the benchmark file under vitest with `--inspect`,
 * starts V8's sampling profiler when the benchmark opens a window and stops it when the window
 * closes, writes each profile (`.cpuprofile`, opens in Chrome DevTools) and returns one table
 * of where the time went per unit of work, the windows side by side (profile-categories.ts).
 *
 * One isolate runs the benchmark's clients and the deployment's objects alike (as one thread
 * runs every object locally), so the table shows both, each under its own name.
 */
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { partsTable, type CpuProfile } from "./profile-categories.ts";

/** Sampling interval: 100 µs resolves a commit (about 2 ms) into parts without slowing it much. */
const SAMPLING_INTERVAL_US = 100;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A Chrome DevTools Protocol session on the isolate's inspector. */
async function inspect(port: number) {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  if (targets.length === 0) throw new Error("workerd's inspector lists no isolate");
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.addEventListener("open", resolve);
    socket.addEventListener("error", reject);
  });
  /** The isolate's JavaScript contexts, as `Runtime.enable` reports them: a global is set in each. */
  const contexts = new Set<number>();
  const pending = new Map<number, (message: { result?: Record<string, unknown>; error?: { message: string } }) => void>();
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as {
      id?: number;
      method?: string;
      params?: { context?: { id: number } };
      result?: Record<string, unknown>;
      error?: { message: string };
    };
    if (message.id !== undefined) pending.get(message.id)?.(message);
    if (message.method === "Runtime.executionContextCreated") contexts.add(message.params!.context!.id);
    if (message.method === "Runtime.executionContextDestroyed") contexts.delete((message.params as { executionContextId: number }).executionContextId);
  });
  // Workerd gone (the benchmark ended or failed): every call still waiting fails instead of hanging.
  const closed = () => {
    for (const answer of pending.values()) answer({ error: { message: "the inspector closed" } });
  };
  socket.addEventListener("close", closed);
  socket.addEventListener("error", closed);
  let nextId = 0;
  const call = (method: string, params: object = {}) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, (message) => {
        pending.delete(id);
        if (message.error) reject(new Error(`${method}: ${message.error.message}`));
        else resolve(message.result ?? {});
      });
      socket.send(JSON.stringify({ id, method, params }));
    });
  await call("Runtime.enable");
  return {
    call,
    close: () => socket.close(),
    /** Sets `globalThis[name]` in every context of the isolate (the benchmark's is one of them). */
    setGlobal: async (name: string, value: unknown) => {
      for (const contextId of contexts) await call("Runtime.evaluate", { expression: `globalThis.${name} = ${JSON.stringify(value)}`, contextId });
    },
  };
}

type Inspector = Awaited<ReturnType<typeof inspect>>;

/**
 * Runs `file` (a workerd benchmark) with its windows profiled; writes `<dir>/<label>.cpuprofile`
 * and returns the table. `env` goes to the benchmark (e.g. BENCH_LOAD_BUDGETS).
 */
export async function profileWorkerdBench(file: string, dir: string, env: Record<string, string> = {}): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const child = spawn(process.execPath, ["node_modules/vitest/vitest.mjs", "run", "-c", "vitest.bench.config.ts", file, `--inspect=127.0.0.1:${port}`], {
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", BENCH_PROFILE: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const windows: { label: string; unit: string; units: number; profile: CpuProfile }[] = [];
  let session: Inspector | null = null;
  let output = "";
  // Lines are handled one at a time, in order: a window's stop must not overtake its start.
  let handling = Promise.resolve();
  const onLine = async (line: string) => {
    const start = /BENCH-PROFILE-START (\{.*\})/.exec(line);
    const stop = /BENCH-PROFILE-STOP (\{.*\})/.exec(line);
    if (start) {
      const { label } = JSON.parse(start[1]!) as { label: string };
      session ??= await inspect(port);
      await session.call("Profiler.enable");
      await session.call("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
      await session.call("Profiler.start");
      await session.setGlobal("__benchProfiling", label);
    } else if (stop && session) {
      const window = JSON.parse(stop[1]!) as { label: string; unit: string; units: number };
      const { profile } = (await session.call("Profiler.stop")) as { profile: CpuProfile };
      writeFileSync(join(dir, `${window.label.replace(/[^\w.-]+/g, "-")}.cpuprofile`), JSON.stringify(profile));
      windows.push({ ...window, profile });
      await session.setGlobal("__benchProfiling", null);
    }
  };
  // The first failure of the profiler's side stops the benchmark: it would otherwise wait for an answer that never comes.
  let failure: Error | null = null;
  const handle = (line: string) =>
    onLine(line).catch((error: unknown) => {
      failure ??= error as Error;
      child.kill();
    });
  let partial = "";
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    const lines = (partial + chunk.toString()).split("\n");
    partial = lines.pop()!;
    for (const line of lines) handling = handling.then(() => handle(line));
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  try {
    // "close", not "exit": every line of output has been read by then.
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    await handling;
    if (failure || code !== 0 || windows.length === 0) {
      throw new Error(
        `profiling ${file} failed (exit ${code}, ${windows.length} windows${failure ? `: ${(failure as Error).message}` : ""}):\n${output.slice(-3000)}`,
      );
    }
    return partsTable(windows);
  } finally {
    if (child.exitCode === null) child.kill();
    // Assigned in a callback, which TypeScript's narrowing does not see.
    (session as Inspector | null)?.close();
  }
}
