/**
 * A query's read-set: per index, the key intervals it consumed. A commit that
 * writes a key inside one of them may change the query's result; any other
 * commit cannot.
 */
import { normalizeIntervals, type KeyInterval } from "./keys.ts";
import { FunctionError } from "./errors.ts";
import type { SearchRead } from "./search.ts";

/** Index qualified name -> sorted, disjoint intervals. */
export type ReadSet = ReadonlyMap<string, readonly KeyInterval[]>;

export class ReadSetRecorder {
  private intervals = new Map<string, KeyInterval[]>();
  readonly searchReads: SearchRead[] = [];
  private count = 0;

  private readonly maxIntervals: number;

  constructor(maxIntervals: number) {
    this.maxIntervals = maxIntervals;
  }

  record(index: string, interval: KeyInterval): void {
    if (++this.count > this.maxIntervals) {
      throw new FunctionError(
        "LimitExceeded",
        `Too many reads: more than ${this.maxIntervals} index ranges (knob maxReadIntervals). Use an index that narrows the query.`,
      );
    }
    let list = this.intervals.get(index);
    if (!list) this.intervals.set(index, (list = []));
    list.push(interval);
  }

  recordSearch(read: SearchRead): void {
    this.searchReads.push(read);
  }

  finish(): ReadSet {
    const out = new Map<string, KeyInterval[]>();
    for (const [index, list] of this.intervals) {
      const normalized = normalizeIntervals(list);
      if (normalized.length > 0) out.set(index, normalized);
    }
    return out;
  }
}
