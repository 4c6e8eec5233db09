/**
 * The function lock: runs one task at a time (see engine.ts for why one at a
 * time), serving **owners** round-robin. Each owner (a socket session, the
 * refresh scheduler, one HTTP request) has its own FIFO queue; the lock takes
 * one task from each owner with work in turn, so a session that pipelines
 * thousands of mutations delays everyone else by at most one of its tasks
 * per round, and its own tasks still run in the order it sent them.
 */
type Task = () => Promise<void>;

export class FairLock {
  /** Owners with queued tasks, in service order (a Map keeps insertion order: the ring). */
  private readonly queues = new Map<object, Task[]>();
  private draining = false;
  private readonly yieldToEvents: (() => Promise<void>) | null;

  /**
   * `yieldToEvents`, when given, runs between two tasks while more are queued:
   * a macrotask hop that lets the runtime deliver the events waiting behind
   * the running ones (another socket's frame must not wait for a whole flood
   * to be executed before it is even seen).
   */
  constructor(yieldToEvents: (() => Promise<void>) | null = null) {
    this.yieldToEvents = yieldToEvents;
  }

  /** Tasks waiting (not the running one). */
  get queued(): number {
    let n = 0;
    for (const queue of this.queues.values()) n += queue.length;
    return n;
  }

  /** Runs `fn` when it is `owner`'s turn and every earlier task of `owner` has finished. */
  run<T>(owner: object, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const task: Task = () => fn().then(resolve, reject);
      const queue = this.queues.get(owner);
      if (queue) queue.push(task);
      else this.queues.set(owner, [task]);
      if (!this.draining) {
        this.draining = true;
        // Start in a microtask, as a promise chain would: callers finish their synchronous part first.
        queueMicrotask(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      for (let next = this.queues.entries().next(); !next.done; next = this.queues.entries().next()) {
        const [owner, queue] = next.value;
        const task = queue.shift()!;
        // Move the owner to the back of the ring, or out of it when it has nothing left.
        this.queues.delete(owner);
        if (queue.length > 0) this.queues.set(owner, queue);
        await task();
        if (this.yieldToEvents && this.queues.size > 0) await this.yieldToEvents();
      }
    } finally {
      this.draining = false;
    }
  }
}
