/**
 * Scheduled functions (`ctx.scheduler.runAfter` / `runAt` / `cancel`).
 *
 * A job is a document of the system table `_scheduled_functions`, written in
 * the scheduling mutation's own transaction: if the mutation throws, nothing
 * was scheduled. Its fields are Convex's: `name`, `args` (a one-element
 * array), `scheduledTime` (ms), `state: {kind: pending | inProgress | success
 * | failed (+ error) | canceled}`, `completedTime`.
 *
 * `ScheduledJobs` runs the due ones, oldest due first and a bounded number per
 * call (the deployment calls it from its alarm). A scheduled mutation runs
 * exactly once: its job turns `success` in the same commit as the mutation's
 * writes, so a crash before that commit leaves the job pending and nothing
 * applied, and it runs again after the restart. A mutation that throws is
 * recorded `failed` with its error, in a commit of its own. A scheduled
 * action runs at most once: it is marked `inProgress` in a commit before it
 * starts (a crash leaves it so), then `success` or `failed`.
 */
import type { Document, Value } from "./values.ts";
import { describe, isPlainObject, jsonToConvex } from "./values.ts";
import { encodeKey, prefixSuccessor } from "./keys.ts";
import type { Transaction } from "./transaction.ts";
import type { FunctionRegistry } from "./functions.ts";
import { canonicalizePath } from "./functions.ts";
import { FunctionError } from "./errors.ts";
import { tableOfId } from "./ids.ts";
import type { Engine } from "./engine.ts";
import { runJob } from "./job-runner.ts";

export const SCHEDULED_FUNCTIONS = "_scheduled_functions";
/** The index of jobs by state, then due time (`schema.ts`). */
const BY_NEXT = `${SCHEDULED_FUNCTIONS}.by_next`;

export type JobState = { kind: "pending" | "inProgress" | "success" | "canceled" } | { kind: "failed"; error: string };

/** `1.0/schedule`: checks the target exists and writes a pending job into `tx`; returns its id. */
export function scheduleJob(tx: Transaction, functions: FunctionRegistry, address: { name?: unknown; reference?: unknown; functionHandle?: unknown }, tsSeconds: unknown, argsJson: unknown): string {
  if (typeof address.name !== "string") {
    throw new FunctionError("BadRequest", "Scheduling by function handle or component reference is not supported; schedule a function of this app (internal.module.fn)");
  }
  const name = canonicalizePath(address.name);
  const target = functions.get(name);
  if (!target || target.kind === "query") throw new FunctionError("BadRequest", `Attempted to schedule function at nonexistent path: ${name} (a mutation or action is needed)`);
  if (typeof tsSeconds !== "number" || !Number.isFinite(tsSeconds)) throw new FunctionError("BadRequest", `The scheduled time must be a finite number, got ${describe(tsSeconds)}`);
  const args = jsonToConvex(argsJson ?? {});
  if (!isPlainObject(args)) throw new FunctionError("BadRequest", `Scheduled function arguments must be an object, got ${describe(args)}`);
  return tx.insertSystem(SCHEDULED_FUNCTIONS, { name, args: [args], scheduledTime: tsSeconds * 1000, state: { kind: "pending" } });
}

/** `1.0/cancel_job`: a pending job never runs; one that already ran or was canceled stays as it is. */
export function cancelJob(tx: Transaction, id: unknown): void {
  if (typeof id !== "string" || tableOfId(id) !== SCHEDULED_FUNCTIONS) throw new FunctionError("BadRequest", `cancel expects an Id<"_scheduled_functions">, got ${describe(id)}`);
  const job = tx.get(id)?.document;
  if (!job) throw new FunctionError("BadRequest", `No scheduled function ${id}`);
  if ((job.state as JobState).kind === "pending") tx.patch(id, { state: { kind: "canceled" } }, { system: true });
}

export interface ScheduledJobsOptions {
  /** Wall clock in ms. */
  now?: () => number;
  /** Jobs one `runDue` call may run (a knob): the rest wait for the next call. */
  maxPerRun: () => number;
}

export class ScheduledJobs {
  private readonly engine: Engine;
  private readonly now: () => number;
  private readonly maxPerRun: () => number;

  constructor(engine: Engine, options: ScheduledJobsOptions) {
    this.engine = engine;
    this.now = options.now ?? Date.now;
    this.maxPerRun = options.maxPerRun;
  }

  /** The first pending job in due order, or null. */
  private firstPending(): Document | null {
    const prefix = encodeKey(["pending"]);
    for (const entry of this.engine.store.scanIndex(BY_NEXT, { start: prefix, end: prefixSuccessor(prefix) }, "asc", 1)) return entry.document;
    return null;
  }

  /** When the next pending job is due (ms), or null when none is pending. */
  nextDue(): number | null {
    return (this.firstPending()?.scheduledTime as number | undefined) ?? null;
  }

  /**
   * Runs due jobs, at most `maxPerRun`, and returns when the next one is due
   * (null: none pending). Mutations run one after another; actions are
   * started as they come due and run side by side, outside the lock, and the
   * call returns once they have all ended.
   */
  async runDue(): Promise<number | null> {
    const actions: Promise<void>[] = [];
    for (let ran = 0; ran < this.maxPerRun(); ran++) {
      const job = this.firstPending();
      if (!job || (job.scheduledTime as number) > this.now()) break;
      const action = await this.start(job);
      if (action) actions.push(action);
    }
    await Promise.all(actions);
    return this.nextDue();
  }

  /** Runs a due job if still pending (see `job-runner.ts`); an action is returned running. */
  private start(job: Document): Promise<Promise<void> | null> {
    const id = job._id;
    const finish = (state: JobState) => (tx: Transaction) => tx.patch(id, { state, completedTime: this.now() }, { system: true });
    return runJob(this.engine, job.name as string, (job.args as Value[])[0] ?? {}, {
      stillDue: () => (this.engine.store.getDocument(id)?.document.state as JobState | undefined)?.kind === "pending",
      claimed: (tx) => tx.patch(id, { state: { kind: "inProgress" } }, { system: true }),
      succeeded: finish({ kind: "success" }),
      failed: (error) => finish({ kind: "failed", error }),
      actionEnded: (error) => finish(error === null ? { kind: "success" } : { kind: "failed", error }),
    });
  }
}
