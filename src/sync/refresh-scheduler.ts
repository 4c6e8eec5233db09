/**
 * The refresh scheduler: sessions whose queries a commit (or their own query
 * set change) made stale wait here for their turn.
 *
 * - Coalescing: a session is queued at most once; its turn serves its latest
 *   state (a query dirtied twice before it runs, runs once, at the newest
 *   timestamp), and identical (function, args) share one execution.
 * - Bounded: at most `refreshQueueLimit` sessions are queued. Past that, a
 *   session is only marked stale (kept in `overflow`, no per-commit entries,
 *   just the fact that it needs a turn) and moves into the queue as room
 *   frees up. Nothing is dropped and no socket is closed: overload costs
 *   freshness (fewer intermediate versions), not availability.
 * - Sliced: a slice serves sessions until it has run `refreshSliceQueryRuns`
 *   queries or sent `refreshSliceTransitions` transitions, then yields to the
 *   event loop so pings, mutations and new sessions are served in between; a
 *   mass invalidation is therefore spread over many slices. (The budget is in
 *   work, not milliseconds: on Workers the clock does not advance during
 *   synchronous work, so CPU time cannot be measured from inside.)
 * - Background sessions (pages hidden, as calmsync's client transport says)
 *   yield to the others under pressure: a session found others queued ahead
 *   of it within the last `backgroundRefreshMs`. Then a background session
 *   waits aside and gets a turn at most once per `backgroundRefreshMs`
 *   (always with its latest state); without pressure it is served at once.
 *   (Pressure is remembered for an interval because a stream of commits
 *   empties the queue between bursts; "empty right now" would let every
 *   background session through each time.) Clients without the transport
 *   are foreground.
 */
import type { SyncSession } from "./session.ts";

export interface RefreshKnobs {
  refreshQueueLimit: number;
  backgroundRefreshMs: number;
  refreshSliceQueryRuns: number;
  refreshSliceTransitions: number;
}

/** What one session's turn did. `deferMs` set: it could not run now (budget), retry then. */
export interface TurnResult {
  runs: number;
  sent: boolean;
  deferMs?: number;
}

export interface RefreshMetrics {
  queueDepth: number;
  queuePeak: number;
  overflow: number;
  overflowPeak: number;
  slices: number;
  /** Wall time inside slices, as the runtime's clock reports it. */
  sliceMs: number;
}

export interface RefreshSchedulerOptions {
  knobs: () => RefreshKnobs;
  /** Runs a slice exclusively (the engine's lock). */
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>;
  turn: (session: SyncSession) => Promise<TurnResult>;
  onError: (session: SyncSession, error: unknown) => void;
  now: () => number;
  /** Lets other events run between slices; a timer, so it keeps the object awake only while work remains. */
  pause: (ms: number) => Promise<void>;
  /** Called when the queue has drained. */
  onIdle?: () => void;
}

export class RefreshScheduler {
  private readonly queue = new Set<SyncSession>();
  private readonly overflow = new Set<SyncSession>();
  /** Background sessions put aside under pressure until their interval has passed or nothing else waits. */
  private readonly background = new Set<SyncSession>();
  /** The last time a session was scheduled behind others (see the module doc). */
  private lastPressureAt = -Infinity;
  /** Ends the loop's wait for a background session's interval when other work arrives. */
  private wakeUp: (() => void) | null = null;
  /** When each waiting session became stale, for the oldest-wait metric. */
  private readonly since = new Map<SyncSession, number>();
  private running = false;
  /** The session whose turn is running, and whether it was scheduled again meanwhile. */
  private serving: SyncSession | null = null;
  private servingAgain = false;
  private readonly options: RefreshSchedulerOptions;
  readonly metrics: RefreshMetrics = { queueDepth: 0, queuePeak: 0, overflow: 0, overflowPeak: 0, slices: 0, sliceMs: 0 };

  constructor(options: RefreshSchedulerOptions) {
    this.options = options;
  }

  /** Marks a session as needing a turn. Idempotent. */
  schedule(session: SyncSession): void {
    if (session === this.serving) {
      // Its turn may already have passed what changed: keep it queued after the turn.
      this.servingAgain = true;
      return;
    }
    if (session.closed || this.queue.has(session) || this.overflow.has(session) || this.background.has(session)) return;
    const now = this.options.now();
    this.since.set(session, now);
    const { refreshQueueLimit, backgroundRefreshMs } = this.options.knobs();
    if (this.queue.size > 0) this.lastPressureAt = now;
    if (session.background && this.underPressure(now) && now - session.lastRefreshAt < backgroundRefreshMs) this.background.add(session);
    else {
      if (this.queue.size < refreshQueueLimit) this.queue.add(session);
      else this.overflow.add(session);
      this.wakeUp?.();
    }
    this.updateDepth();
    if (!this.running) this.run().catch((error) => this.options.onError(session, error));
  }

