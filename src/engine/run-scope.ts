/**
 * What a function run carries through its awaits, in one `AsyncLocalStorage` store: where its
 * syscalls go (`Convex.*`, syscalls/convex-global.ts), its request id and variables
 * (`process.env`, syscalls/run-context.ts) and the loop guard's bookkeeping (sync-guard.ts).
 * A run enters it once (`Engine.invoke`): one context per run, not one per concern, since each
 * `run()` and each read of a store costs on the function path (issue 27). Each field can be
 * entered alone too (an HTTP request's id before any run, a module's top level under the guard),
 * keeping the others as they are.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { LogLines } from "./syscalls/log-lines.ts";

/** What a run answers syscalls with: a query's or mutation's `Execution`, or an action's (syscalls/convex-global.ts). */
export interface ConvexGlobal {
  syscall(op: string, argsJson: string): string;
  /** convex/server awaits the answer: a query's reads answer with the text itself, no promise per document. */
  asyncSyscall(op: string, argsJson: string): string | Promise<string>;
  jsSyscall(op: string, args: Record<string, unknown>): unknown;
  /** What the run prints (`console.*`), when it collects it. */
  readonly logs?: LogLines;
  /** Told when the run reads the clock (`Date.now()`, `new Date()`): its result may then change with time alone. */
  readClock?(): void;
}

/** A deployment's variables by name (read on each run, so a change applies to the next one). */
export type EnvironmentVariables = ReadonlyMap<string, string>;

/** Its request id and its deployment's variables (syscalls/run-context.ts). */
export interface RunContext {
  readonly requestId: string;
  readonly environment: EnvironmentVariables;
}

/** A `GuardedRun` (sync-guard.ts), which reads it back as one; opaque here so this module imports none of its users. */
export interface GuardedRunOpaque {
  readonly name: string;
}

export interface RunScope {
  /** What the run's syscalls are answered by; none outside any run (or where `outsideAnyRun` cut it off). */
  readonly execution: ConvexGlobal | undefined;
  /** Its request id and its deployment's variables. */
  readonly context: RunContext | undefined;
  /** What the guard calls in its code count against. */
  readonly guarded: GuardedRunOpaque | undefined;
}

export const runScope = new AsyncLocalStorage<RunScope>();

/** Runs `fn` with one field of the current scope replaced, the others kept. */
export function withScopeField<K extends keyof RunScope, T>(field: K, value: RunScope[K], fn: () => T): T {
  const scope = runScope.getStore();
  return runScope.run({ execution: scope?.execution, context: scope?.context, guarded: scope?.guarded, [field]: value }, fn);
}
