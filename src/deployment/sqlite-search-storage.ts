/** `SearchStorage` on Durable Object SQLite (tables from migration 3). Partition keys are stored base64. */
import type { IndexKey } from "../engine/index.ts";
import { decodeLogDocument, encodeLogDocument, logEntryBytes, type LogEntry, type PartitionMeta, type SearchStorage } from "../search/storage.ts";

type MetaRow = {
  index_name: string;
  partition: string;
  gen: number;
  snapshot_lsn: number;
  last_lsn: number;
  log_entries: number;
  log_bytes: number;
  format: string;
  failures: number;
};

function toMeta(row: MetaRow): PartitionMeta {
  return {
    index: row.index_name,
    partition: atob(row.partition),
    gen: row.gen,
    snapshotLsn: row.snapshot_lsn,
    lastLsn: row.last_lsn,
    logEntries: row.log_entries,
    logBytes: row.log_bytes,
    format: row.format,
    failures: row.failures,
  };
}

export class SqliteSearchStorage implements SearchStorage {
  private readonly storage: DurableObjectStorage;
  private readonly sql: SqlStorage;

  constructor(storage: DurableObjectStorage) {
    this.storage = storage;
    this.sql = storage.sql;
  }

  meta(index: string, partition: IndexKey): PartitionMeta | null {
    const row = this.sql.exec<MetaRow>("SELECT * FROM search_partitions WHERE index_name = ? AND partition = ?", index, btoa(partition)).toArray()[0];
    return row ? toMeta(row) : null;
  }

  readSnapshot(meta: PartitionMeta): string[] {
    return this.sql
      .exec<{ data: string }>(
        "SELECT data FROM search_chunks WHERE index_name = ? AND partition = ? AND gen = ? ORDER BY seq",
        meta.index,
        btoa(meta.partition),
        meta.gen,
      )
      .toArray()
      .map((row) => row.data);
  }

  readLog(index: string, partition: IndexKey, afterLsn: number): LogEntry[] {
    return this.sql
      .exec<{ lsn: number; doc_id: string; old_doc: string | null; new_doc: string | null }>(
        "SELECT lsn, doc_id, old_doc, new_doc FROM search_log WHERE index_name = ? AND partition = ? AND lsn > ? ORDER BY lsn",
        index,
        btoa(partition),
        afterLsn,
      )
      .toArray()
      .map((row) => ({ lsn: row.lsn, id: row.doc_id, old: decodeLogDocument(row.old_doc), new: decodeLogDocument(row.new_doc) }));
  }

  /** One statement moves the partition's counters and returns them (no read first: issue 27), then the entries take the lsns it made room for. */
  appendLog(index: string, partition: IndexKey, entries: Omit<LogEntry, "lsn">[]): PartitionMeta {
    const key = btoa(partition);
    const encoded = entries.map((entry) => ({ id: entry.id, oldDoc: encodeLogDocument(entry.old), newDoc: encodeLogDocument(entry.new) }));
    const bytes = encoded.reduce((sum, entry) => sum + logEntryBytes(entry.oldDoc, entry.newDoc), 0);
    const row =
      this.sql
        .exec<MetaRow>(
          "UPDATE search_partitions SET last_lsn = last_lsn + ?, log_entries = log_entries + ?, log_bytes = log_bytes + ?, failures = 0 WHERE index_name = ? AND partition = ? RETURNING *",
          entries.length,
          entries.length,
          bytes,
          index,
          key,
        )
        .toArray()[0] ??
      this.sql
        .exec<MetaRow>(
          "INSERT INTO search_partitions (index_name, partition, gen, snapshot_lsn, last_lsn, log_entries, log_bytes, format, failures) VALUES (?, ?, 0, 0, ?, ?, ?, '', 0) RETURNING *",
          index,
          key,
          entries.length,
          entries.length,
          bytes,
        )
        .one();
    let lsn = row.last_lsn - entries.length;
    for (const entry of encoded) {
      this.sql.exec(
        "INSERT INTO search_log (index_name, partition, lsn, doc_id, old_doc, new_doc) VALUES (?, ?, ?, ?, ?, ?)",
        index,
        key,
        ++lsn,
        entry.id,
        entry.oldDoc,
        entry.newDoc,
      );
    }
    return toMeta(row);
  }

  writeSnapshot(meta: PartitionMeta, chunks: string[], lsn: number, format: string, midway?: () => void): void {
    const key = btoa(meta.partition);
    const gen = meta.gen + 1;
    this.storage.transactionSync(() => {
      chunks.forEach((data, seq) =>
        this.sql.exec("INSERT INTO search_chunks (index_name, partition, gen, seq, data) VALUES (?, ?, ?, ?, ?)", meta.index, key, gen, seq, data),
      );
      midway?.();
      this.sql.exec("DELETE FROM search_chunks WHERE index_name = ? AND partition = ? AND gen < ?", meta.index, key, gen);
      this.sql.exec("DELETE FROM search_log WHERE index_name = ? AND partition = ? AND lsn <= ?", meta.index, key, lsn);
      const remaining = this.sql
        .exec<{ n: number; bytes: number | null }>(
          "SELECT count(*) AS n, sum(coalesce(length(CAST(old_doc AS BLOB)), 0) + coalesce(length(CAST(new_doc AS BLOB)), 0)) AS bytes FROM search_log WHERE index_name = ? AND partition = ?",
          meta.index,
          key,
        )
        .one();
      this.sql.exec(
        "UPDATE search_partitions SET gen = ?, snapshot_lsn = ?, log_entries = ?, log_bytes = ?, format = ?, failures = 0 WHERE index_name = ? AND partition = ?",
        gen,
        lsn,
        remaining.n,
        remaining.bytes ?? 0,
        format,
        meta.index,
        key,
      );
    });
  }

  recordFailure(index: string, partition: IndexKey): void {
    this.sql.exec("UPDATE search_partitions SET failures = failures + 1 WHERE index_name = ? AND partition = ?", index, btoa(partition));
  }

  partitionsToCompact(minEntries: number, minBytes: number, limit: number): PartitionMeta[] {
    return this.sql
      .exec<MetaRow>(
        "SELECT * FROM search_partitions WHERE log_entries > 0 AND (log_entries >= ? OR log_bytes >= ?) ORDER BY log_entries DESC LIMIT ?",
        minEntries,
        minBytes,
        limit,
      )
      .toArray()
      .map(toMeta);
  }

  partitionCount(): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM search_partitions").one().n;
  }

  dropIndex(index: string): void {
    for (const table of ["search_log", "search_chunks", "search_partitions"]) this.sql.exec(`DELETE FROM ${table} WHERE index_name = ?`, index);
  }
}
