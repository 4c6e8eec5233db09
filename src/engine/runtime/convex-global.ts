/**
 * The one global `convex/server` reaches its backend through: `Convex.syscall`,
 * `Convex.asyncSyscall` and `Convex.jsSyscall`, read on every call. Several
 * Durable Objects (deployments) share an isolate and its globals, and their
 * functions interleave at every `await`, so the global routes each call to
 * the run it belongs to through an `AsyncLocalStorage` that every entry point
 * enters (`runInExecution`). `node:async_hooks` is plain Node, and workerd
 * provides it under the `nodejs_als` flag, so the engine stays free of
 * Cloudflare imports.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Execution } from "./execution.ts";

const current = new AsyncLocalStorage<Execution>();

function active(): Execution {
  const execution = current.getStore();
  if (!execution) {
    throw new Error("The Convex database was used outside of a running function (e.g. from a timer or after the function returned).");
  }
  return execution;
}

const syscalls = {
  syscall: (op: string, argsJson: string) => active().syscall(op, argsJson),
  asyncSyscall: (op: string, argsJson: string) => active().asyncSyscall(op, argsJson),
  jsSyscall: (op: string) => active().jsSyscall(op),
};

/** Runs `fn` (a function's `invoke*`) with every syscall it makes, at any depth of awaits, routed to `execution`. */
export function runInExecution<T>(execution: Execution, fn: () => Promise<T>): Promise<T> {
  const global = globalThis as { Convex?: unknown };
  if (global.Convex !== syscalls) global.Convex = syscalls;
  return current.run(execution, fn);
}
