/**
 * Stops a function that holds the thread without yielding (`while (true) {}`).
 *
 * Nothing can preempt synchronous JavaScript in workerd, and locally nothing stops it at all
 * (`cpu_ms` is not enforced by `wrangler dev` or the vitest pool): a spinning query would keep the
 * Durable Object's one thread, and every object and Worker sharing it, forever. So codegen puts a
 * guard call at the start of every loop body and function body of the app's code
 * (scripts/lib/instrument.ts). The call only counts down a counter shared through a global
 * (`convex/_generated/guard.js`); every `CHECK_EVERY` calls it runs `check()` here, which finds
 * the run it is in (an `AsyncLocalStorage`, as syscalls are routed) and throws once that run has
 * held the thread for more than `maxSyncRunMs`, or made more than `maxSyncRunSteps` guard calls,
 * since the thread last got to do something else.
 *
 * "Since the thread last did something else": a run's stretch starts at its first check in a
 * turn of the event loop, and a turn ends when a zero-delay timer fires (microtasks, such as an
 * `await` of something already settled, do not end it: they hold the thread just as well). The
 * timer is set only for a run that has gone on for a while (`ARM_AFTER`).
 * Both limits exist because the clock does not help everywhere: locally it advances during
 * synchronous code, but on Cloudflare `Date.now()` stands still until the next I/O, so there only
 * the count of guard calls ends a loop (and the platform's `cpu_ms`, which resets the object).
 *
 * Once a run trips, its every later check throws the same error, so user code that catches it
 * cannot go on: its next loop or call throws again (within `CHECK_EVERY` guard calls when other
 * runs' code ran in between). The engine answers the run with that error at once (`GuardedRun.bound`).
 *
 * Not covered: time spent in one native call (a huge `JSON.parse`, a catastrophic regular
 * expression) and code outside the app's `convex/` folder (packages), which carries no guard.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { DeadlineWatch } from "./deadline-watch.ts";
import { FunctionError } from "./errors.ts";
import { runScope, withScopeField } from "./run-scope.ts";
import { wallClock } from "./syscalls/convex-global.ts";

/** The limits a run is held to (the knobs of the same names). */
export interface SyncLimits {
  /** Milliseconds a run may hold the thread without yielding (by the clock). */
  maxSyncRunMs: number;
  /** Guard calls (loop iterations and function entries) a run may make without yielding: the limit where the clock stands still. */
  maxSyncRunSteps: number;
}

/**
 * Guard calls between two checks. A check reads the clock and the run's context, which costs
 * more than the count-down; one in 256 keeps that cost under a nanosecond per guard call while
 * a loop whose body takes a millisecond is still checked every quarter second.
 */
export const CHECK_EVERY = 256;

/**
 * A run is only watched for the end of its turn (a timer) once its stretch passes a tenth of its
 * limits; it is then measured afresh, so one that never yields is stopped by at most 1.1 times
 * its limits.
 */
export const ARM_AFTER = 10;

/** What the generated guard module and the engine share (found through `Symbol.for(GUARD_SYMBOL)` on the global). */
export interface GuardCell {
  /** Guard calls left before the next check; the module calls `check()` when it goes below zero. */
  left: number;
  check(): void;
}

/** The key the generated guard module (scripts/lib/guarded-copies.ts) finds the cell under: keep the two the same. */
export const GUARD_SYMBOL = "calmsync.syncGuard";

export interface SyncGuardClock {
  /** Milliseconds. */
  now(): number;
  /** Calls `fn` once the event loop has had a turn (a zero-delay timer). */
  afterTurn(fn: () => void): void;
}

/** One function run (or one module's top level) held to its limits; `name` is what its error says ran. */
export class GuardedRun {
  /** Set when the run tripped: every later check of the run throws it. */
  error: FunctionError | null = null;
  /** The turn its current stretch is in, when that stretch started, and the guard calls made in it. */
  turn = -1;
  start = 0;
  steps = 0;
  /** Whether its stretch is long enough to be measured against a timer (see `ARM_AFTER`). */
  armed = false;
  private stop: ((error: FunctionError) => void) | null = null;
  readonly name: string;
  readonly limits: SyncLimits;
  /** Told at once when the run trips (the engine cuts the run's syscalls off). */
  private readonly onTrip: ((error: FunctionError) => void) | undefined;

  constructor(name: string, limits: SyncLimits, onTrip?: (error: FunctionError) => void) {
    this.name = name;
    this.limits = limits;
    this.onTrip = onTrip;
  }

