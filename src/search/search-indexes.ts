/**
 * The search backend of a deployment: every search index split into
 * partitions by its first filter field, each partition a MiniSearch index
 * loaded lazily from snapshot + log and kept in an LRU bounded by a memory
 * budget. Writes never need a partition in memory: they append to its log in
 * the commit's transaction, and update it in memory only if it is loaded.
 */
import type { Document, IndexKey, Schema, SearchBackend, SearchIndexDefinition, SearchRequest, SearchWrite } from "../engine/index.ts";
import { ByteBudgetLru, searchDocumentOf } from "../engine/index.ts";
import { PartitionIndex, SNAPSHOT_FORMAT } from "./partition-index.ts";
import { partitionKey, type LogEntry, type PartitionMeta, type SearchStorage } from "./storage.ts";

export interface SearchCounters {
  searchQueries: number;
  partitionLoads: number;
  /** Loads that had to re-index documents (outdated snapshot format) instead of snapshot + log. */
  partitionRebuilds: number;
  partitionEvictions: number;
  compactions: number;
  compactionMs: number;
  compactionFailures: number;
}

export interface SearchIndexesOptions {
  schema: Schema;
  storage: SearchStorage;
  /** Memory budget for loaded partitions, read on every check (a knob). */
  budgetBytes: () => number;
  /** Every current document of a table, to rebuild a partition whose snapshot format is outdated. */
  documents: (table: string) => Iterable<Document>;
  /**
   * Told each partition's log size once a commit that appended to it is
   * applied (after its transaction, never inside it), to schedule compaction.
   */
  onLogGrowth?: (meta: PartitionMeta) => void;
}

export class SearchIndexes implements SearchBackend {
  readonly counters: SearchCounters = {
    searchQueries: 0,
    partitionLoads: 0,
    partitionRebuilds: 0,
    partitionEvictions: 0,
    compactions: 0,
    compactionMs: 0,
    compactionFailures: 0,
  };
  readonly storage: SearchStorage;
  private readonly schema: Schema;
  private readonly documents: (table: string) => Iterable<Document>;
  private readonly onLogGrowth: ((meta: PartitionMeta) => void) | undefined;
  /** Logs the commit in progress appended to, reported by `applyWrites` once it is committed. */
  private grownLogs: PartitionMeta[] = [];
  /** Loaded partitions, least recently used out first past the memory budget. */
  private readonly loaded: ByteBudgetLru<string, PartitionIndex>;

  constructor(options: SearchIndexesOptions) {
    this.schema = options.schema;
    this.storage = options.storage;
    this.loaded = new ByteBudgetLru<string, PartitionIndex>({
      budgetBytes: options.budgetBytes,
      sizeOf: (data) => data.estimatedBytes,
      onEvict: () => this.counters.partitionEvictions++,
    });
    this.documents = options.documents;
    this.onLogGrowth = options.onLogGrowth;
  }

  get loadedPartitions(): number {
    return this.loaded.size;
  }

  get memoryBytes(): number {
    return this.loaded.bytes;
  }

  search(request: SearchRequest): ReturnType<SearchBackend["search"]> {
    this.counters.searchQueries++;
    const data = this.partition(request.index, request.partition);
    const result = data.search(request.terms, request.prefix, request.filters, request.limit);
    // Never evict the partition just searched: it may exceed the budget alone, and then goes at the next load.
    this.loaded.fitBudget(partitionKey(request.index.qualifiedName, request.partition));
    return result;
  }

  recordWrites(writes: readonly SearchWrite[]): void {
    this.grownLogs = [];
    const byPartition = new Map<string, { index: string; partition: IndexKey; entries: Omit<LogEntry, "lsn">[] }>();
    const add = (index: string, partition: IndexKey, entry: Omit<LogEntry, "lsn">) => {
      const key = partitionKey(index, partition);
      let group = byPartition.get(key);
      if (!group) byPartition.set(key, (group = { index, partition, entries: [] }));
      group.entries.push(entry);
    };
    for (const write of writes) {
      if (!write.reindex) continue;
      if (write.old && write.new && write.old.partition === write.new.partition) {
        add(write.index, write.new.partition, { id: write.id, old: write.old, new: write.new });
        continue;
      }
      // A document leaving one partition for another: a removal here, an insertion there.
      if (write.old) add(write.index, write.old.partition, { id: write.id, old: write.old, new: null });
      if (write.new) add(write.index, write.new.partition, { id: write.id, old: null, new: write.new });
    }
    for (const group of byPartition.values()) this.grownLogs.push(this.storage.appendLog(group.index, group.partition, group.entries));
  }

  applyWrites(writes: readonly SearchWrite[]): void {
    for (const write of writes) {
      if (!write.reindex) continue;
      // Loaded partitions follow the commit (without being marked used); the LRU takes their new size.
      for (const [version, apply] of [
        [write.old, (data: PartitionIndex) => data.remove(write.id, write.old!)],
        [write.new, (data: PartitionIndex) => data.add(write.id, write.new!)],
      ] as const) {
        if (!version) continue;
        const key = partitionKey(write.index, version.partition);
        const data = this.loaded.peek(key);
        if (!data) continue;
        apply(data);
        this.loaded.resize(key);
      }
    }
    const grown = this.grownLogs;
    this.grownLogs = [];
    for (const meta of grown) this.onLogGrowth?.(meta);
  }

  /** The loaded partition, loading it (snapshot + log, or a rebuild) if needed; marks it recently used. */
  partition(index: SearchIndexDefinition, partition: IndexKey): PartitionIndex {
    const key = partitionKey(index.qualifiedName, partition);
    const found = this.loaded.get(key);
    if (found) return found;
    const data = this.load(index, partition);
    this.loaded.set(key, data);
    this.counters.partitionLoads++;
    return data;
  }

  private load(index: SearchIndexDefinition, partition: IndexKey): PartitionIndex {
    const filterCount = index.filterFields.length;
    const meta = this.storage.meta(index.qualifiedName, partition);
    if (!meta) return PartitionIndex.empty(filterCount);
    if (meta.gen > 0 && meta.format !== SNAPSHOT_FORMAT) return this.rebuild(index, partition);
    const data = meta.gen > 0 ? PartitionIndex.fromSnapshot(this.storage.readSnapshot(meta).join(""), filterCount) : PartitionIndex.empty(filterCount);
    for (const entry of this.storage.readLog(index.qualifiedName, partition, meta.snapshotLsn)) {
      if (entry.old) data.remove(entry.id, entry.old);
      if (entry.new) data.add(entry.id, entry.new);
    }
    return data;
  }

  /** Re-indexes a partition from the documents (its snapshot was written by another format). */
  rebuild(index: SearchIndexDefinition, partition: IndexKey): PartitionIndex {
    this.counters.partitionRebuilds++;
    const data = PartitionIndex.empty(index.filterFields.length);
    for (const document of this.documents(index.table)) {
      const version = searchDocumentOf(index, document);
      if (version.partition === partition) data.add(document._id, version);
    }
    return data;
  }

  /** Forgets every loaded partition (as an eviction of the object would). */
  unloadAll(): void {
    this.loaded.clear();
  }

  /** Index definition by qualified name. */
  indexDefinition(qualifiedName: string): SearchIndexDefinition {
    const [table, name] = qualifiedName.split(".") as [string, string];
    return this.schema.table(table).searchIndexes.get(name)!;
  }
}

export type { PartitionMeta };
