/**
 * Entries kept within a byte budget, least recently used out first: the
 * shared results of query instances, the loaded search partitions. Sizes are
 * taken when an entry is set and again when its owner says it changed
 * (`resize`), so the total is kept, never recomputed by a walk. The budget is
 * read on every check (a knob). With `maxEntryShare`, an entry larger than
 * that fraction of the budget is refused: one huge value must not evict
 * everything else, nor push the total past the budget on its own.
 */
export interface ByteBudgetLruOptions<K, V> {
  budgetBytes: () => number;
  /** An entry's size in bytes (its key given for owners that count it too). */
  sizeOf: (value: V, key: K) => number;
  /** Told of each entry evicted to make room (not of `delete`). */
  onEvict?: (key: K, value: V) => void;
  /** Largest entry as a fraction of the budget: 4 means a quarter. Without it any entry is taken (and the coldest others go). */
  maxEntryShare?: number;
  /** Entries still in use, never evicted while it says so (they count toward the total; a later `fitBudget` evicts them once free). */
  pinned?: (key: K) => boolean;
}

export class ByteBudgetLru<K, V> {
  /** Insertion order is recency: the first entry is the coldest. */
  private readonly entries = new Map<K, { value: V; bytes: number }>();
  private total = 0;
  private readonly options: ByteBudgetLruOptions<K, V>;
  evictions = 0;

  constructor(options: ByteBudgetLruOptions<K, V>) {
    this.options = options;
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.total;
  }

  /** The value, marked as just used. */
  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** The value, without marking it used. */
  peek(key: K): V | undefined {
    return this.entries.get(key)?.value;
  }

  /**
   * Stores `value` as the most recent entry and evicts colder ones past the
   * budget (never this one). Returns false, storing nothing, when the value is
   * over its share of the budget.
   */
  set(key: K, value: V): boolean {
    this.delete(key);
    const bytes = this.options.sizeOf(value, key);
    const share = this.options.maxEntryShare;
    if (share !== undefined && bytes > this.options.budgetBytes() / share) return false;
    this.entries.set(key, { value, bytes });
    this.total += bytes;
    this.fitBudget(key);
    return true;
  }

  /** Takes a new size of `key`'s value after its owner changed it (it stays where it is in the order). */
  resize(key: K): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    const bytes = this.options.sizeOf(entry.value, key);
    this.total += bytes - entry.bytes;
    entry.bytes = bytes;
  }

  delete(key: K): boolean {
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.entries.delete(key);
    this.total -= entry.bytes;
    return true;
  }

  clear(): void {
    this.entries.clear();
    this.total = 0;
  }

  /**
   * Evicts the coldest entries until the total fits the budget, never `keep`
   * (the one in use). `reserveBytes` makes room for an entry about to be built,
   * so building it never takes the total past the budget.
   */
  fitBudget(keep?: K, reserveBytes = 0): void {
    const budget = this.options.budgetBytes() - reserveBytes;
    for (const [key, entry] of this.entries) {
      if (this.total <= budget) break;
      if (key === keep || this.options.pinned?.(key)) continue;
      this.entries.delete(key);
      this.total -= entry.bytes;
      this.evictions++;
      this.options.onEvict?.(key, entry.value);
    }
  }
}
