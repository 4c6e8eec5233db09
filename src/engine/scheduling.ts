/**
 * Scheduling inside a function run (`ctx.scheduler.runAfter` / `runAt` /
 * `cancel`): a job is a document of the system table `_scheduled_functions`,
 * written in the scheduling mutation's own transaction, so if the mutation
 * throws nothing was scheduled. Running due jobs is `scheduled-jobs.ts`'s.
 */
import { describe, isPlainObject, jsonTextSize, jsonToConvex } from "./values.ts";
import type { Transaction } from "./transaction.ts";
import type { FunctionRegistry } from "./functions.ts";
import { canonicalizePath } from "./functions.ts";
import { FunctionError } from "./errors.ts";
import { tableOfId } from "./ids.ts";

export const SCHEDULED_FUNCTIONS = "_scheduled_functions";
export type JobState = { kind: "pending" | "inProgress" | "success" | "canceled" } | { kind: "failed"; error: string };

/**
 * What one function run (a mutation, or an action with every job it
 * schedules) may schedule: Convex's caps of 1,000 jobs and 8 MiB of their
 * arguments, as knobs. Without them one run could fill the table.
 */
export class SchedulingBudget {
  private jobs = 0;
  private bytes = 0;
  private readonly limits: { maxScheduledPerFunction: number; maxScheduledArgumentBytes: number };

  constructor(limits: { maxScheduledPerFunction: number; maxScheduledArgumentBytes: number }) {
    this.limits = limits;
  }

  /** Counts one more job with arguments of `argumentBytes`, or throws `LimitExceeded` naming the knob it passes. */
  charge(argumentBytes: number): void {
    const { maxScheduledPerFunction, maxScheduledArgumentBytes } = this.limits;
    if (this.jobs + 1 > maxScheduledPerFunction) {
      throw new FunctionError("LimitExceeded", `Too many functions scheduled by one function run: more than ${maxScheduledPerFunction} (knob maxScheduledPerFunction)`);
    }
    if (this.bytes + argumentBytes > maxScheduledArgumentBytes) {
      throw new FunctionError("LimitExceeded", `The arguments of the functions scheduled by one function run are too large: ${this.bytes + argumentBytes} bytes, limit ${maxScheduledArgumentBytes} (knob maxScheduledArgumentBytes)`);
    }
    this.jobs++;
    this.bytes += argumentBytes;
  }
}

/** `1.0/schedule`: checks the target exists and the run's budget, and writes a pending job into `tx`; returns its id. */
export function scheduleJob(
  tx: Transaction,
  functions: FunctionRegistry,
  budget: SchedulingBudget,
  address: { name?: unknown; reference?: unknown; functionHandle?: unknown },
  tsSeconds: unknown,
  argsJson: unknown,
): string {
  if (typeof address.name !== "string") {
    throw new FunctionError("BadRequest", "Scheduling by function handle or component reference is not supported; schedule a function of this app (internal.module.fn)");
  }
  const name = canonicalizePath(address.name);
  const target = functions.get(name);
  if (!target || target.kind === "query") throw new FunctionError("BadRequest", `Attempted to schedule function at nonexistent path: ${name} (a mutation or action is needed)`);
  if (typeof tsSeconds !== "number" || !Number.isFinite(tsSeconds)) throw new FunctionError("BadRequest", `The scheduled time must be a finite number, got ${describe(tsSeconds)}`);
  const args = jsonToConvex(argsJson ?? {});
  if (!isPlainObject(args)) throw new FunctionError("BadRequest", `Scheduled function arguments must be an object, got ${describe(args)}`);
  budget.charge(jsonTextSize(JSON.stringify(argsJson ?? {}), tx.limits.maxValueDepth));
  return tx.insertSystem(SCHEDULED_FUNCTIONS, { name, args: [args], scheduledTime: tsSeconds * 1000, state: { kind: "pending" } });
}

/** `1.0/cancel_job`: a pending job never runs; one that already ran or was canceled stays as it is. */
export function cancelJob(tx: Transaction, id: unknown): void {
  if (typeof id !== "string" || tableOfId(id) !== SCHEDULED_FUNCTIONS) throw new FunctionError("BadRequest", `cancel expects an Id<"_scheduled_functions">, got ${describe(id)}`);
  const job = tx.get(id)?.document;
  if (!job) throw new FunctionError("BadRequest", `No scheduled function ${id}`);
  if ((job.state as JobState).kind === "pending") tx.patch(id, { state: { kind: "canceled" } }, { system: true });
}
