/**
 * The waiting room: sessions accepted while the deployment is full (or the
 * admission bucket is empty), held in arrival order until there is room.
 * A client that is never dropped never reconnects, whatever its version:
 * a queue instead of a door. Runtime-agnostic; the deployment decides when
 * room frees (admission) and how long a session may wait.
 */
export class WaitingRoom<S> {
  /** Session -> when it started waiting (ms); a Map keeps arrival order. */
  private readonly queue = new Map<S, number>();
  /** The latest start time added (so an in-order add costs O(1)). */
  private newest = -Infinity;

  get size(): number {
    return this.queue.size;
  }

  /** Adds `session` at the back; sessions restored after a wake come back in their original order. */
  add(session: S, since: number): void {
    if (this.queue.has(session)) return;
    if (this.queue.size > 0 && since < this.newest) {
      // Restored out of order (socket order after a wake is not arrival order): re-sort.
      const entries = [...this.queue, [session, since] as [S, number]].sort((a, b) => a[1] - b[1]);
      this.queue.clear();
      for (const [s, t] of entries) this.queue.set(s, t);
      return;
    }
    this.newest = since;
    this.queue.set(session, since);
  }

  remove(session: S): boolean {
    return this.queue.delete(session);
  }

  /** How long the longest-waiting session has waited (0 when none waits). */
  oldestWaitMs(now: number): number {
    const first = this.queue.values().next();
    return first.done ? 0 : now - first.value;
  }

  /** When the longest-waiting session started waiting, or null. */
  oldestSince(): number | null {
    const first = this.queue.values().next();
    return first.done ? null : first.value;
  }

  /** Takes sessions from the front, in arrival order, while `canAdmit()` says yes. */
  admit(canAdmit: () => boolean): S[] {
    const admitted: S[] = [];
    for (const session of this.queue.keys()) {
      if (!canAdmit()) break;
      this.queue.delete(session);
      admitted.push(session);
    }
    return admitted;
  }

  /** Takes the sessions that have waited `maxWaitMs` or longer. */
  expire(now: number, maxWaitMs: number): S[] {
    const expired: S[] = [];
    for (const [session, since] of this.queue) {
      if (now - since < maxWaitMs) break;
      this.queue.delete(session);
      expired.push(session);
    }
    return expired;
  }
}
