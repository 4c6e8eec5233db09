/**
 * The storage contract the engine runs on. Two implementations share it: the
 * in-memory store below (plain Node tests and benchmarks) and the SQLite store
 * of the Durable Object (`src/deployment/sqlite-store.ts`). Both are synchronous:
 * a function's reads never yield to other events.
 */
import type { Document } from "./values.ts";
import { jsonToConvex } from "./values.ts";
import { bytesToKey, type IndexKey, type KeyInterval } from "./keys.ts";
import type { SearchBackend, SearchWrite } from "./search.ts";
import type { VectorBackend, VectorWrite } from "./vectors.ts";

export type Order = "asc" | "desc";

export interface StoredDocument {
  readonly table: string;
  readonly document: Document;
  /** The document as stored, in Convex JSON: what a function reads is handed on as this text. */
  readonly json: string;
  /** Its stored Convex JSON's size in UTF-8 bytes (what a read costs against `maxBytesRead`). */
  readonly bytes: number;
}

export interface IndexEntry {
  readonly key: IndexKey;
  readonly document: Document;
  readonly json: string;
  readonly bytes: number;
}

/**
 * A document read from stored JSON. It is parsed only when something looks inside it (a filter,
 * a validator): a query that returns what it read hands the stored text on untouched. A class
 * (getters on the prototype) rather than an object literal with getters: that made two closures
 * and an accessor object per row, a tenth of a `messages:list` run's own time (issue 27).
 */
class StoredJson {
  readonly json: string;
  readonly bytes: number;
  #document: Document | undefined;

  constructor(json: string, bytes: number) {
    this.json = json;
    this.bytes = bytes;
  }

  get document(): Document {
    return (this.#document ??= jsonToConvex(JSON.parse(this.json)) as Document);
  }
}

/** An index entry read from storage: its key decoded only when asked (the last one read bounds the read-set). */
class StoredEntry extends StoredJson implements IndexEntry {
  readonly #keyBytes: ArrayBuffer;
  #key: IndexKey | undefined;

  constructor(keyBytes: ArrayBuffer, json: string, bytes: number) {
    super(json, bytes);
    this.#keyBytes = keyBytes;
  }

  get key(): IndexKey {
    return (this.#key ??= bytesToKey(new Uint8Array(this.#keyBytes)));
  }
}

/** A point read, which also names the document's table. */
class StoredRow extends StoredJson implements StoredDocument {
  readonly table: string;

  constructor(table: string, json: string, bytes: number) {
    super(json, bytes);
    this.table = table;
  }
}

export function entryFromJson(keyBytes: ArrayBuffer, json: string, bytes: number): IndexEntry {
  return new StoredEntry(keyBytes, json, bytes);
}

export function storedFromJson(table: string, json: string, bytes: number): StoredDocument {
  return new StoredRow(table, json, bytes);
}

/**
 * One changed document seen through one index: its key before and after the
 * commit (null where it did not exist). Computed once, when the mutation
 * commits; storage applies it and the subscription index matches it.
 */
export interface IndexWrite {
  readonly index: string;
  readonly id: string;
  readonly oldKey: IndexKey | null;
  readonly newKey: IndexKey | null;
}

export interface DocumentWrite {
  readonly id: string;
  readonly table: string;
  /** The new version, or null when deleted. */
  readonly document: Document | null;
  /** The new version in Convex JSON, encoded once at write time (null when deleted). */
  readonly json: string | null;
  /** `json`'s size in UTF-8 bytes (0 when deleted), measured when it was encoded. */
  readonly bytes: number;
  readonly existedBefore: boolean;
}

export interface Commit {
  readonly ts: bigint;
  /** The largest `_creationTime` handed out so far (kept strictly increasing across commits). */
  readonly lastCreationTime: number;
  readonly documents: readonly DocumentWrite[];
  readonly indexWrites: readonly IndexWrite[];
  /** The commit's changes to search indexes (for index maintenance and search invalidation). */
  readonly searchWrites: readonly SearchWrite[];
  /** The commit's changes to vector indexes (only documents whose indexed vector or filter values changed). */
  readonly vectorWrites: readonly VectorWrite[];
}

export interface DocumentStore {
  /** The text search backend, when the schema has search indexes. */
  readonly search?: SearchBackend;
  /** The vector search backend, when the schema has vector indexes. */
  readonly vectors?: VectorBackend;
  /** Timestamp of the newest commit (0n when empty). */
  lastTimestamp(): bigint;
  lastCreationTime(): number;
  getDocument(id: string): StoredDocument | null;
  /**
   * Entries of `index` inside `interval`, lazily, in key order.
   * `expectedRows` is how many the caller will likely read (a `take(n)`): a hint for the first read.
   */
  scanIndex(index: string, interval: KeyInterval, order: Order, expectedRows?: number): Iterable<IndexEntry>;
  documentCount(): number;
  /** Commits that changed data, over the store's lifetime. */
  commitCount(): number;
  /**
   * Applies a commit atomically. `alsoInTransaction` runs inside the same
   * transaction (e.g. recording a mutation's result for idempotent retries);
   * if either throws, nothing is applied.
   */
  commit(commit: Commit, alsoInTransaction?: () => void): void;
  /**
   * Moves the last timestamp forward to `ts` without a commit (nothing changes,
   * nothing is invalidated); used when a client has observed a later timestamp.
   */
  advanceTimestamp(ts: bigint): void;
}
