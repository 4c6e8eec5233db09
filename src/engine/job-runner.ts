/**
 * Runs one due job of the engine's own (a scheduled function, a cron
 * occurrence): the part `scheduled-jobs.ts` and `cron-jobs.ts` share. Inside
 * the function lock it checks the job is still due (another run may have
 * taken it while this one waited), then:
 * - a mutation runs with the job's success written in its own commit
 *   (exactly once), or its failure in a commit of its own;
 * - an action is claimed in a commit before it starts (at most once: a crash
 *   leaves it claimed) and is returned running, outside the lock;
 * - anything else fails the job.
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

/** Runs a due job; resolves to its action still running (await it), or null when nothing is left running. */
export async function runJob(engine: Engine, functionName: string, args: Value, outcomes: JobOutcomes): Promise<Promise<void> | null> {
  const action = await engine.exclusive(async () => {
    if (!outcomes.stillDue()) return null;
    const fn = engine.functionAt(functionName);
    if (!fn || fn.kind === "query") {
      engine.executeSystemWrite(outcomes.failed(`${functionName} is not a mutation or action of this app`));
      return null;
    }
    if (fn.kind === "action") {
      engine.executeSystemWrite(outcomes.claimed);
      return fn;
    }
    try {
      await engine.executeMutation(fn, args, undefined, outcomes.succeeded);
    } catch (error) {
      if (!(error instanceof FunctionError)) throw error;
      engine.executeSystemWrite(outcomes.failed(error.message));
    }
    return null;
  });
  if (!action) return null;
  return (async () => {
    let error: string | null = null;
    try {
      await engine.executeAction(action, args);
    } catch (thrown) {
      error = thrown instanceof Error ? thrown.message : String(thrown);
    }
    if (outcomes.actionEnded) {
      const write = outcomes.actionEnded(error);
      await engine.exclusive(async () => engine.executeSystemWrite(write));
    } else if (error !== null) console.error(`${functionName} failed: ${error}`);
  })();
}
