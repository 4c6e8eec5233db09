/**
 * How search partitions persist: per partition a snapshot (chunks of one
 * generation) and an operation log of the changes since it. The log is
 * appended in the same transaction as the documents it indexes; a compaction
 * writes the next generation and drops the old one and the log it covers in
 * one transaction, so a reader always sees one snapshot plus its log.
 */
import { convexToJson, jsonToConvex, utf8Length, type IndexKey, type SearchDocument, type Value } from "../engine/index.ts";

export interface PartitionMeta {
  index: string;
  partition: IndexKey;
  /** Snapshot generation; 0 means no snapshot yet (the log holds everything). */
  gen: number;
  /** The snapshot covers log entries up to this lsn. */
  snapshotLsn: number;
  /** The last lsn appended. */
  lastLsn: number;
  /** Entries and bytes in the log since the snapshot. */
  logEntries: number;
  logBytes: number;
  /** Format the snapshot was written in (a different one means rebuild). */
  format: string;
  /** Consecutive failed compactions; the compactor skips a partition that keeps failing. */
  failures: number;
}

export interface LogEntry {
  lsn: number;
  id: string;
  old: SearchDocument | null;
  new: SearchDocument | null;
}

export interface SearchStorage {
  meta(index: string, partition: IndexKey): PartitionMeta | null;
  /** The snapshot's chunks, in order. */
  readSnapshot(meta: PartitionMeta): string[];
  readLog(index: string, partition: IndexKey, afterLsn: number): LogEntry[];
  /** Appends to a partition's log (inside the commit's transaction); returns its meta after. */
  appendLog(index: string, partition: IndexKey, entries: Omit<LogEntry, "lsn">[]): PartitionMeta;
  /**
   * Writes generation `meta.gen + 1` covering the log up to `lsn`, atomically
   * replacing the old one. `midway` runs inside the transaction after the new
   * chunks are written (a test hook: a throw there must roll everything back).
   */
  writeSnapshot(meta: PartitionMeta, chunks: string[], lsn: number, format: string, midway?: () => void): void;
  recordFailure(index: string, partition: IndexKey): void;
  /** Partitions whose log passed either threshold, most behind first. */
  partitionsToCompact(minEntries: number, minBytes: number, limit: number): PartitionMeta[];
  partitionCount(): number;
  /** Forgets everything stored for `index` (a search index removed or redefined in the schema). */
  dropIndex(index: string): void;
}

/** One string per (search index, partition), for maps keyed by both (index names never hold U+0001). */
export function partitionKey(index: string, partition: IndexKey): string {
  return `${index}\u0001${partition}`;
}

/** What one log entry counts toward `logBytes`: its encoded versions in UTF-8 bytes (as SQLite counts a BLOB). */
export function logEntryBytes(oldDoc: string | null, newDoc: string | null): number {
  return utf8Length(oldDoc ?? "") + utf8Length(newDoc ?? "");
}

/** The log's JSON form of one document version. */
export function encodeLogDocument(doc: SearchDocument | null): string | null {
  if (!doc) return null;
  return JSON.stringify({
    t: doc.text,
    f: doc.filters.map((value) => (value === undefined ? { u: 1 } : { v: convexToJson(value as Value) })),
    c: doc.creationTime,
    p: btoa(doc.partition),
  });
}

export function decodeLogDocument(json: string | null): SearchDocument | null {
  if (json === null) return null;
  const parsed = JSON.parse(json) as { t: string; f: ({ u: 1 } | { v: unknown })[]; c: number; p: string };
  return {
    text: parsed.t,
    filters: parsed.f.map((f) => ("v" in f ? jsonToConvex(f.v) : undefined)) as SearchDocument["filters"],
    creationTime: parsed.c,
    partition: atob(parsed.p),
  };
}

export class MemorySearchStorage implements SearchStorage {
  private metas = new Map<string, PartitionMeta>();
  private snapshots = new Map<string, string[]>();
  private logs = new Map<string, LogEntry[]>();

  private key(index: string, partition: IndexKey): string {
    return partitionKey(index, partition);
  }

  dropIndex(index: string): void {
    const prefix = partitionKey(index, "");
    for (const map of [this.metas, this.snapshots, this.logs]) for (const key of map.keys()) if (key.startsWith(prefix)) map.delete(key);
  }

  meta(index: string, partition: IndexKey): PartitionMeta | null {
    const meta = this.metas.get(this.key(index, partition));
    return meta ? { ...meta } : null;
  }

  readSnapshot(meta: PartitionMeta): string[] {
    return this.snapshots.get(`${this.key(meta.index, meta.partition)}#${meta.gen}`) ?? [];
  }

  readLog(index: string, partition: IndexKey, afterLsn: number): LogEntry[] {
    return (this.logs.get(this.key(index, partition)) ?? []).filter((e) => e.lsn > afterLsn);
  }

  appendLog(index: string, partition: IndexKey, entries: Omit<LogEntry, "lsn">[]): PartitionMeta {
    const key = this.key(index, partition);
    const meta = this.metas.get(key) ?? { index, partition, gen: 0, snapshotLsn: 0, lastLsn: 0, logEntries: 0, logBytes: 0, format: "", failures: 0 };
    const log = this.logs.get(key) ?? [];
    for (const entry of entries) {
      const lsn = ++meta.lastLsn;
      log.push({ ...entry, lsn });
      meta.logEntries++;
      meta.logBytes += logEntryBytes(encodeLogDocument(entry.old), encodeLogDocument(entry.new));
    }
    meta.failures = 0;
    this.metas.set(key, meta);
    this.logs.set(key, log);
    return { ...meta };
  }

  writeSnapshot(meta: PartitionMeta, chunks: string[], lsn: number, format: string, midway?: () => void): void {
    midway?.();
    const key = this.key(meta.index, meta.partition);
    const current = this.metas.get(key)!;
    const remaining = (this.logs.get(key) ?? []).filter((e) => e.lsn > lsn);
    this.snapshots.set(`${key}#${current.gen + 1}`, chunks);
    this.snapshots.delete(`${key}#${current.gen}`);
    this.logs.set(key, remaining);
    this.metas.set(key, {
      ...current,
      gen: current.gen + 1,
      snapshotLsn: lsn,
      logEntries: remaining.length,
      logBytes: remaining.reduce((n, e) => n + logEntryBytes(encodeLogDocument(e.old), encodeLogDocument(e.new)), 0),
      format,
      failures: 0,
    });
  }

  recordFailure(index: string, partition: IndexKey): void {
    const meta = this.metas.get(this.key(index, partition));
    if (meta) meta.failures++;
  }

  partitionsToCompact(minEntries: number, minBytes: number, limit: number): PartitionMeta[] {
    return [...this.metas.values()]
      .filter((m) => m.logEntries > 0 && (m.logEntries >= minEntries || m.logBytes >= minBytes))
      .sort((a, b) => b.logEntries - a.logEntries)
      .slice(0, limit)
      .map((m) => ({ ...m }));
  }

  partitionCount(): number {
    return this.metas.size;
  }
}
