/**
 * How vector indexes persist: one row per indexed document and index, holding
 * its float32 vector (read only to score candidates), its sign code and its
 * filter values (read when the index loads). Rows change in the commit's
 * transaction. Each row has a number the store gives it, stable while the
 * document stays indexed, so the loaded index never holds document ids.
 */
import type { IndexKey, VectorDocument } from "../engine/index.ts";

export interface VectorRow {
  readonly row: number;
  readonly filterKeys: readonly IndexKey[];
  readonly code: Uint32Array;
}

export interface ScoredVector {
  readonly row: number;
  readonly id: string;
  readonly vector: Float32Array;
}

export interface VectorStorage {
  /** Stores or replaces `id`'s row in `index`; returns its row number. */
  put(index: string, id: string, document: VectorDocument, code: Uint32Array): number;
  /** Removes `id`'s row; returns the row number it had, or null if it had none. */
  delete(index: string, id: string): number | null;
  /** Every row of `index` without its vector (to load the index). */
  rows(index: string): Iterable<VectorRow>;
  /** The vectors of `rows`, in any order, in batches the caller scores and drops. */
  vectors(index: string, rows: readonly number[]): Iterable<ScoredVector>;
  count(index: string): number;
  /** Forgets everything stored for `index` (a vector index removed or redefined in the schema). */
  dropIndex(index: string): void;
}

/** `VectorStorage` in memory, for plain-Node tests and benchmarks. */
export class MemoryVectorStorage implements VectorStorage {
  private nextRow = 1;
  private readonly byIndex = new Map<string, Map<string, ScoredVector & VectorRow>>();
  private readonly byRow = new Map<number, ScoredVector & VectorRow>();

  private index(index: string) {
    let rows = this.byIndex.get(index);
    if (!rows) this.byIndex.set(index, (rows = new Map()));
    return rows;
  }

  put(index: string, id: string, document: VectorDocument, code: Uint32Array): number {
    const rows = this.index(index);
    const row = rows.get(id)?.row ?? this.nextRow++;
    const entry = { row, id, vector: document.vector.slice(), filterKeys: document.filterKeys, code: code.slice() };
    rows.set(id, entry);
    this.byRow.set(row, entry);
    return row;
  }

  delete(index: string, id: string): number | null {
    const rows = this.index(index);
    const found = rows.get(id);
    if (!found) return null;
    rows.delete(id);
    this.byRow.delete(found.row);
    return found.row;
  }

  rows(index: string): Iterable<VectorRow> {
    return [...this.index(index).values()];
  }

  vectors(index: string, rows: readonly number[]): Iterable<ScoredVector> {
    const own = this.index(index);
    return rows.flatMap((row) => {
      const entry = this.byRow.get(row);
      return entry && own.get(entry.id) === entry ? [entry] : [];
    });
  }

  count(index: string): number {
    return this.index(index).size;
  }

  dropIndex(index: string): void {
    for (const entry of this.index(index).values()) this.byRow.delete(entry.row);
    this.byIndex.delete(index);
  }
}
