/** An in-memory `DocumentStore` for plain-Node tests and benchmarks. */
import type { Document } from "./values.ts";
import type { IndexKey, KeyInterval } from "./keys.ts";
import type { Commit, DocumentStore, IndexEntry, Order, StoredDocument } from "./store.ts";
import type { SearchBackend } from "./search.ts";
import type { VectorBackend } from "./vectors.ts";

/** Index of the first element >= key. */
function lowerBound(sorted: readonly IndexKey[], key: IndexKey): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class MemoryStore implements DocumentStore {
  readonly search: SearchBackend | undefined;
  readonly vectors: VectorBackend | undefined;

  constructor(search?: SearchBackend, vectors?: VectorBackend) {
    this.search = search;
    this.vectors = vectors;
  }

  private documents = new Map<string, StoredDocument>();
  /** Per index: sorted keys and key -> document id. */
  private indexes = new Map<string, { keys: IndexKey[]; ids: Map<IndexKey, string> }>();
  private ts = 0n;
  private creationTime = 0;
  private commits = 0;

  lastTimestamp(): bigint {
    return this.ts;
  }

  lastCreationTime(): number {
    return this.creationTime;
  }

  getDocument(id: string): StoredDocument | null {
    return this.documents.get(id) ?? null;
  }

  documentCount(): number {
    return this.documents.size;
  }

  commitCount(): number {
    return this.commits;
  }

  *scanIndex(index: string, interval: KeyInterval, order: Order, _expectedRows?: number): Iterable<IndexEntry> {
    const entries = this.indexes.get(index);
    if (!entries) return;
    const from = lowerBound(entries.keys, interval.start);
    const to = interval.end === null ? entries.keys.length : lowerBound(entries.keys, interval.end);
    // Snapshot the slice: callers may commit while a generator is suspended.
    const keys = entries.keys.slice(from, to);
    if (order === "desc") keys.reverse();
    for (const key of keys) {
      const { document, json, bytes } = this.documents.get(entries.ids.get(key)!)!;
      yield { key, document, json, bytes };
    }
  }

  advanceTimestamp(ts: bigint): void {
    if (ts > this.ts) this.ts = ts;
  }

  commit(commit: Commit, alsoInTransaction?: () => void): void {
    alsoInTransaction?.();
    this.search?.recordWrites(commit.searchWrites);
    this.vectors?.recordWrites(commit.vectorWrites);
    for (const write of commit.indexWrites) {
      if (write.oldKey === write.newKey) continue;
      let entries = this.indexes.get(write.index);
      if (!entries) this.indexes.set(write.index, (entries = { keys: [], ids: new Map() }));
      if (write.oldKey !== null) {
        entries.keys.splice(lowerBound(entries.keys, write.oldKey), 1);
        entries.ids.delete(write.oldKey);
      }
      if (write.newKey !== null) {
        entries.keys.splice(lowerBound(entries.keys, write.newKey), 0, write.newKey);
        entries.ids.set(write.newKey, write.id);
      }
    }
    for (const write of commit.documents) {
      if (write.document) this.documents.set(write.id, { table: write.table, document: write.document as Document, json: write.json!, bytes: write.bytes });
      else this.documents.delete(write.id);
    }
    if (commit.documents.length > 0) this.commits++;
    this.ts = commit.ts;
    this.creationTime = commit.lastCreationTime;
    this.search?.applyWrites(commit.searchWrites);
    this.vectors?.applyWrites(commit.vectorWrites);
  }
}
