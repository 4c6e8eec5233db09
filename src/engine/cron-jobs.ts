/**
 * Cron jobs: the `cronJobs()` object `convex/crons.ts` exports by default.
 *
 * Each job's state is a document of the system table `_cron_jobs` (`name`,
 * `functionName`, `args`, `schedule`, `nextRun`, `lastRun`, `lastError`),
 * reconciled with `crons.ts` when the deployment starts: new jobs are added,
 * removed ones deleted, changed ones rescheduled. The deployment's alarm runs
 * due jobs. A cron mutation advances its job in its own commit (each
 * occurrence runs exactly once); a cron action advances it before it starts
 * (at most once). Occurrences missed while the deployment was down are not
 * replayed: a late job runs once, then follows its schedule.
 *
 * Each component instance has its own jobs: a component's `crons.ts` (as
 * `@convex-dev/action-retrier` ships one) is reconciled into that instance's
 * `_cron_jobs` and its jobs run its functions in its namespace, as Convex
 * runs them; `AllCronJobs` drives the app's and every instance's together.
 *
 * Schedules in UTC: `interval` (from the previous run, the first one an
 * interval after the job was added), and `hourly`/`daily`/`weekly`/`monthly`/
 * `cron`, turned into cron expressions and stepped with `croner`.
 */
import { Cron } from "croner";
import type { Document, Value } from "./values.ts";
import { describe, valuesEqual } from "./values.ts";
import type { Transaction } from "./transaction.ts";
import { canonicalizePath } from "./functions.ts";
import { FunctionError } from "./errors.ts";
import type { Engine } from "./engine.ts";
import { BUSY_RETRY_MS, RunningJobActions, runJob, type JobStart } from "./job-runner.ts";

export const CRON_JOBS = "_cron_jobs";

export type CronSchedule =
  | { type: "interval"; seconds?: number; minutes?: number; hours?: number }
  | { type: "hourly"; minuteUTC?: number }
  | { type: "daily"; hourUTC: number; minuteUTC?: number }
  | { type: "weekly"; dayOfWeek: string; hourUTC: number; minuteUTC?: number }
  | { type: "monthly"; day: number; hourUTC: number; minuteUTC?: number }
  | { type: "cron"; cron: string };

export interface CronDefinition {
  /** The function's path (`module:export`). */
  name: string;
  /** Its arguments, as `cronJobs()` stores them: a one-element array. */
  args: Value[];
  schedule: CronSchedule;
}

/** The jobs `convex/crons.ts` defines (its default export, a `cronJobs()`), by job name. */
export function findCrons(modules: Record<string, Record<string, unknown>>): Record<string, CronDefinition> {
  const crons = modules.crons?.default as { isCrons?: boolean; crons?: Record<string, CronDefinition> } | undefined;
  return crons?.isCrons && crons.crons ? crons.crons : {};
}

const DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

/** The schedule as a cron expression (null for intervals). */
function cronExpression(schedule: CronSchedule): string | null {
  switch (schedule.type) {
    case "interval":
      return null;
    case "hourly":
      return `${schedule.minuteUTC ?? 0} * * * *`;
    case "daily":
      return `${schedule.minuteUTC ?? 0} ${schedule.hourUTC} * * *`;
    case "weekly":
      return `${schedule.minuteUTC ?? 0} ${schedule.hourUTC} * * ${DAYS.indexOf(schedule.dayOfWeek)}`;
    case "monthly":
      return `${schedule.minuteUTC ?? 0} ${schedule.hourUTC} ${schedule.day} * *`;
    case "cron":
      return schedule.cron;
  }
}

/** When a job with `schedule` runs next after `after` (ms). */
export function nextRunAfter(schedule: CronSchedule, after: number): number {
  if (schedule.type === "interval") {
    const ms = ((schedule.seconds ?? 0) + (schedule.minutes ?? 0) * 60 + (schedule.hours ?? 0) * 3_600) * 1_000;
    if (!(ms > 0)) throw new FunctionError("BadRequest", `A cron interval must be positive, got ${describe(schedule)}`);
    return after + ms;
  }
  const next = new Cron(cronExpression(schedule)!, { timezone: "UTC", paused: true }).nextRun(new Date(after));
  if (!next) throw new FunctionError("BadRequest", `The cron schedule ${describe(schedule)} never runs`);
  return next.getTime();
}

export interface CronJobsOptions {
  now?: () => number;
  /** Where started actions are kept while they run (shared with the scheduler). */
  running?: RunningJobActions;
  /** The component instance whose jobs these are (its `crons.ts`, its `_cron_jobs`, its functions); the app's by default. */
  componentPath?: string;
}

export class CronJobs {
  private readonly engine: Engine;
  private readonly definitions: Record<string, CronDefinition>;
  private readonly now: () => number;
  readonly running: RunningJobActions;
  readonly componentPath: string;
  /** This instance's `_cron_jobs`, as stored. */
  private readonly table: string;

  constructor(engine: Engine, definitions: Record<string, CronDefinition>, options: CronJobsOptions = {}) {
    this.engine = engine;
    this.definitions = definitions;
    this.now = options.now ?? Date.now;
    this.running = options.running ?? new RunningJobActions();
    this.componentPath = options.componentPath ?? "";
    const instance = engine.components.at(this.componentPath);
    if (!instance) throw new Error(`Cron jobs of component ${this.componentPath}, which this engine does not have`);
    this.table = instance.namespace.storageName(CRON_JOBS);
  }

