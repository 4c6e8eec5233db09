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
 *
 * Every component instance has its own `_scheduled_functions`; one runner
 * serves them all, the earliest due job first whichever table it is in.
 */
import type { Document, Value } from "./values.ts";
import { encodeKey, prefixSuccessor } from "./keys.ts";
import type { Transaction } from "./transaction.ts";
import type { Engine } from "./engine.ts";
import { BUSY_RETRY_MS, RunningJobActions, runJob, type JobStart } from "./job-runner.ts";
import { SCHEDULED_FUNCTIONS, type JobState } from "./scheduling.ts";
import type { ComponentInstance } from "./components.ts";
import { tableOfId } from "./ids.ts";

/** An instance's index of jobs by state, then due time (`schema.ts`). */
const byNext = (instance: ComponentInstance) => `${instance.namespace.storageName(SCHEDULED_FUNCTIONS)}.by_next`;

export interface ScheduledJobsOptions {
  /** Wall clock in ms. */
  now?: () => number;
  /** Jobs one `runDue` call may run (a knob): the rest wait for the next call. */
  maxPerRun: () => number;
  /** Where started actions are kept while they run (shared with the crons). */
  running?: RunningJobActions;
  /** How long a finished job is kept (a knob); older ones are deleted, `maxPerRun` per call. Unset: kept forever. */
  retentionMs?: () => number;
}

const FINISHED: readonly JobState["kind"][] = ["success", "failed", "canceled"];

export class ScheduledJobs {
  private readonly engine: Engine;
  private readonly now: () => number;
  private readonly maxPerRun: () => number;
  private readonly retentionMs: (() => number) | null;
  readonly running: RunningJobActions;

  constructor(engine: Engine, options: ScheduledJobsOptions) {
    this.engine = engine;
    this.now = options.now ?? Date.now;
    this.maxPerRun = options.maxPerRun;
    this.retentionMs = options.retentionMs ?? null;
    this.running = options.running ?? new RunningJobActions();
  }

  /** The first pending job in due order, of any instance, or null. */
  private firstPending(): Document | null {
    const prefix = encodeKey(["pending"]);
    let first: Document | null = null;
    for (const instance of this.engine.components.all) {
      for (const { document } of this.engine.store.scanIndex(byNext(instance), { start: prefix, end: prefixSuccessor(prefix) }, "asc", 1)) {
        if (first === null || (document.scheduledTime as number) < (first.scheduledTime as number)) first = document;
        break;
      }
    }
    return first;
  }

  /** When the next pending job is due (ms), or null when none is pending. */
  nextDue(): number | null {
    return (this.firstPending()?.scheduledTime as number | undefined) ?? null;
  }

  /**
   * Runs due jobs, at most `maxPerRun`, and returns when the next one is due
   * (null: none pending). Mutations run one after another; actions are
   * started as they come due and left running, outside the lock, in
   * `running`. Jobs run in due order: when the next is an action and every
   * job slot is taken, the call stops there and asks to be called again soon.
   */
  async runDue(): Promise<number | null> {
    for (let ran = 0; ran < this.maxPerRun(); ran++) {
      const job = this.firstPending();
      if (!job || (job.scheduledTime as number) > this.now()) break;
      const started = await this.start(job);
      if (started.kind === "busy") return this.now() + BUSY_RETRY_MS;
      if (started.kind === "running") this.running.add(started.ended);
    }
    const next = this.nextDue();
    const sweep = await this.deleteExpired();
    return next === null || (sweep !== null && sweep < next) ? sweep : next;
  }

  /**
   * Deletes finished jobs older than the retention, at most `maxPerRun`, and
   * returns when to call again for the next ones (null: none finished). A
   * job's age runs from its completion (a canceled one's, which has none,
   * from its due time); jobs are scanned in due order, and since a job ends
   * after it is due, none past the cutoff's due time can be old enough.
   */
  private async deleteExpired(): Promise<number | null> {
    if (!this.retentionMs) return null;
    const retention = this.retentionMs();
    const cutoff = this.now() - retention;
    const budget = this.maxPerRun();
    const expired: string[] = [];
    let nextExpiry: number | null = null;
    for (const instance of this.engine.components.all) {
      for (const kind of FINISHED) {
        const prefix = encodeKey([kind]);
        let scanned = 0;
        for (const { document } of this.engine.store.scanIndex(byNext(instance), { start: prefix, end: prefixSuccessor(prefix) }, "asc", budget * 4)) {
          const endedAt = (document.completedTime as number | undefined) ?? (document.scheduledTime as number);
          if (endedAt < cutoff && expired.length < budget) expired.push(document._id);
          else {
            const expiry = endedAt + retention;
            if (nextExpiry === null || expiry < nextExpiry) nextExpiry = expiry;
            if ((document.scheduledTime as number) >= cutoff) break;
          }
          // Scanned as far as one call may with more to delete: come back at once (a full scan of unexpired ones just waits).
          if (++scanned >= budget * 4 && expired.length > 0) nextExpiry = this.now();
        }
      }
    }
    if (expired.length > 0)
      await this.engine.exclusive(async () => this.engine.executeSystemWrite((tx) => expired.forEach((id) => tx.delete(id, { system: true }))));
    return nextExpiry;
  }

  /** Runs a due job if still pending (see `job-runner.ts`), in the instance it names, else the one whose table holds it. */
  private start(job: Document): Promise<JobStart> {
    const id = job._id;
    const owner = this.engine.components.all.find((instance) => instance.namespace.localName(tableOfId(id) ?? SCHEDULED_FUNCTIONS) !== null)?.path ?? "";
    const componentPath = typeof job.componentPath === "string" ? job.componentPath : owner;
    const finish = (state: JobState) => (tx: Transaction) => tx.patch(id, { state, completedTime: this.now() }, { system: true });
    return runJob(
      this.engine,
      job.name as string,
      (job.args as Value[])[0] ?? {},
      {
        stillDue: () => (this.engine.store.getDocument(id)?.document.state as JobState | undefined)?.kind === "pending",
        claimed: (tx) => tx.patch(id, { state: { kind: "inProgress" } }, { system: true }),
        succeeded: finish({ kind: "success" }),
        failed: (error) => finish({ kind: "failed", error }),
        actionEnded: (error) => finish(error === null ? { kind: "success" } : { kind: "failed", error }),
      },
      componentPath,
    );
  }
}
