/**
 * What a deployment reports: `health` to anyone (up, version), `status` to
 * its operator behind the admin key (every counter, and every limit beside
 * its current value: what one needs to see how close the deployment is to
 * each knob, and what a stranger needs to time an overload).
 */
import { splitTableName, type Schema } from "../engine/index.ts";
import { VERSION } from "../version.ts";
import type { DeploymentRuntime } from "./runtime.ts";
import type { ShardStatus } from "./shard-sessions.ts";
import type { VectorIndexReport } from "../vectors/vector-indexes.ts";
import { SIZING_KNOBS, type TierReport } from "../knobs/tiers.ts";
import type { ComponentStatus } from "./component-status.ts";

export interface DeploymentHealth {
  ok: true;
  deployment: string;
  version: string;
}

export interface DeploymentStatus {
  deployment: string;
  version: string;
  commits: number;
  documents: number;
  queryExecutions: number;
  mutationExecutions: number;
  sessions: number;
  subscriptions: number;
  queryInstances: number;
  invalidations: number;
  transitionsSent: number;
  protocolErrors: number;
  sendsPutOff: number;
  /** Characters of frames sent to sockets since the object started (about bytes: JSON text). */
  charactersSent: number;
  /** Functions waiting for the function lock. */
  queuedFunctions: number;
  searchQueries: number;
  searchPartitionsLoaded: number;
  searchPartitionRebuilds: number;
  searchPartitions: number;
  searchMemoryBytes: number;
  searchMemoryBudgetBytes: number;
  compactions: number;
  compactionMs: number;
  compactionFailures: number;
  /** Vector indexes: each one's documents, memory and last search; the searches and vectors scored since the object started. */
  vectors: { indexes: VectorIndexReport[]; searches: number; exactSearches: number; vectorsScored: number; loads: number; evictions: number };
  /** Sync shards holding this deployment's sockets (docs/SHARDS.md): empty while the object holds them itself. */
  shards: ShardStatus[];
  /** Sign-in: sessions signed in; tokens checked, answered from memory and refused; fetches of providers' documents. */
  auth: { signedInSessions: number; tokensVerified: number; tokensRemembered: number; tokensRefused: number; providerFetches: number };
  uptimeMs: number;
  storageBytes: number;
  /** File storage: files (rows of `_storage`) and their bytes in R2, uploads streaming now; null without an R2 binding. */
  files: { count: number; bytes: number; uploading: number } | null;
  tables: Record<string, { indexes: string[] }>;
  /** The app's component instances (convex.config.ts): path, npm package, tables with documents and bytes, pending jobs, crons. */
  components: ComponentStatus[];
  /** The app's modules that failed to load, by module path, with the error (empty when all loaded). */
  moduleErrors: Record<string, string>;
  /** Names of the deployment's environment variables (never their values: `GET /api/admin/env/<name>` shows one). */
  environmentVariables: string[];
  /** The tier this deployment runs on, what its manifest expects, what its deploy stamped, and any mismatch. */
  tier: TierReport & {
    /** Sizing knobs overridden below the tier's defaults (see Knobs.belowTier). */
    belowTier: string[];
  };
  /** Every limit beside its current value: how close the deployment is to each knob. */
  limits: {
    refreshQueue: { depth: number; peak: number; overflow: number; overflowPeak: number; limit: number };
    oldestStaleSessionWaitMs: number;
    refreshSlices: { count: number; ms: number; queryRunsPerSlice: number; transitionsPerSlice: number };
    sessions: { current: number; limit: number; background: number };
    waiting: { current: number; limit: number; oldestWaitMs: number; timeoutMs: number };
    admissions: { admitted: number; refused: number; admittedPerSecond: number; refusedPerSecond: number; ratePerSecond: number; burst: number };
    searchMemory: { bytes: number; budgetBytes: number };
    vectorMemory: { bytes: number; budgetBytes: number };
    /** Encoded results in memory (subscriptions' and the query cache's); `hits`: one-shot queries answered from it without a run. */
    queryResultCache: { bytes: number; budgetBytes: number; evictions: number; hits: number };
    frameBytes: { limit: number };
    /** Bytes of sessions' frames held before they are handled (pending mutations and actions, frames queued behind a sign-in). */
    pendingBytes: { bytes: number; peak: number; limit: number; perSessionLimit: number; refused: number };
    /** Distinct query instances held for all sessions (shards' peer sessions included). */
    queryInstances: { current: number; limit: number };
    environmentVariables: { count: number; limit: number };
    /** The operator's log: runs held, their bytes, runs evicted since the start; tails open now. */
    logRing: { entries: number; entriesLimit: number; bytes: number; bytesLimit: number; evicted: number; streams: number; streamsLimit: number };
  };
}

export function health(deployment: string): DeploymentHealth {
  return { ok: true, deployment, version: VERSION };
}

/**
 * `shards`: what each sync shard reports; the totals (`sessions`,
 * `transitionsSent`) are the whole deployment's, shards included.
 */
