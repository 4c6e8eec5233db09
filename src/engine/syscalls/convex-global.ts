/**
 * The one global `convex/server` reaches its backend through: `Convex.syscall`,
 * `Convex.asyncSyscall` and `Convex.jsSyscall`, read on every call. Several
 * Durable Objects (deployments) share an isolate and its globals, and their
 * functions interleave at every `await`, so the global routes each call to
 * the run it belongs to through an `AsyncLocalStorage` that every entry point
 * enters (`runInScope`, or `runInExecution` for the execution alone): the
 * run's one scope (../run-scope.ts). `node:async_hooks` is plain Node, and
 * workerd provides it under the `nodejs_als` flag, so the engine stays free of
 * Cloudflare imports.
 */
import { runScope, withScopeField, type ConvexGlobal, type RunScope } from "../run-scope.ts";
import { CONSOLE_METHODS } from "./log-lines.ts";
export type { ConvexGlobal } from "../run-scope.ts";

const current = { getStore: (): ConvexGlobal | undefined => runScope.getStore()?.execution };

/** A global another in-process backend installed before us (convex-test in a differential test): it serves calls that are not ours. */
let previous: ConvexGlobal | undefined;

function outside(): never {
  throw new Error("The Convex database was used outside of a running function (e.g. from a timer or after the function returned).");
}

const syscalls: ConvexGlobal = {
  syscall: (op, argsJson) => (current.getStore() ?? previous ?? outside()).syscall(op, argsJson),
  asyncSyscall: (op, argsJson) => (current.getStore() ?? previous ?? outside()).asyncSyscall(op, argsJson),
  jsSyscall: (op, args) => (current.getStore() ?? previous ?? outside()).jsSyscall(op, args),
};

let consoleCaptured = false;

/**
 * Wraps `console.*` once: inside a run, a line also goes to that run's log
 * lines (sent to the client, as Convex does); it is printed as before either way.
 */
function captureConsole(): void {
  if (consoleCaptured) return;
  consoleCaptured = true;
  for (const method of CONSOLE_METHODS) {
    const print = console[method].bind(console);
    console[method] = (...args: unknown[]) => {
      current.getStore()?.logs?.add(method, args);
      print(...args);
    };
  }
}

/**
 * Runs `fn` outside any function's run, whoever calls it: work started here
 * (and whatever it schedules) prints to no caller's log lines and reaches no
 * caller's syscalls. The function lock starts its drain loop this way, since
 * the loop runs other callers' tasks.
 */
export function outsideAnyRun<T>(fn: () => T): T {
  return withScopeField("execution", undefined, fn);
}

/**
 * `fn`, bound to the run it is made in (or to none): wherever it is called later, it prints to that run's log lines only.
 * The run's one scope is re-entered, not a snapshot of every `AsyncLocalStorage` (`AsyncLocalStorage.snapshot()` per
 * lock task cost about 7% of a constant query's run in Node, issue 27).
 */
export function bindToCurrentRun<T>(fn: () => T): () => T {
  const scope = runScope.getStore();
  return () => runScope.run(scope as RunScope, fn);
}

/** Where the isolate keeps the unwrapped clock, so a second copy of this module (a test runner's) never wraps a wrapper. */
const WALL_CLOCK = Symbol.for("calmsync.wallClock");

/** The wall clock in ms, read without telling any run (the engine's own reads: run reports, the loop guard). */
export const wallClock: () => number = ((globalThis as unknown as Record<symbol, () => number>)[WALL_CLOCK] ??= Date.now.bind(Date));

/**
 * Wraps the clock once: a run that reads it (`Date.now()`, `new Date()`,
 * `Date()`) is told (`ConvexGlobal.readClock`), as Convex's runtime marks an
 * outcome that observed time; the query cache then serves its result only
 * while it is young (query-instances.ts). Outside a run nothing changes.
 */
function watchClock(): void {
  const global = globalThis as unknown as Record<symbol, boolean | undefined>;
  if (global[Symbol.for("calmsync.clockWatched")]) return;
  global[Symbol.for("calmsync.clockWatched")] = true;
  const RealDate = Date;
  const told = () => current.getStore()?.readClock?.();
  RealDate.now = function now() {
    told();
    return wallClock();
  };
  globalThis.Date = new Proxy(RealDate, {
    construct(target, args, newTarget) {
      if (args.length === 0) told();
      return Reflect.construct(target, args, newTarget) as object;
    },
    apply(target, self, args) {
      told();
      return Reflect.apply(target, self, args) as string;
    },
  });
}

function install(): void {
  const global = globalThis as { Convex?: ConvexGlobal };
  if (global.Convex !== syscalls) {
    previous = global.Convex;
    global.Convex = syscalls;
  }
  captureConsole();
  watchClock();
}

/** Runs `fn` (a function's `invoke*`) with every syscall it makes, at any depth of awaits, routed to `execution`. */
export function runInExecution<T>(execution: ConvexGlobal, fn: () => Promise<T>): Promise<T> {
  install();
  return withScopeField("execution", execution, fn);
}

/** Runs `fn` as one run: its syscalls routed to `scope.execution`, its context and guarded run entered at once (one context, not three). */
export function runInScope<T>(scope: RunScope & { execution: ConvexGlobal }, fn: () => Promise<T>): Promise<T> {
  install();
  return runScope.run(scope, fn);
}
