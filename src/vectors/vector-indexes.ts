/**
 * The vector backend of a deployment. Each vector index loads lazily into a
 * `LoadedVectorIndex` (sign codes and filter values, no vectors), kept in an
 * LRU within a memory budget (a knob). A search:
 *
 * 1. takes the documents passing the filter (their filter values only);
 * 2. if they are few (`exactMaxCandidates`), scores them all exactly;
 * 3. else ranks them by the Hamming distance of their sign codes to the
 *    query's and keeps the best `rerankCandidates`;
 * 4. reads those candidates' float32 vectors from storage, in batches, and
 *    returns the best `limit` by exact cosine similarity.
 *
 * Scores are always exact; only which documents are scored is approximate,
 * and only past `exactMaxCandidates`. Writes never need an index in memory:
 * they change storage in the commit's transaction and a loaded index after.
 */
import type { Schema, VectorBackend, VectorHit, VectorIndexDefinition, VectorRequest, VectorWrite } from "../engine/index.ts";
import { ByteBudgetLru, FunctionError, type IndexKey } from "../engine/index.ts";
import { signCode, smallestDistances } from "./binary-codes.ts";
import { LoadedVectorIndex } from "./loaded-index.ts";
import type { VectorStorage } from "./storage.ts";

export interface VectorKnobs {
  /** Heap for loaded vector indexes; an index that alone would pass it is refused, not loaded. */
  vectorMemoryBudgetBytes: number;
  /** Searches over at most this many documents (after the filter) score every one exactly. */
  vectorExactMaxCandidates: number;
  /** Past that, how many candidates the sign codes pick for exact scoring. */
  vectorRerankCandidates: number;
}

export interface VectorCounters {
  searches: number;
  exactSearches: number;
  /** Vectors read from storage and scored, over all searches. */
  vectorsScored: number;
  loads: number;
  evictions: number;
}

export interface VectorIndexReport {
  index: string;
  dimensions: number;
  /** Documents indexed (stored rows). */
  vectors: number;
  loaded: boolean;
  memoryBytes: number;
  searches: number;
  /** Wall-clock ms of the last search, or null. */
  lastSearchAt: number | null;
}

export interface VectorIndexesOptions {
  schema: Schema;
  storage: VectorStorage;
  knobs: () => VectorKnobs;
  now?: () => number;
}

/** Rows scored per storage read: bounds what a search holds at once (128 x 6 KB for 1,536 dimensions). */
const SCORE_BATCH = 128;

export class VectorIndexes implements VectorBackend {
  readonly counters: VectorCounters = { searches: 0, exactSearches: 0, vectorsScored: 0, loads: 0, evictions: 0 };
  readonly storage: VectorStorage;
  private readonly schema: Schema;
  private readonly knobs: () => VectorKnobs;
  private readonly now: () => number;
  private readonly loaded: ByteBudgetLru<string, LoadedVectorIndex>;
  private readonly lastSearch = new Map<string, { at: number; count: number }>();
  /** What the commit in progress changed, applied to loaded indexes once it committed. */
  private pending: { index: string; row: number; code: Uint32Array | null; filterKeys: readonly IndexKey[] }[] = [];

  constructor(options: VectorIndexesOptions) {
    this.schema = options.schema;
    this.storage = options.storage;
    this.knobs = options.knobs;
    this.now = options.now ?? Date.now;
    this.loaded = new ByteBudgetLru({
      budgetBytes: () => this.knobs().vectorMemoryBudgetBytes,
      sizeOf: (index) => index.estimatedBytes,
      onEvict: () => this.counters.evictions++,
    });
  }

  get memoryBytes(): number {
    return this.loaded.bytes;
  }

  search(request: VectorRequest): VectorHit[] {
    const name = request.index.qualifiedName;
    const knobs = this.knobs();
    const data = this.index(request.index, knobs);
    this.counters.searches++;
    const last = this.lastSearch.get(name);
    this.lastSearch.set(name, { at: this.now(), count: (last?.count ?? 0) + 1 });

    let slots = data.candidates(request.anyOf);
    if (slots.length > Math.max(knobs.vectorExactMaxCandidates, request.limit)) {
      const distances = data.distances(slots, signCode(request.vector));
      const picked = smallestDistances(distances, slots.length, Math.max(knobs.vectorRerankCandidates, request.limit), request.index.dimensions);
      slots = picked.map((i) => slots[i]!);
    } else this.counters.exactSearches++;
    const rows = Array.from(slots, (slot) => data.row(slot));
    return this.score(name, request.vector, rows, request.limit);
  }