  forget(session: SyncSession): void {
    this.queue.delete(session);
    this.overflow.delete(session);
    this.background.delete(session);
    this.since.delete(session);
    this.updateDepth();
  }

  /** How long the longest-waiting stale session has waited, in ms. */
  oldestWaitMs(): number {
    const first = this.since.values().next();
    return first.done ? 0 : this.options.now() - first.value;
  }

  get waiting(): number {
    return this.queue.size + this.overflow.size + this.background.size;
  }

  /** No turn running and none waiting (a running turn may be awaiting I/O, such as a result's digest). */
  get settled(): boolean {
    return !this.running && this.waiting === 0;
  }

  private updateDepth(): void {
    this.metrics.queueDepth = this.queue.size;
    this.metrics.overflow = this.overflow.size;
    if (this.queue.size > this.metrics.queuePeak) this.metrics.queuePeak = this.queue.size;
    if (this.overflow.size > this.metrics.overflowPeak) this.metrics.overflowPeak = this.overflow.size;
  }

  /**
   * Moves overflowed sessions into the queue while there is room, oldest
   * first; then background sessions whose interval has passed, or all of them
   * when nothing else is queued (no pressure).
   */
  private refill(): void {
    const { refreshQueueLimit: limit, backgroundRefreshMs } = this.options.knobs();
    for (const session of this.overflow) {
      if (this.queue.size >= limit) break;
      this.overflow.delete(session);
      this.queue.add(session);
    }
    const now = this.options.now();
    const pressure = this.underPressure(now);
    for (const session of this.background) {
      if (this.queue.size >= limit) break;
      if (pressure && now - session.lastRefreshAt < backgroundRefreshMs) continue;
      this.background.delete(session);
      this.queue.add(session);
    }
    this.updateDepth();
  }

  private underPressure(now: number): boolean {
    return now - this.lastPressureAt < this.options.knobs().backgroundRefreshMs;
  }

  /** With only background sessions waiting aside: how long until the first is due (else 0). */
  private idleUntilBackgroundDue(): number {
    if (this.queue.size > 0 || this.overflow.size > 0 || this.background.size === 0) return 0;
    const now = this.options.now();
    const { backgroundRefreshMs } = this.options.knobs();
    let soonest = Infinity;
    for (const session of this.background) soonest = Math.min(soonest, session.lastRefreshAt + backgroundRefreshMs - now);
    return Math.max(1, soonest);
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.waiting > 0) {
        const deferMs = await this.options.exclusive(() => this.slice());
        this.refill();
        if (this.waiting === 0) break;
        const idleMs = this.idleUntilBackgroundDue();
        if (idleMs === 0) await this.options.pause(deferMs);
        else {
          // Only background sessions wait, for their interval: any other session scheduled meanwhile ends the wait.
          await Promise.race([this.options.pause(idleMs), new Promise<void>((resolve) => (this.wakeUp = resolve))]);
          this.wakeUp = null;
        }
      }
    } finally {
      this.running = false;
      this.options.onIdle?.();
    }
  }

  /** Serves queued sessions within one slice's budget; returns how long to pause before the next. */
  private async slice(): Promise<number> {
    const started = this.options.now();
    const { refreshSliceQueryRuns, refreshSliceTransitions } = this.options.knobs();
    let runs = 0;
    let sent = 0;
    let deferMs = 0;
    this.metrics.slices++;
    try {
      for (const session of this.queue) {
        if (runs >= refreshSliceQueryRuns || sent >= refreshSliceTransitions) break;
        if (session.closed) {
          this.forget(session);
          continue;
        }
        let result: TurnResult;
        this.serving = session;
        this.servingAgain = false;
        try {
          result = await this.options.turn(session);
        } catch (error) {
          this.forget(session);
          this.options.onError(session, error);
          continue;
        } finally {
          this.serving = null;
        }
        if (result.deferMs !== undefined) {
          // Out of budget for new subscriptions: leave it (and those behind it) queued.
          deferMs = result.deferMs;
          break;
        }
        this.queue.delete(session);
        this.since.delete(session);
        runs += result.runs;
        if (result.sent) {
          sent++;
          session.lastRefreshAt = this.options.now();
        }
        if (this.servingAgain) this.schedule(session);
      }
    } finally {
      this.updateDepth();
      this.metrics.sliceMs += this.options.now() - started;
    }
    return deferMs;
  }
}
