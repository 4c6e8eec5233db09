/**
 * Every run's deadline on one timer.
 *
 * A query or mutation must not hold the function lock forever (a promise that never settles),
 * so each run has a deadline (`functionTimeoutMs`). One timer per run cost a `setTimeout` and a
 * `clearTimeout` on every run, about 10 µs in workerd and a tenth of a `messages:list` run under
 * the test pool (issue 27), while runs almost never reach their deadline. Here the deadlines
 * share one timer, armed for the earliest: a run that starts while it is armed for an earlier
 * deadline costs a set insertion, and a run that ends costs a deletion.
 *
 * The timer is put away once nothing is watched and the owner is idle (its function lock has
 * nothing running or queued: `quiet()` says so): a pending timer keeps a Durable Object from
 * hibernating, so it must not outlive the work. While the lock is busy it stays armed between
 * runs, which is where the saving is: under load, runs follow each other with no timer at all.
 */
import { outsideAnyRun } from "./syscalls/convex-global.ts";

/** A timer as the runtime gives one (injected, so tests run it by hand). */
export interface DeadlineTimers {
  now(): number;
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

/**
 * The monotonic clock, not `Date.now`: that one is wrapped to tell the run it is read in that it read
 * the clock (which would cost a query its place in the query cache), it can jump, and under a test's
 * fake timers it is the real clock while `setTimeout` is not. The timer is set outside any run, so its
 * callback keeps no run's scope alive.
 */
const RUNTIME_TIMERS: DeadlineTimers = {
  now: () => performance.now(),
  set: (fn, ms) => outsideAnyRun(() => setTimeout(fn, ms)),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface Watched {
  at: number;
  expire(): void;
}

export class DeadlineWatch {
  private readonly watched = new Set<Watched>();
  private readonly timers: DeadlineTimers;
  /** Whether the owner has no work that will start a run soon (then an empty watch puts its timer away). */
  private readonly quiet: () => boolean;
  private timer: unknown = null;
  private armedAt = Infinity;
  /** Timers set (tests read it): far fewer than runs under load. */
  armings = 0;

  constructor(quiet: () => boolean = () => true, timers: DeadlineTimers = RUNTIME_TIMERS) {
    this.quiet = quiet;
    this.timers = timers;
  }

  /** Calls `expire` once `ms` have passed, unless the returned function is called first. */
  watch(ms: number, expire: () => void): () => void {
    const entry: Watched = { at: this.timers.now() + ms, expire };
    this.watched.add(entry);
    if (entry.at < this.armedAt) this.arm(entry.at);
    return () => {
      if (this.watched.delete(entry)) this.putAwayIfQuiet();
    };
  }

  /** The owner went idle: the timer goes if nothing is watched. */
  putAwayIfQuiet(): void {
    if (this.watched.size === 0 && this.timer !== null && this.quiet()) this.disarm();
  }

  private arm(at: number, now = this.timers.now()): void {
    this.disarm();
    this.armedAt = at;
    this.armings++;
    this.timer = this.timers.set(() => this.fire(at), Math.max(0, at - now));
  }

  private disarm(): void {
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = null;
    this.armedAt = Infinity;
  }

  /** The timer armed for `armedFor` went off: by the timer's own clock that moment has come, whatever `now()` says. */
  private fire(armedFor: number): void {
    this.timer = null;
    this.armedAt = Infinity;
    const now = Math.max(this.timers.now(), armedFor);
    const due = [...this.watched].filter((entry) => entry.at <= now);
    try {
      // Each is taken out before it is told, and only if still watched: one's expiry may end another.
      for (const entry of due) if (this.watched.delete(entry)) entry.expire();
    } finally {
      // Whatever an expiry did, the deadlines left are kept.
      let next = Infinity;
      for (const entry of this.watched) next = Math.min(next, entry.at);
      if (next !== Infinity && next < this.armedAt) this.arm(next, now);
    }
  }
}
