/** An entry may take at most 1/MAX_ENTRY_SHARE of the budget. */
const MAX_ENTRY_SHARE = 4;

/**
 * Keeps the encoded latest result of query instances in memory, least
 * recently used first out, within a byte budget (a knob): results let a new
 * subscriber to a shared query, and every session of a fan-out, be served
 * without re-running it. Dropping one is always safe: a session that still
 * needs it triggers a re-run at the latest timestamp. No entry may take more
 * than a quarter of the budget (`MAX_ENTRY_SHARE`): one huge result must not
 * evict everything else, nor push the cache past its budget on its own.
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

  /**
   * Records `item`'s new result size and makes it the most recent; evicts
   * others past the budget. Returns false, holding nothing, when the entry is
   * larger than its share of the budget.
   */
  store(item: T, bytes: number): boolean {
    this.remove(item);
    const budget = this.budgetBytes();
    if (bytes > budget / MAX_ENTRY_SHARE) return false;
    this.entries.set(item, bytes);
    this.total += bytes;
    for (const [other, size] of this.entries) {
      if (this.total <= budget) break;
      if (other === item) continue;
      this.entries.delete(other);
      this.total -= size;
      this.evictions++;
      this.drop(other);
    }
    return true;
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
