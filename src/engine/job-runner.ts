/**
 * Runs one due job of the engine's own (a scheduled function, a cron
 * occurrence): the part `scheduled-jobs.ts` and `cron-jobs.ts` share. Inside
 * the function lock it checks the job is still due (another run may have
 * taken it while this one waited), then:
 * - a mutation runs with the job's success written in its own commit
 *   (exactly once), or its failure in a commit of its own;
 * - an action takes a slot of the jobs' pool, is claimed in a commit before
 *   it starts (at most once: a crash leaves it claimed) and is returned
 *   running, outside the lock; with no slot free the job is left due and
 *   untouched, for a later alarm;
 * - anything else fails the job.
 *
 * Running actions are never awaited by the alarm that started them (a slow
 * one would stop pings, admission and compaction); `RunningJobActions` keeps
 * them, and the object alive while they run.
 */
import type { Value } from "./values.ts";
import type { Transaction } from "./transaction.ts";
import { FunctionError } from "./errors.ts";
import type { Engine } from "./engine.ts";

type Write = (tx: Transaction) => void;

export interface JobOutcomes {
  /** Whether the job is still to run, read inside the lock. */
  stillDue(): boolean;
  /** The write that claims an action before it starts. */
  claimed: Write;
  succeeded: Write;
  failed(error: string): Write;
  /** What the job's record says once its action ended; without it, a failed action is only logged. */
  actionEnded?: (error: string | null) => Write;
}

/** What starting a due job came to: done (or no longer due), its action running, or no action slot free (still due). */
export type JobStart = { kind: "done" } | { kind: "running"; ended: Promise<void> } | { kind: "busy" };

const DONE: JobStart = { kind: "done" };

/** Runs a due job (see the top of this file): `functionName` of the component instance at `componentPath` (the app's by default). */
export async function runJob(engine: Engine, functionName: string, args: Value, outcomes: JobOutcomes, componentPath = ""): Promise<JobStart> {
  const started = await engine.exclusive(async () => {
    if (!outcomes.stillDue()) return DONE;
    const fn = engine.functionAt(functionName, componentPath);
    if (!fn || fn.kind === "query") {
      engine.executeSystemWrite(outcomes.failed(`${functionName} is not a mutation or action of ${componentPath ? `component ${componentPath}` : "this app"}`));
      return DONE;
    }
    if (fn.kind === "action") {
      const slot = engine.tryActionSlot("jobs");
      if (!slot) return { kind: "busy" } as const;
      engine.executeSystemWrite(outcomes.claimed);
      return { kind: "action", fn, slot } as const;
    }
    try {
      await engine.executeMutation(fn, args, undefined, outcomes.succeeded);
    } catch (error) {
      if (!(error instanceof FunctionError)) throw error;
      engine.executeSystemWrite(outcomes.failed(error.message));
    }
    return DONE;
  });
  if (started.kind !== "action") return started;
  const ended = (async () => {
    let error: string | null = null;
    try {
      await engine.executeAction(started.fn, args, { pool: "jobs", slot: started.slot });
    } catch (thrown) {
      error = thrown instanceof Error ? thrown.message : String(thrown);
    }
    if (outcomes.actionEnded) {
      const write = outcomes.actionEnded(error);
      await engine.exclusive(async () => engine.executeSystemWrite(write));
    } else if (error !== null) console.error(`${functionName} failed: ${error}`);
  })().catch((error: unknown) => console.error(`${functionName}: recording how it ended failed:`, error));
  return { kind: "running", ended };
}

/** Job actions still running, shared by the scheduler and the crons. */
export class RunningJobActions {
  private readonly running = new Set<Promise<void>>();
  private readonly keepAlive: (ended: Promise<void>) => void;

  /** `keepAlive` is told of each one (a Durable Object passes `ctx.waitUntil`, so it is not evicted while they run). */
  constructor(keepAlive: (ended: Promise<void>) => void = () => {}) {
    this.keepAlive = keepAlive;
  }

  add(ended: Promise<void>): void {
    this.running.add(ended);
    void ended.finally(() => this.running.delete(ended));
    this.keepAlive(ended);
  }

  get count(): number {
    return this.running.size;
  }

  /** Resolves once every action running now, and any they led to, has ended (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running);
  }
}

/**
 * How soon a due job that found every job slot taken is tried again: soon
 * enough that a freed slot is not left idle long, rare enough that a full
 * pool costs an alarm a second, not a loop.
 */
export const BUSY_RETRY_MS = 1_000;