  /** The best `limit` of `rows` by exact cosine similarity with `query`, reading their vectors a batch at a time. */
  private score(index: string, query: Float32Array, rows: number[], limit: number): VectorHit[] {
    let queryNorm = 0;
    for (let i = 0; i < query.length; i++) queryNorm += query[i]! * query[i]!;
    queryNorm = Math.sqrt(queryNorm);
    const best: VectorHit[] = [];
    for (let start = 0; start < rows.length; start += SCORE_BATCH) {
      for (const { id, vector } of this.storage.vectors(index, rows.slice(start, start + SCORE_BATCH))) {
        let dot = 0;
        let norm = 0;
        for (let i = 0; i < vector.length; i++) {
          dot += vector[i]! * query[i]!;
          norm += vector[i]! * vector[i]!;
        }
        const score = norm === 0 || queryNorm === 0 ? 0 : dot / (Math.sqrt(norm) * queryNorm);
        this.counters.vectorsScored++;
        if (best.length === limit && score <= best[limit - 1]!.score) continue;
        let at = best.length;
        while (at > 0 && best[at - 1]!.score < score) at--;
        best.splice(at, 0, { id, score });
        if (best.length > limit) best.pop();
      }
    }
    return best;
  }

  recordWrites(writes: readonly VectorWrite[]): void {
    this.pending = [];
    for (const write of writes) {
      if (write.new) {
        const code = signCode(write.new.vector);
        this.pending.push({ index: write.index, row: this.storage.put(write.index, write.id, write.new, code), code, filterKeys: write.new.filterKeys });
      } else {
        const row = this.storage.delete(write.index, write.id);
        if (row !== null) this.pending.push({ index: write.index, row, code: null, filterKeys: [] });
      }
    }
  }

  applyWrites(): void {
    const pending = this.pending;
    this.pending = [];
    for (const change of pending) {
      const data = this.loaded.peek(change.index);
      if (!data) continue;
      if (change.code) data.put(change.row, change.code, change.filterKeys);
      else data.remove(change.row);
      this.loaded.resize(change.index);
    }
    // A loaded index that grew past the budget on its own goes; the next search says why it cannot load.
    this.loaded.fitBudget();
    if (this.loaded.bytes > this.knobs().vectorMemoryBudgetBytes) this.loaded.clear();
  }

  /** The loaded index, loading it if it fits the budget (evicting colder ones first); marks it used. */
  private index(definition: VectorIndexDefinition, knobs: VectorKnobs): LoadedVectorIndex {
    const name = definition.qualifiedName;
    const found = this.loaded.get(name);
    if (found) return found;
    const count = this.storage.count(name);
    const estimate = LoadedVectorIndex.bytesFor(count, definition.dimensions, definition.filterFields.length);
    if (estimate > knobs.vectorMemoryBudgetBytes) {
      throw new FunctionError(
        "LimitExceeded",
        `Vector index ${name} holds ${count} vectors, which need about ${Math.ceil(estimate / 1_048_576)} MB in memory, past vectorMemoryBudgetBytes (${Math.floor(knobs.vectorMemoryBudgetBytes / 1_048_576)} MB); raise the knob, or see docs/SHARDS.md for indexes larger than one object`,
      );
    }
    this.loaded.fitBudget(undefined, estimate);
    const data = LoadedVectorIndex.load(definition.dimensions, definition.filterFields.length, this.storage.rows(name), count);
    this.loaded.set(name, data);
    this.counters.loads++;
    return data;
  }

  /** Re-indexes `definition` from documents (a new or changed index): stored rows only, in the caller's transaction. */
  rebuild(definition: VectorIndexDefinition, views: Iterable<{ id: string; view: NonNullable<VectorWrite["new"]> }>): void {
    this.storage.dropIndex(definition.qualifiedName);
    this.loaded.delete(definition.qualifiedName);
    for (const { id, view } of views) this.storage.put(definition.qualifiedName, id, view, signCode(view.vector));
  }

  /** Forgets every loaded index (as an eviction of the object would). */
  unloadAll(): void {
    this.loaded.clear();
  }

  report(): VectorIndexReport[] {
    const out: VectorIndexReport[] = [];
    for (const table of this.schema.tables.values()) {
      for (const index of table.vectorIndexes.values()) {
        const data = this.loaded.peek(index.qualifiedName);
        const last = this.lastSearch.get(index.qualifiedName);
        out.push({
          index: index.qualifiedName,
          dimensions: index.dimensions,
          vectors: this.storage.count(index.qualifiedName),
          loaded: data !== undefined,
          memoryBytes: data?.estimatedBytes ?? 0,
          searches: last?.count ?? 0,
          lastSearchAt: last?.at ?? null,
        });
      }
    }
    return out;
  }
}
