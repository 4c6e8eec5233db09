/**
 * The engine's `DocumentStore` on Durable Object SQLite.
 *
 * Documents are Convex JSON in `documents`; every index entry is a row of
 * `index_entries` whose BLOB key is the engine's order-preserving encoding, so
 * SQLite's memcmp order is the index order and a range scan is one
 * primary-key range. Counters that must survive eviction (last timestamp,
 * documents, commits) live in `meta` and change in the commit's transaction.
 */
import {
  bytesToKey,
  jsonToConvex,
  keySuccessor,
  keyToBytes,
  type Commit,
  type Document,
  type DocumentStore,
  type IndexEntry,
  type KeyInterval,
  type Order,
  type SearchBackend,
  type VectorBackend,
  type StoredDocument,
  entryFromJson,
  storedFromJson,
} from "../engine/index.ts";

/** Rows of an index scan's first statement, and the most of any later one. */
const SCAN_FIRST_BATCH = 32;
const SCAN_MAX_BATCH = 1_024;

/**
 * The four texts of an index scan (direction, with or without an upper bound), built once. Every statement here is a
 * fixed text with bound values: workerd caches a prepared statement per query text (cloudflare/workerd#2970), and a
 * write's cursor, which returns no rows, gives its statement back at once, so each text is prepared once per object.
 */
/** Its columns in this order: `scanIndex` reads the rows as arrays. */
const scanSql = (order: Order, bounded: boolean) =>
  `SELECT e.key AS key, d.json AS json, d.bytes AS bytes FROM index_entries e JOIN documents d ON d.id = e.doc_id
   WHERE e.index_name = ? AND e.key >= ? ${bounded ? "AND e.key < ?" : ""} ORDER BY e.key ${order === "asc" ? "ASC" : "DESC"} LIMIT ?`;
const SCAN_SQL: Record<Order, readonly [unbounded: string, bounded: string]> = {
  asc: [scanSql("asc", false), scanSql("asc", true)],
  desc: [scanSql("desc", false), scanSql("desc", true)],
};

function keyParam(key: string): ArrayBuffer {
  return keyToBytes(key).buffer as ArrayBuffer;
}

function parseDocument(json: string): Document {
  return jsonToConvex(JSON.parse(json)) as Document;
}

/** Every document of a table, straight from the documents table (so it works whatever state the indexes are in). */
export function* documentsOf(sql: SqlStorage, table: string): Iterable<Document> {
  for (const row of sql.exec<{ json: string }>("SELECT json FROM documents WHERE table_name = ?", table)) yield parseDocument(row.json);
}

export interface StoreCounters {
  lastTs: bigint;
  lastCreationTime: number;
  documents: number;
  commits: number;
}

export class SqliteStore implements DocumentStore {
  private readonly storage: DurableObjectStorage;
  private readonly sql: SqlStorage;
  private counters: StoreCounters;
  private readonly searchBackend: SearchBackend | undefined;
  readonly vectors: VectorBackend | undefined;

  constructor(storage: DurableObjectStorage, search?: SearchBackend, vectors?: VectorBackend) {
    this.storage = storage;
    this.sql = storage.sql;
    this.searchBackend = search;
    this.vectors = vectors;
    this.counters = this.readCounters();
  }

  private readCounters(): StoreCounters {
    const meta = new Map<string, string>();
    for (const row of this.sql.exec<{ key: string; value: string }>("SELECT key, value FROM meta")) meta.set(row.key, row.value);
    return {
      lastTs: BigInt(meta.get("last_ts") ?? "0"),
      lastCreationTime: Number(meta.get("last_creation_time") ?? "0"),
      documents: Number(meta.get("documents") ?? "0"),
      commits: Number(meta.get("commits") ?? "0"),
    };
  }

  get search(): SearchBackend | undefined {
    return this.searchBackend;
  }

  lastTimestamp(): bigint {
    return this.counters.lastTs;
  }

  lastCreationTime(): number {
    return this.counters.lastCreationTime;
  }

  documentCount(): number {
    return this.counters.documents;
  }

  commitCount(): number {
    return this.counters.commits;
  }

  getDocument(id: string): StoredDocument | null {
    const row = this.sql
      .exec<{ table_name: string; json: string; bytes: number }>("SELECT table_name, json, bytes FROM documents WHERE id = ?", id)
      .toArray()[0];
    return row ? storedFromJson(row.table_name, row.json, row.bytes) : null;
  }

