/**
 * Scheduling inside a function run (`ctx.scheduler.runAfter` / `runAt` /
 * `cancel`): a job is a document of the system table `_scheduled_functions`,
 * written in the scheduling mutation's own transaction, so if the mutation
 * throws nothing was scheduled. Running due jobs is `scheduled-jobs.ts`'s.
 *
 * Each component instance has its own `_scheduled_functions`: a job is
 * written into the table of the instance that scheduled it. Its target may
 * be in another instance (a function handle: a workpool runs the app's
 * functions so); the job then names that instance in `componentPath`.
 */
import { describe, isPlainObject, jsonTextSize, jsonToConvex, type Value } from "./values.ts";
import type { Transaction } from "./transaction.ts";
import { FunctionError } from "./errors.ts";
import { tableOfId } from "./ids.ts";
import type { ComponentInstance, Components, FunctionAddress } from "./components.ts";
import { localTableName, type TableNamespace } from "./table-namespace.ts";

export const SCHEDULED_FUNCTIONS = "_scheduled_functions";
export type JobState = { kind: "pending" | "inProgress" | "success" | "canceled" } | { kind: "failed"; error: string };

/** Whether a written index is some instance's `_scheduled_functions.by_id`: a commit that scheduled or canceled a job. */
export function isScheduledJobsIndex(qualifiedIndex: string): boolean {
  const dot = qualifiedIndex.lastIndexOf(".");
  return qualifiedIndex.slice(dot + 1) === "by_id" && localTableName(qualifiedIndex.slice(0, dot)) === SCHEDULED_FUNCTIONS;
}

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
      throw new FunctionError(
        "LimitExceeded",
        `Too many functions scheduled by one function run: more than ${maxScheduledPerFunction} (knob maxScheduledPerFunction)`,
      );
    }
    if (this.bytes + argumentBytes > maxScheduledArgumentBytes) {
      throw new FunctionError(
        "LimitExceeded",
        `The arguments of the functions scheduled by one function run are too large: ${this.bytes + argumentBytes} bytes, limit ${maxScheduledArgumentBytes} (knob maxScheduledArgumentBytes)`,
      );
    }
    this.jobs++;
    this.bytes += argumentBytes;
  }
}

/** Who schedules: the instance the job is written into, among the others its target may be in. */
export interface Scheduler {
  readonly components: Components;
  readonly caller: ComponentInstance;
}

/** `1.0/schedule`: checks the target exists and the run's budget, and writes a pending job into `tx`; returns its id. */
export function scheduleJob(
  tx: Transaction,
  { components, caller }: Scheduler,
  budget: SchedulingBudget,
  address: FunctionAddress,
  tsSeconds: unknown,
  argsJson: unknown,
): string {
  let target;
  try {
    target = components.resolve(caller, address, "mutationOrAction");
  } catch (error) {
    if (!(error instanceof FunctionError)) throw error;
    throw new FunctionError("BadRequest", `Attempted to schedule function at nonexistent path: ${error.message} (a mutation or action is needed)`);
  }
  if (typeof tsSeconds !== "number" || !Number.isFinite(tsSeconds))
    throw new FunctionError("BadRequest", `The scheduled time must be a finite number, got ${describe(tsSeconds)}`);
  const args = jsonToConvex(argsJson ?? {});
  if (!isPlainObject(args)) throw new FunctionError("BadRequest", `Scheduled function arguments must be an object, got ${describe(args)}`);
  budget.charge(jsonTextSize(JSON.stringify(argsJson ?? {}), tx.limits.maxValueDepth));
  const elsewhere: Record<string, Value> = target.instance !== caller ? { componentPath: target.instance.path } : {};
  return tx.insertSystem(caller.namespace.storageName(SCHEDULED_FUNCTIONS), {
    name: target.fn.path,
    ...elsewhere,
    args: [args],
    scheduledTime: tsSeconds * 1000,
    state: { kind: "pending" },
  });
}

/** `1.0/cancel_job`: a pending job never runs; one that already ran or was canceled stays as it is. Only the caller's instance's jobs can be canceled. */
export function cancelJob(tx: Transaction, namespace: TableNamespace, id: unknown): void {
  const table = typeof id === "string" ? tableOfId(id) : null;
  if (typeof id !== "string" || table === null || namespace.localName(table) !== SCHEDULED_FUNCTIONS)
    throw new FunctionError("BadRequest", `cancel expects an Id<"_scheduled_functions">, got ${describe(id)}`);
  const job = tx.get(id)?.document;
  if (!job) throw new FunctionError("BadRequest", `No scheduled function ${id}`);
  if ((job.state as JobState).kind === "pending") tx.patch(id, { state: { kind: "canceled" } }, { system: true });
}
