/**
 * The search compactor: rewrites a partition's snapshot from its live index
 * once its log passes a threshold, so loads stay fast and the log stays short.
 *
 * It is not a commit: it reads the index as it is and writes only search
 * storage (snapshot chunks, partition meta, the log it covers). No timestamp
 * moves, no document changes, so no subscription can be invalidated, no query
 * re-runs and no transition is sent: search read-sets are matched only
 * against document writes.
 *
 * Safety: serialization happens before anything is written, and the new
 * generation's chunks, the meta swap and the log trim are one transaction
 * (`SearchStorage.writeSnapshot`), so an interruption at any step leaves the
 * old snapshot plus its log, which load to the same index.
 *
 * Bounded work: one run compacts partitions until it has serialized
 * `budgetDocuments` documents, and reports whether work remains so the caller
 * schedules another run. (Wall-clock budgets do not work on Workers: the clock
 * does not advance during synchronous work.) A partition that fails
 * `maxFailures` times in a row is skipped until new writes reach it, so a
 * poison partition cannot make the alarm retry forever.
 */
import type { SearchIndexes } from "./search-indexes.ts";
import { SNAPSHOT_FORMAT } from "./partition-index.ts";
import { splitIntoChunks } from "./chunks.ts";

export type CompactionStep = "load" | "serialize" | "write" | "swap";

export interface CompactionOptions {
  /** Compact a partition whose log has at least this many entries... */
  minLogEntries: number;
  /** ...or at least this many bytes. */
  minLogBytes: number;
  /** Documents to serialize per run before yielding to the next run. */
  budgetDocuments: number;
  /** Largest snapshot chunk (a SQLite row), in bytes. */
  maxChunkBytes: number;
  maxFailures: number;
  /** Test hook: called before each step; a throw there simulates an interruption. */
  beforeStep?: (step: CompactionStep, partition: string) => void;
  now?: () => number;
}

export interface CompactionReport {
  compacted: number;
  failed: number;
  /** Partitions past the threshold are still waiting (budget spent). */
  moreWork: boolean;
}

export function compactSearchIndexes(indexes: SearchIndexes, options: CompactionOptions): CompactionReport {
  const now = options.now ?? Date.now;
  const report: CompactionReport = { compacted: 0, failed: 0, moreWork: false };
  let spent = 0;
  const candidates = indexes.storage
    .partitionsToCompact(options.minLogEntries, options.minLogBytes, 1_000)
    .filter((meta) => meta.failures < options.maxFailures);
  for (const meta of candidates) {
    if (spent >= options.budgetDocuments) {
      report.moreWork = true;
      break;
    }
    const started = now();
    try {
      options.beforeStep?.("load", meta.partition);
      const index = indexes.indexDefinition(meta.index);
      const data = indexes.partition(index, meta.partition);
      options.beforeStep?.("serialize", meta.partition);
      const chunks = splitIntoChunks(data.serialize(), options.maxChunkBytes);
      options.beforeStep?.("write", meta.partition);
      indexes.storage.writeSnapshot(meta, chunks, meta.lastLsn, SNAPSHOT_FORMAT, () => options.beforeStep?.("swap", meta.partition));
      spent += data.documentCount;
      report.compacted++;
      indexes.counters.compactions++;
    } catch (error) {
      report.failed++;
      indexes.counters.compactionFailures++;
      indexes.storage.recordFailure(meta.index, meta.partition);
      console.error(`search compaction of ${meta.index} partition ${btoa(meta.partition)} failed:`, error);
    } finally {
      indexes.counters.compactionMs += now() - started;
    }
  }
  return report;
}

/** The knobs that decide when and how much to compact. */
export interface CompactionKnobs {
  searchCompactLogEntries: number;
  searchCompactLogBytes: number;
  compactionBudgetDocuments: number;
  compactionDelayMs: number;
  compactionMaxFailures: number;
  searchSnapshotChunkBytes: number;
}

/**
 * When compaction runs, in one place: a partition is due once its log passes
 * `searchCompactLogEntries` or `searchCompactLogBytes` (and it has not failed
 * `compactionMaxFailures` times in a row). The deployment asks `dueAfterWrite`
 * when a commit grows a log (to set its alarm), and calls `run` from the alarm.
 */
export class CompactionPolicy {
  private readonly indexes: SearchIndexes;
  private readonly knobs: () => CompactionKnobs;

  constructor(indexes: SearchIndexes, knobs: () => CompactionKnobs) {
    this.indexes = indexes;
    this.knobs = knobs;
  }

  /** Whether a partition whose log now has these sizes needs compacting. */
  dueAfterWrite(meta: { logEntries: number; logBytes: number; failures: number }): boolean {
    const k = this.knobs();
    return (meta.logEntries >= k.searchCompactLogEntries || meta.logBytes >= k.searchCompactLogBytes) && meta.failures < k.compactionMaxFailures;
  }

  /** Whether any partition is due now. */
  due(): boolean {
    const k = this.knobs();
    return this.indexes.storage.partitionsToCompact(k.searchCompactLogEntries, k.searchCompactLogBytes, 1).some((m) => m.failures < k.compactionMaxFailures);
  }

  /** One bounded run over the due partitions; `all` compacts every non-empty log now, unbounded (operators, tests). */
  run(all = false): CompactionReport {
    const k = this.knobs();
    return compactSearchIndexes(this.indexes, {
      minLogEntries: all ? 1 : k.searchCompactLogEntries,
      minLogBytes: all ? 0 : k.searchCompactLogBytes,
      budgetDocuments: all ? Infinity : k.compactionBudgetDocuments,
      maxChunkBytes: k.searchSnapshotChunkBytes,
      maxFailures: all ? Infinity : k.compactionMaxFailures,
    });
  }
}