  /**
   * Reads in batches that grow (32, 128, 512, then 1,024 rows), each resuming
   * after the last key: a `take(20)` reads one batch, and a whole range costs
   * a few statements. (A single statement's cursor is not lazy enough: workerd
   * reads ahead, so a take(20) over a 100-row range cost 5x a LIMIT 20 read.)
   * Nothing commits while a function runs (the function lock), so the batches
   * read one snapshot.
   */
  *scanIndex(index: string, interval: KeyInterval, order: Order, expectedRows?: number): Iterable<IndexEntry> {
    let { start, end } = interval;
    const first = expectedRows !== undefined && expectedRows > 0 ? Math.min(expectedRows, SCAN_MAX_BATCH) : SCAN_FIRST_BATCH;
    for (let batch = first; ; batch = Math.min(batch * 4, SCAN_MAX_BATCH)) {
      const params: (string | ArrayBuffer | number)[] = [index, keyParam(start)];
      if (end !== null) params.push(keyParam(end));
      params.push(batch);
      // Rows as arrays (`raw()`), not objects keyed by column name: about a quarter of the statement's cost for 20 rows in workerd (issue 27).
      const rows = [...this.sql.exec(SCAN_SQL[order][end === null ? 0 : 1], ...params).raw()] as [key: ArrayBuffer, json: string, bytes: number][];
      for (const [key, json, bytes] of rows) yield entryFromJson(key, json, bytes);
      if (rows.length < batch) return;
      const last = bytesToKey(new Uint8Array(rows.at(-1)![0]));
      if (order === "asc") start = keySuccessor(last);
      else end = last;
    }
  }

  advanceTimestamp(ts: bigint): void {
    if (ts <= this.counters.lastTs) return;
    this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_ts', ?)", ts.toString());
    this.counters = { ...this.counters, lastTs: ts };
  }

  /**
   * A bulk commit (a snapshot import) that `write` makes straight in SQL, in one transaction with
   * the counters: `write` returns how many documents it added (less those it deleted) and the
   * largest creation time it wrote. (Its caller makes loaded search and vector indexes load again.)
   */
  commitBulk(ts: bigint, write: () => { documentsDelta: number; lastCreationTime: number }): void {
    let next = this.counters;
    this.storage.transactionSync(() => {
      const { documentsDelta, lastCreationTime } = write();
      next = {
        lastTs: ts,
        lastCreationTime: Math.max(this.counters.lastCreationTime, lastCreationTime),
        documents: this.counters.documents + documentsDelta,
        commits: this.counters.commits + 1,
      };
      this.sql.exec(
        `INSERT OR REPLACE INTO meta (key, value) VALUES ('last_ts', ?), ('last_creation_time', ?), ('documents', ?), ('commits', ?)`,
        next.lastTs.toString(),
        String(next.lastCreationTime),
        String(next.documents),
        String(next.commits),
      );
    });
    this.counters = next;
  }

  commit(commit: Commit, alsoInTransaction?: () => void): void {
    let documents = this.counters.documents;
    const changed = commit.documents.length > 0;
    this.storage.transactionSync(() => {
      for (const write of commit.documents) {
        if (write.document) {
          this.sql.exec("INSERT OR REPLACE INTO documents (id, table_name, json, bytes) VALUES (?, ?, ?, ?)", write.id, write.table, write.json!, write.bytes);
          if (!write.existedBefore) documents++;
        } else {
          this.sql.exec("DELETE FROM documents WHERE id = ?", write.id);
          if (write.existedBefore) documents--;
        }
      }
      for (const write of commit.indexWrites) {
        if (write.oldKey === write.newKey) continue;
        if (write.oldKey !== null) this.sql.exec("DELETE FROM index_entries WHERE index_name = ? AND key = ?", write.index, keyParam(write.oldKey));
        if (write.newKey !== null) {
          this.sql.exec("INSERT INTO index_entries (index_name, key, doc_id) VALUES (?, ?, ?)", write.index, keyParam(write.newKey), write.id);
        }
      }
      this.searchBackend?.recordWrites(commit.searchWrites);
      this.vectors?.recordWrites(commit.vectorWrites);
      alsoInTransaction?.();
      if (changed) {
        this.sql.exec(
          `INSERT OR REPLACE INTO meta (key, value) VALUES ('last_ts', ?), ('last_creation_time', ?), ('documents', ?), ('commits', ?)`,
          commit.ts.toString(),
          String(commit.lastCreationTime),
          String(documents),
          String(this.counters.commits + 1),
        );
      }
    });
    if (changed) {
      this.counters = { lastTs: commit.ts, lastCreationTime: commit.lastCreationTime, documents, commits: this.counters.commits + 1 };
      this.searchBackend?.applyWrites(commit.searchWrites);
      this.vectors?.applyWrites(commit.vectorWrites);
    }
  }
}
