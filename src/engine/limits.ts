/**
 * Per-function limits the engine enforces. The deployment fills these from its
 * knob table; the defaults here are what a plain engine (tests, benchmarks) uses.
 */
export interface EngineLimits {
  /** Documents a single query or mutation may read (scanned, filtered ones included). */
  maxDocumentsRead: number;
  /** Distinct key intervals a query's read-set may hold. */
  maxReadIntervals: number;
  /** Documents a single mutation may write. */
  maxDocumentsWritten: number;
  /** Bytes (UTF-8 Convex JSON) of documents a single function may read. */
  maxBytesRead: number;
  /** Bytes a single mutation may write: its documents, plus the search log entries they cause. */
  maxBytesWritten: number;
  /** Encoded size of one document, in UTF-8 bytes. */
  maxDocumentBytes: number;
  /** Encoded size of a function's arguments, in UTF-8 bytes. */
  maxArgumentBytes: number;
  /** Encoded size of a function's result, in UTF-8 bytes. */
  maxResultBytes: number;
  /** Levels of arrays and objects in any argument, result or document (Convex: 64). */
  maxValueDepth: number;
  /** Actions clients' calls run at once in one deployment (they run outside the function lock). */
  maxConcurrentActions: number;
  /** Actions the deployment's own scheduled functions and crons run at once; a due one waits for a slot. */
  maxConcurrentJobActions: number;
  /** Functions one run (a mutation, or an action) may schedule (Convex: 1,000). */
  maxScheduledPerFunction: number;
  /** Bytes of the arguments of the functions one run schedules, together (Convex: 8 MiB). */
  maxScheduledArgumentBytes: number;
  /** Wall-clock time a query or mutation may run, database work included, before it is stopped and the lock released. */
  functionTimeoutMs: number;
  /** Wall-clock time an action (or HTTP action) may run before it is stopped and its caller answered. */
  actionTimeoutMs: number;
  /** How deep `ctx.runQuery`/`ctx.runMutation` calls inside queries and mutations may nest (app -> component -> its component ...). */
  maxNestedCallDepth: number;
  /** Milliseconds any function (or a module's top level) may hold the thread without yielding before the guard stops it (sync-guard.ts). */
  maxSyncRunMs: number;
  /** Loop iterations and function calls any function may make without yielding: what stops a loop where the clock stands still (Cloudflare). */
  maxSyncRunSteps: number;
  /** Terms one search may have. */
  searchMaxTerms: number;
  /** Equality filters one search may have. */
  searchMaxFilters: number;
  /** Results one search may scan before `.filter()`/`take`. */
  searchMaxScanned: number;
  /** Minimum length for the last search term to match as a prefix. */
  searchMinPrefixLength: number;
  /** Bytes of one stored file (an upload, or `ctx.storage.store` in an action). */
  maxFileBytes: number;
  /** Bytes of an HTTP action's request body (Convex: 20 MiB), read before the action takes a slot. */
  maxHttpActionBodyBytes: number;
}

export const DEFAULT_ENGINE_LIMITS: Readonly<EngineLimits> = {
  maxDocumentsRead: 16_384,
  maxReadIntervals: 4_096,
  maxDocumentsWritten: 8_192,
  maxBytesRead: 16_777_216,
  maxBytesWritten: 8_388_608,
  maxDocumentBytes: 1_048_576,
  maxArgumentBytes: 1_048_576,
  maxResultBytes: 4_194_304,
  maxValueDepth: 64,
  maxConcurrentActions: 64,
  maxConcurrentJobActions: 16,
  actionTimeoutMs: 1_800_000,
  functionTimeoutMs: 5_000,
  maxNestedCallDepth: 8,
  maxSyncRunMs: 500,
  maxSyncRunSteps: 50_000_000,
  maxScheduledPerFunction: 1_000,
  maxScheduledArgumentBytes: 8_388_608,
  searchMaxTerms: 16,
  searchMaxFilters: 8,
  searchMaxScanned: 1_024,
  searchMinPrefixLength: 2,
  maxFileBytes: 104_857_600,
  maxHttpActionBodyBytes: 20_971_520,
};