export function deploymentStatus(deployment: string, runtime: DeploymentRuntime, schema: Schema, shards: ShardStatus[] = []): DeploymentStatus {
  const { engine, sync, search, store, knobs, gate } = runtime;
  const local = sync.source;
  const k = knobs.values;
  const refresh = sync.scheduler.metrics;
  const now = Date.now();
  const tables: Record<string, { indexes: string[] }> = {};
  // The app's own tables; a component's are listed under its instance (`components`).
  for (const [name, table] of schema.tables) if (splitTableName(name)[0] === "") tables[name] = { indexes: [...table.indexes.keys()] };
  return {
    deployment,
    version: VERSION,
    commits: store.commitCount(),
    documents: store.documentCount(),
    queryExecutions: engine.counters.queryExecutions,
    mutationExecutions: engine.counters.mutationExecutions,
    sessions: sync.sessionCount + shards.reduce((n, shard) => n + (shard.sessions ?? 0), 0),
    subscriptions: sync.subscriptionCount,
    queryInstances: local.instanceCount,
    invalidations: sync.counters.invalidations,
    transitionsSent: sync.counters.transitionsSent + shards.reduce((n, shard) => n + (shard.transitionsSent ?? 0), 0),
    shards,
    protocolErrors: sync.counters.protocolErrors,
    sendsPutOff: sync.counters.sendsPutOff,
    charactersSent: sync.counters.charactersSent,
    queuedFunctions: engine.queuedFunctions,
    searchQueries: search.counters.searchQueries,
    searchPartitionsLoaded: search.loadedPartitions,
    searchPartitionRebuilds: search.counters.partitionRebuilds,
    searchPartitions: search.storage.partitionCount(),
    searchMemoryBytes: search.memoryBytes,
    searchMemoryBudgetBytes: k.searchMemoryBudgetBytes,
    compactions: search.counters.compactions,
    compactionMs: search.counters.compactionMs,
    compactionFailures: search.counters.compactionFailures,
    vectors: { indexes: runtime.vectors.report(), ...runtime.vectors.counters },
    auth: {
      signedInSessions: sync.signedInCount,
      tokensVerified: runtime.auth.verifier.counters.verified,
      tokensRemembered: runtime.auth.verifier.counters.remembered,
      tokensRefused: runtime.auth.verifier.counters.refused,
      providerFetches: runtime.auth.documents.fetches,
    },
    uptimeMs: now - runtime.startedAt,
    storageBytes: runtime.storageBytes,
    files: runtime.uploads ? { ...runtime.fileTotals(), uploading: runtime.uploads.inProgress } : null,
    tables,
    components: runtime.componentStatuses(schema),
    moduleErrors: runtime.moduleErrors,
    environmentVariables: runtime.environment.list().map((variable) => variable.name),
    tier: { ...runtime.tier, belowTier: knobs.belowTier(SIZING_KNOBS) },
    limits: {
      refreshQueue: {
        depth: refresh.queueDepth,
        peak: refresh.queuePeak,
        overflow: refresh.overflow,
        overflowPeak: refresh.overflowPeak,
        limit: k.refreshQueueLimit,
      },
      oldestStaleSessionWaitMs: sync.scheduler.oldestWaitMs(),
      refreshSlices: { count: refresh.slices, ms: refresh.sliceMs, queryRunsPerSlice: k.refreshSliceQueryRuns, transitionsPerSlice: k.refreshSliceTransitions },
      sessions: { current: sync.sessionCount, limit: k.maxSessions, background: sync.backgroundCount },
      waiting: { current: sync.waitingCount, limit: k.maxWaitingSessions, oldestWaitMs: sync.oldestWaitMs(), timeoutMs: k.waitingTimeoutMs },
      admissions: { ...gate.admission.metrics(now), ratePerSecond: k.sessionAdmitRate, burst: k.sessionAdmitBurst },
      searchMemory: { bytes: search.memoryBytes, budgetBytes: k.searchMemoryBudgetBytes },
      vectorMemory: { bytes: runtime.vectors.memoryBytes, budgetBytes: k.vectorMemoryBudgetBytes },
      queryResultCache: {
        bytes: local.instances.results.bytes,
        budgetBytes: k.queryResultCacheBytes,
        evictions: local.instances.results.evictions,
        hits: local.instances.cacheHits,
      },
      frameBytes: { limit: k.maxFrameBytes },
      pendingBytes: {
        bytes: sync.pendingBytes.total,
        peak: sync.pendingBytes.peak,
        limit: k.maxPendingBytes,
        perSessionLimit: k.maxPendingBytesPerSession,
        refused: sync.pendingBytes.refused,
      },
      queryInstances: { current: local.instanceCount, limit: k.maxQueryInstances },
      environmentVariables: { count: runtime.environment.variables.size, limit: k.environmentVariablesMax },
      logRing: {
        entries: runtime.logs.size,
        entriesLimit: k.logRingEntries,
        bytes: runtime.logs.bytes,
        bytesLimit: k.logRingBytes,
        evicted: runtime.logs.evicted,
        streams: runtime.logStreamsOpen,
        streamsLimit: k.maxLogStreams,
      },
    },
  };
}