  private jobs(): Document[] {
    const out: Document[] = [];
    for (const entry of this.engine.store.scanIndex(`${this.table}.by_creation_time`, { start: "", end: null }, "asc")) out.push(entry.document);
    return out;
  }

  /** Brings `_cron_jobs` in line with `crons.ts`; returns when the first job is due. */
  async reconcile(): Promise<number | null> {
    const now = this.now();
    await this.engine.exclusive(async () => {
      const stored = new Map(this.jobs().map((job) => [job.name as string, job]));
      // What to change, decided first: an unchanged crons.ts writes nothing.
      const writes: ((tx: Transaction) => void)[] = [];
      for (const [name, job] of stored) if (!(name in this.definitions)) writes.push((tx) => tx.delete(job._id, { system: true }));
      for (const [name, definition] of Object.entries(this.definitions)) {
        const fields = { functionName: canonicalizePath(definition.name), args: definition.args, schedule: definition.schedule as Value };
        const job = stored.get(name);
        const scheduled = () => ({ ...fields, nextRun: nextRunAfter(definition.schedule, now) });
        if (!job) writes.push((tx) => tx.insertSystem(this.table, { name, ...scheduled() }));
        else if (
          job.functionName !== fields.functionName ||
          !valuesEqual(job.args as Value, fields.args) ||
          !valuesEqual(job.schedule as Value, fields.schedule)
        ) {
          writes.push((tx) => tx.patch(job._id, scheduled(), { system: true }));
        }
      }
      if (writes.length > 0) this.engine.executeSystemWrite((tx) => writes.forEach((write) => write(tx)));
    });
    return this.nextDue();
  }

  /** When the first job is due (ms), or null when there are none. */
  nextDue(): number | null {
    let first: number | null = null;
    for (const job of this.jobs()) if (first === null || (job.nextRun as number) < first) first = job.nextRun as number;
    return first;
  }

  /**
   * Runs every due job once (actions left running side by side, outside the
   * lock, in `running`) and returns when the next is due. A due action that
   * finds every job slot taken stays due, to run late rather than be skipped.
   */
  async runDue(): Promise<number | null> {
    const now = this.now();
    let busy = false;
    for (const job of this.jobs()) {
      if ((job.nextRun as number) > now) continue;
      const started = await this.start(job, now);
      if (started.kind === "busy") busy = true;
      if (started.kind === "running") this.running.add(started.ended);
    }
    if (!busy) return this.nextDue();
    // The busy ones are still due (in the past): the next call is the earlier of their retry and the next job ahead.
    let next = now + BUSY_RETRY_MS;
    for (const job of this.jobs()) if ((job.nextRun as number) > now && (job.nextRun as number) < next) next = job.nextRun as number;
    return next;
  }

  /** Runs a due job (see `job-runner.ts`), advancing it to its next run. */
  private start(job: Document, now: number): Promise<JobStart> {
    const advance = (error: string | null) => (tx: Transaction) =>
      tx.patch(job._id, { nextRun: nextRunAfter(job.schedule as CronSchedule, now), lastRun: now, lastError: error ?? undefined }, { system: true });
    return runJob(
      this.engine,
      job.functionName as string,
      (job.args as Value[])[0] ?? {},
      {
        stillDue: () => ((this.engine.store.getDocument(job._id)?.document.nextRun as number | undefined) ?? Infinity) <= now,
        claimed: advance(null),
        succeeded: advance(null),
        failed: advance,
      },
      this.componentPath,
    );
  }
}

/**
 * The jobs of the app and of every component instance, each instance's
 * `CronJobs` on its own table, driven as one by the deployment's alarm: the
 * answers are when the first job of any instance is due.
 */
export class AllCronJobs {
  readonly instances: CronJobs[];

  /** `byInstance`: each instance's jobs by its path (`""`: the app's `convex/crons.ts`); an instance without a `crons.ts` has none, and any it stored are removed. */
  constructor(engine: Engine, byInstance: Record<string, Record<string, CronDefinition>>, options: Omit<CronJobsOptions, "componentPath"> = {}) {
    const running = options.running ?? new RunningJobActions();
    this.instances = Object.entries(byInstance).map(
      ([componentPath, definitions]) => new CronJobs(engine, definitions, { ...options, running, componentPath }),
    );
  }

  async reconcile(): Promise<number | null> {
    return earliest(await Promise.all(this.instances.map((jobs) => jobs.reconcile())));
  }

  async runDue(): Promise<number | null> {
    // One instance after another: each takes the function lock for its own jobs.
    const next: (number | null)[] = [];
    for (const jobs of this.instances) next.push(await jobs.runDue());
    return earliest(next);
  }

  nextDue(): number | null {
    return earliest(this.instances.map((jobs) => jobs.nextDue()));
  }
}

function earliest(times: readonly (number | null)[]): number | null {
  let first: number | null = null;
  for (const time of times) if (time !== null && (first === null || time < first)) first = time;
  return first;
}