  /**
   * `work` (the run's promise), answered with the run's error as soon as it trips, even when user
   * code caught it and went on waiting, or returned or threw something else after it; and, given
   * a `deadline`, with its error once `deadline.ms` have passed (the run is cut off by `expired()`).
   * One promise settled by whichever comes first: no `Promise.race` per run (issue 27).
   */
  bound<T>(work: Promise<T>, deadline?: Deadline): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let unwatch: (() => void) | undefined;
      const settle = () => {
        this.stop = null;
        unwatch?.();
      };
      this.stop = (error) => {
        settle();
        reject(error);
      };
      work.then(
        (value) => {
          settle();
          if (this.error) reject(this.error);
          else resolve(value);
        },
        (error: unknown) => {
          settle();
          reject(this.error ?? error);
        },
      );
      // It may have tripped already: user code runs synchronously up to its first await before this is called.
      if (this.error) return this.stop(this.error);
      if (deadline)
        unwatch = deadline.watch.watch(deadline.ms, () => {
          settle();
          reject(deadline.expired());
        });
    });
  }

  tripped(error: FunctionError): void {
    this.error = error;
    this.onTrip?.(error);
    this.stop?.(error);
  }
}

/** How long a run may take in all, and what cuts it off then (it returns the error the run is answered with). */
export interface Deadline {
  readonly ms: number;
  expired(): Error;
  /** The timer it is kept by, shared with the owner's other runs (deadline-watch.ts). */
  readonly watch: DeadlineWatch;
}

/** Where the guard finds the run it is in: its own store (tests), or the field of the run's one scope (`syncGuard`). */
export interface GuardedRuns {
  getStore(): GuardedRun | undefined;
  run<T>(run: GuardedRun, fn: () => T): T;
}

export class SyncGuard {
  private readonly runs: GuardedRuns;
  private turn = 0;
  private turnEndPending = false;
  /** What `cell.left` was last set to: the guard calls since are `granted - cell.left`. */
  private granted = 0;

  private readonly cell: GuardCell;
  private readonly clock: SyncGuardClock;

  constructor(cell: GuardCell, clock: SyncGuardClock, runs: GuardedRuns = new AsyncLocalStorage<GuardedRun>()) {
    this.cell = cell;
    this.clock = clock;
    this.runs = runs;
    cell.check = () => this.check();
    this.grant(0);
  }

  /** Runs `fn` as `run`: the guard calls it makes, at any depth of awaits, count against `run`. */
  run<T>(run: GuardedRun, fn: () => T): T {
    this.starting();
    return this.runs.run(run, fn);
  }

  /** Called as a run starts where the caller enters its scope itself (`Engine.invoke`, with `runInScope`). */
  starting(): void {
    // The first guard call of the run checks, so its stretch starts at its own first step.
    this.grant(0);
  }

  private grant(calls: number): void {
    this.cell.left = calls;
    this.granted = calls;
  }

  private check(): void {
    const steps = this.granted - this.cell.left;
    const run = this.runs.getStore();
    // Code outside any run (a file's top level as the Worker starts): nothing to name or stop.
    if (!run) return this.grant(CHECK_EVERY);
    if (run.error) {
      this.grant(0);
      throw run.error;
    }
    const now = this.clock.now();
    const { maxSyncRunMs, maxSyncRunSteps } = run.limits;
    if (run.turn !== this.turn) {
      run.turn = this.turn;
      run.start = now;
      run.steps = 0;
      run.armed = false;
    } else {
      run.steps += steps;
    }
    if (!run.armed) {
      // Most runs end long before this, and then need no timer: one per run costs a fast query a tenth of its time in workerd.
      if (now - run.start <= maxSyncRunMs / ARM_AFTER && run.steps <= maxSyncRunSteps / ARM_AFTER) return this.grant(CHECK_EVERY);
      // Turns may have ended meanwhile unseen (no timer was set), so the stretch is measured afresh from here.
      run.armed = true;
      run.start = now;
      run.steps = 0;
      this.endTurnLater();
    }
    if (now - run.start > maxSyncRunMs) this.trip(run, `${run.name} ran for more than ${maxSyncRunMs} ms without yielding and was stopped (knob maxSyncRunMs)`);
    if (run.steps > maxSyncRunSteps)
      this.trip(
        run,
        `${run.name} made more than ${maxSyncRunSteps} loop iterations and function calls without yielding and was stopped (knob maxSyncRunSteps)`,
      );
    this.grant(CHECK_EVERY);
  }

  private trip(run: GuardedRun, message: string): never {
    const error = new FunctionError("LimitExceeded", message);
    this.grant(0);
    run.tripped(error);
    throw error;
  }

  private endTurnLater(): void {
    if (this.turnEndPending) return;
    this.turnEndPending = true;
    this.clock.afterTurn(() => {
      this.turnEndPending = false;
      this.turn++;
      // The next guard call checks, so whichever run it belongs to starts its new stretch there.
      this.grant(0);
    });
  }
}

/** The cell the generated guard module counts down (made by whichever of the two loads first). */
function globalCell(): GuardCell {
  const global = globalThis as unknown as Record<symbol, GuardCell | undefined>;
  return (global[Symbol.for(GUARD_SYMBOL)] ??= { left: 0, check() {} });
}

/** The isolate's guard: one thread, one guard. */
export const syncGuard = new SyncGuard(
  globalCell(),
  { now: wallClock, afterTurn: (fn) => void setTimeout(fn, 0) },
  { getStore: () => runScope.getStore()?.guarded as GuardedRun | undefined, run: (run, fn) => withScopeField("guarded", run, fn) },
);
