/**
 * The function lock: runs one task at a time (see engine.ts for why one at a
 * time), serving **owners** round-robin. Each owner (a socket session, the
 * refresh scheduler, one HTTP caller) has its own FIFO queue; the lock takes
 * one task from each owner with work in turn, so a session that pipelines
 * thousands of mutations delays everyone else by at most one of its tasks
 * per round, and its own tasks still run in the order it sent them.
 *
 * Each task runs in the context of whoever queued it, and the drain loop in
 * none: it runs every owner's tasks, and had they run in the context of
 * whoever started it, their console lines would land in that caller's log
 * lines and go to that caller.
 */
import { bindToCurrentRun, outsideAnyRun, wallClock } from "./syscalls/convex-global.ts";

type Task = () => Promise<void>;

/**
 * Who a task is queued for: an object (a session: its identity is the
 * object), or a string key, for callers that have no object living across
 * their calls (an HTTP caller, named by its identity or address), so that
 * separate calls from one caller share one turn.
 */
export type LockOwner = object | string;

/**
 * A lock that went idle longer ago than this starts its next task at once, without the gathering hop:
 * events that come that far apart are not a burst (a busy object's next event comes within about one
 * hop, 1.4 ms inside workerd), so the hop would only add its delay to a lone call's answer.
 */
export const GATHER_WITHIN_MS = 10;

export interface FairLockOptions {
  /** A macrotask hop that lets the runtime deliver the events waiting behind ours (see the class); none: never hop. */
  yieldToEvents?: (() => Promise<void>) | null;
  /** Tasks run between two hops under a backlog (the knob `functionsPerYield`). */
  tasksPerYield?: () => number;
  /** Told when the last queued task has run (the runs' deadline timer is put away then: deadline-watch.ts). */
  onIdle?: () => void;
  /** The clock, in ms (injected: tests move it); by default the unwrapped one, so asking it tells no run it read the clock. */
  now?: () => number;
}

export class FairLock {
  /** Owners with queued tasks, in service order (a Map keeps insertion order: the ring). */
  private readonly queues = new Map<LockOwner, Task[]>();
  private draining = false;
  private readonly yieldToEvents: (() => Promise<void>) | null;
  private readonly tasksPerYield: () => number;
  private readonly onIdle: (() => void) | null;
  private readonly now: () => number;
  private hops = 0;
  /** When the lock last went idle (never: it has not worked yet). */
  private idleSince = -Infinity;

  /**
   * `yieldToEvents`, when given, is a macrotask hop that lets the runtime
   * deliver the events waiting behind ours. The lock takes it before it
   * starts working, unless it has been idle for `GATHER_WITHIN_MS` (a lone
   * call), and once `tasksPerYield()` tasks have run since the last
   * hop and the owner of the last one still has tasks queued (a backlog: one
   * caller sending faster than it is served), so another socket's frame is
   * read and queued after at most that many tasks instead of waiting unread
   * until the whole backlog has run. Owners without a backlog (ordinary load:
   * one task each) pay no hop between tasks.
   *
   * The hop is a timer, and a timer costs about 1.4 ms inside workerd
   * (docs/BENCHMARKS.md, issue 27): one per task was the largest fixed cost
   * of a commit under a steady stream of writes, so tasks are run a few at a
   * time between hops. The start's hop stays under load: it also gathers the
   * commits that arrive meanwhile into one refresh slice (without it, 1,500
   * commits took 1,519 slices instead of 769 and the rate fell).
   */
  constructor({ yieldToEvents = null, tasksPerYield = () => 1, onIdle, now = wallClock }: FairLockOptions = {}) {
    this.yieldToEvents = yieldToEvents;
    this.tasksPerYield = tasksPerYield;
    this.onIdle = onIdle ?? null;
    this.now = now;
  }

  /** Hops taken to let waiting events in (see the constructor). */
  get yields(): number {
    return this.hops;
  }

  /** Nothing running, queued or about to start (a running task may be awaiting I/O, which `queued` does not count). */
  get idle(): boolean {
    return !this.draining;
  }

  /** Tasks waiting (not the running one). */
  get queued(): number {
    let n = 0;
    for (const queue of this.queues.values()) n += queue.length;
    return n;
  }

  /** Runs `fn` when it is `owner`'s turn and every earlier task of `owner` has finished. */
  run<T>(owner: LockOwner, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const task: Task = bindToCurrentRun(() => fn().then(resolve, reject));
      const queue = this.queues.get(owner);
      if (queue) queue.push(task);
      else this.queues.set(owner, [task]);
      if (!this.draining) {
        this.draining = true;
        // Start after a hop through the runtime's event queue when we may yield and the lock was
        // busy moments ago: frames that arrived together are all read (and queued per owner) before
        // the first one runs, so a burst from one socket becomes a backlog the ring can see. A lone
        // call after a quiet spell (or no hop at all) starts in a microtask.
        const gather = this.yieldToEvents !== null && this.now() - this.idleSince < GATHER_WITHIN_MS;
        outsideAnyRun(() => {
          if (gather) void this.hop().then(() => this.drain());
          else queueMicrotask(() => void this.drain());
        });
      }
    });
  }

  private hop(): Promise<void> {
    this.hops++;
    return this.yieldToEvents!();
  }

  private async drain(): Promise<void> {
    let sinceHop = 0;
    try {
      for (let next = this.queues.entries().next(); !next.done; next = this.queues.entries().next()) {
        const [owner, queue] = next.value;
        const task = queue.shift()!;
        // Move the owner to the back of the ring, or out of it when it has nothing left.
        this.queues.delete(owner);
        if (queue.length > 0) this.queues.set(owner, queue);
        await task();
        sinceHop++;
        if (this.yieldToEvents && queue.length > 0 && sinceHop >= this.tasksPerYield()) {
          sinceHop = 0;
          await this.hop();
        }
      }
    } finally {
      this.draining = false;
      this.idleSince = this.now();
      this.onIdle?.();
    }
  }
}
