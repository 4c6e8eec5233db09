/**
 * Keeps the encoded latest result of query instances in memory, least
 * recently used first out, within a byte budget (a knob): results let a new
 * subscriber to a shared query, and every session of a fan-out, be served
 * without re-running it. Dropping one is always safe: a session that still
 * needs it triggers a re-run at the latest timestamp.
 */
export class ResultCache<T> {
  private readonly entries = new Map<T, number>();
  private total = 0;
  private readonly budgetBytes: () => number;
  private readonly drop: (item: T) => void;
  evictions = 0;

  constructor(budgetBytes: () => number, drop: (item: T) => void) {
    this.budgetBytes = budgetBytes;
    this.drop = drop;
  }

  get bytes(): number {
    return this.total;
  }

  /** Records `item`'s new result size and makes it the most recent; evicts others past the budget. */
  store(item: T, bytes: number): void {
    this.remove(item);
    this.entries.set(item, bytes);
    this.total += bytes;
    const budget = this.budgetBytes();
    for (const [other, size] of this.entries) {
      if (this.total <= budget) break;
      if (other === item) continue;
      this.entries.delete(other);
      this.total -= size;
      this.evictions++;
      this.drop(other);
    }
  }

  /** Marks `item` as just used. */
  touch(item: T): void {
    const size = this.entries.get(item);
    if (size === undefined) return;
    this.entries.delete(item);
    this.entries.set(item, size);
  }

  remove(item: T): void {
    const size = this.entries.get(item);
    if (size === undefined) return;
    this.entries.delete(item);
    this.total -= size;
  }
}
