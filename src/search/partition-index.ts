/**
 * One partition of one search index (e.g. one chat's messages) as a MiniSearch
 * instance. Updates are `remove(old)` + `add(new)` with auto-vacuum off:
 * `discard` + vacuum would change scores until vacuumed (and vacuum batches on
 * timers that keep a Durable Object awake). Results come in a canonical order
 * (score rounded to 9 significant digits, then newest, then id) so the same
 * data gives the same order after a reload, a rebuild or a compaction.
 */
import MiniSearch, { type SearchResult } from "minisearch";
import { tokenize, type SearchDocument, type SearchHit, type IndexKey, encodeKey } from "../engine/index.ts";

/** Bump when the analyzer or the stored layout changes: snapshots with another version are rebuilt. */
export const SNAPSHOT_FORMAT = "calmsync-search-v1";

/** Rough heap cost, from measurements of MiniSearch (about 150 B per posting, 10x the JSON snapshot). */
const BYTES_PER_POSTING = 150;
const BYTES_PER_DOCUMENT = 100;
const HEAP_PER_SNAPSHOT_BYTE = 10;

interface IndexedDoc {
  id: string;
  text: string;
  /** `_creationTime`, stored for the canonical tie-break. */
  c: number;
  [filter: `f${number}`]: IndexKey;
}

function options(filterCount: number) {
  const storeFields = ["c"];
  for (let i = 1; i < filterCount; i++) storeFields.push(`f${i}`);
  return {
    fields: ["text"],
    storeFields,
    tokenize: (text: string) => tokenize(text),
    // tokenize already lowercases and drops over-long terms.
    processTerm: (term: string) => term,
    autoVacuum: false as const,
  };
}

function toIndexed(id: string, doc: SearchDocument): IndexedDoc {
  const indexed: IndexedDoc = { id, text: doc.text, c: doc.creationTime };
  for (let i = 1; i < doc.filters.length; i++) indexed[`f${i}`] = encodeKey([doc.filters[i]]);
  return indexed;
}

export function canonicalScore(score: number): number {
  return Number(score.toPrecision(9));
}

export class PartitionIndex {
  private readonly mini: MiniSearch<IndexedDoc>;
  private postings = 0;
  private baseBytes = 0;

  private constructor(mini: MiniSearch<IndexedDoc>) {
    this.mini = mini;
  }

  static empty(filterCount: number): PartitionIndex {
    return new PartitionIndex(new MiniSearch<IndexedDoc>(options(filterCount)));
  }

  static fromSnapshot(json: string, filterCount: number): PartitionIndex {
    const index = new PartitionIndex(MiniSearch.loadJSON<IndexedDoc>(json, options(filterCount)));
    index.baseBytes = json.length * HEAP_PER_SNAPSHOT_BYTE;
    return index;
  }

  get documentCount(): number {
    return this.mini.documentCount;
  }

  /** Estimated heap held by this partition, for the memory budget. */
  get estimatedBytes(): number {
    return Math.max(0, this.baseBytes + this.postings * BYTES_PER_POSTING + this.mini.documentCount * BYTES_PER_DOCUMENT);
  }

  add(id: string, doc: SearchDocument): void {
    this.mini.add(toIndexed(id, doc));
    this.postings += new Set(tokenize(doc.text)).size;
  }

  /** `doc` must be exactly the version that was added. */
  remove(id: string, doc: SearchDocument): void {
    this.mini.remove(toIndexed(id, doc));
    this.postings -= new Set(tokenize(doc.text)).size;
  }

  /**
   * Hits in canonical order, at most `limit`; `truncated` when more matched.
   * `filters` are (position, encoded value) pairs beyond the partition.
   */
  search(terms: readonly string[], prefix: string | null, filters: readonly [number, IndexKey][], limit: number): { hits: SearchHit[]; truncated: boolean } {
    const queryTerms = prefix === null ? [...terms] : [...terms, prefix];
    if (queryTerms.length === 0) return this.everything(filters, limit);
    const results = this.mini.search(queryTerms.join(" "), {
      combineWith: "OR",
      prefix: (_term, i, all) => prefix !== null && i === all.length - 1,
      fuzzy: false,
      boostDocument: filters.length === 0 ? undefined : (_id, _term, stored) => (this.passes(stored as Record<string, unknown>, filters) ? 1 : 0),
    });
    return this.canonical(results, limit);
  }

  private passes(stored: Record<string, unknown>, filters: readonly [number, IndexKey][]): boolean {
    for (const [position, key] of filters) if (stored[`f${position}`] !== key) return false;
    return true;
  }

  /** A search with no terms: every document in the partition (that passes the filters), newest first. */
  private everything(filters: readonly [number, IndexKey][], limit: number): { hits: SearchHit[]; truncated: boolean } {
    const results = this.mini.search(MiniSearch.wildcard, {
      boostDocument: (_id, _term, stored) => (filters.length === 0 || this.passes(stored as Record<string, unknown>, filters) ? 1 : 0),
    });
    return this.canonical(
      results.filter((r) => r.score > 0),
      limit,
    );
  }

  private canonical(results: SearchResult[], limit: number): { hits: SearchHit[]; truncated: boolean } {
    const ranked = results.map((r) => ({ id: r.id as string, score: canonicalScore(r.score), c: r.c as number }));
    ranked.sort((a, b) => b.score - a.score || b.c - a.c || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { hits: ranked.slice(0, limit).map(({ id, score }) => ({ id, score })), truncated: ranked.length > limit };
  }

  serialize(): string {
    return JSON.stringify(this.mini);
  }
}
