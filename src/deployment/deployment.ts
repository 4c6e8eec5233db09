/**
 * The deployment Durable Object: one per deployment name. It owns the SQLite
 * storage, runs the engine and holds the live sessions on hibernatable
 * WebSockets; the Worker in front of it parses and checks HTTP requests so
 * this single-threaded object spends its time on functions.
 *
 * Transactions (see src/engine/engine.ts for the full argument): functions run
 * one at a time through the engine's FIFO lock; a mutation writes into an
 * in-memory overlay that its reads see, and commits it with its index keys in
 * one `transactionSync`. A throw discards the overlay, so it leaves no trace.
 *
 * Hibernation: a session's identity and versions live on its socket's
 * attachment, its query set and the shared query instances' read-sets in
 * SQLite. The constructor rebuilds the subscription index from them without
 * running a query; idle Pings come from an alarm, never from timers that would
 * keep the object awake.
 */
import { DurableObject } from "cloudflare:workers";
import { Engine, FunctionError, jsonToConvex, registerModules, ValueError, type AppDefinition, type JSONValue } from "../engine/index.ts";
import { errorResponse, successResponse, type FunctionResponse } from "../protocol/http.ts";
import { SyncServer } from "../sync/sync-server.ts";
import type { Connection, SessionAttachment, SyncSession } from "../sync/session.ts";
import { SqliteStore } from "./sqlite-store.ts";
import { SqliteSyncStorage } from "./sqlite-sync-storage.ts";
import { SqliteSearchStorage } from "./sqlite-search-storage.ts";
import { SearchIndexes } from "../search/search-indexes.ts";
import { compactSearchIndexes, type CompactionReport } from "../search/compactor.ts";
import { AlarmScheduler } from "./alarm-scheduler.ts";
import { backfillIndexes } from "./index-backfill.ts";
import { Admission, shedReason } from "./admission.ts";
import { KnobError, Knobs, type KnobChange, type KnobReport } from "./knobs.ts";
import { VERSION } from "../version.ts";
import type { Env } from "../env.ts";

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
  searchQueries: number;
  searchPartitionsLoaded: number;
  searchPartitionRebuilds: number;
  searchPartitions: number;
  searchMemoryBytes: number;
  searchMemoryBudgetBytes: number;
  compactions: number;
  compactionMs: number;
  compactionFailures: number;
  uptimeMs: number;
  /** Every limit beside its current value: how close the deployment is to each knob. */
  limits: {
    refreshQueue: { depth: number; peak: number; overflow: number; overflowPeak: number; limit: number };
    oldestStaleSessionWaitMs: number;
    refreshSlices: { count: number; ms: number; queryRunsPerSlice: number; transitionsPerSlice: number };
    sessions: { current: number; limit: number };
    admissions: { admitted: number; refused: number; admittedPerSecond: number; refusedPerSecond: number; ratePerSecond: number; burst: number };
    searchMemory: { bytes: number; budgetBytes: number };
    queryResultCache: { bytes: number; budgetBytes: number; evictions: number };
    frameBytes: { limit: number };
  };
}

export type FunctionKind = "query" | "mutation";

export type AdminStatus = DeploymentStatus & { storageBytes: number; tables: Record<string, { indexes: string[] }> };

/** What the Worker calls on a deployment object over RPC. */
export interface DeploymentApi {
  run(kind: FunctionKind, path: string, encodedArgs: JSONValue, requestId: string): Promise<FunctionResponse>;
  status(): Promise<DeploymentStatus>;
  adminStatus(): Promise<AdminStatus>;
  compactNow(): Promise<CompactionReport>;
  knobReport(): Promise<{ knobs: KnobReport[]; history: KnobChange[] }>;
  /** Applies knob changes; a bad name or value fails the whole request with a message naming it. */
  setKnobs(changes: Record<string, unknown>): Promise<{ ok: true; changes: KnobChange[] } | { ok: false; error: string }>;
  fetch(request: Request): Promise<Response>;
}

function socketConnection(ws: WebSocket): Connection {
  return {
    send(frame) {
      try {
        ws.send(frame);
      } catch {
        // The socket closed under us; its close event cleans up the session.
      }
    },
    close(code, reason) {
      try {
        ws.close(code, reason);
      } catch {
        // Already closing.
      }
    },
    saveAttachment(attachment) {
      ws.serializeAttachment(attachment);
    },
  };
}

function attachmentOf(ws: WebSocket): SessionAttachment | null {
  const attachment = ws.deserializeAttachment() as SessionAttachment | null;
  return attachment?.v === 1 ? attachment : null;
}

export function defineDeployment(app: AppDefinition) {
  const functions = registerModules(app.modules);

  return class Deployment extends DurableObject<Env> implements DeploymentApi {
    readonly knobs: Knobs;
    readonly store: SqliteStore;
    readonly engine: Engine;
    readonly sync: SyncServer;
    readonly search: SearchIndexes;
    readonly alarms: AlarmScheduler;
    readonly admission: Admission;
    private readonly startedAt = Date.now();
    /** Socket -> session, so a message does not deserialize its socket's attachment. */
    private readonly sockets = new WeakMap<WebSocket, SyncSession>();

    constructor(ctx: DurableObjectState, env: Env) {
      super(ctx, env);
      this.store = new SqliteStore(ctx.storage);
      this.knobs = new Knobs(ctx.storage);
      this.search = new SearchIndexes({
        schema: app.schema,
        storage: new SqliteSearchStorage(ctx.storage),
        budgetBytes: () => this.knobs.values.searchMemoryBudgetMB * 1_048_576,
        documents: (table) => this.store.documentsOf(table),
        onLogGrowth: (meta) => {
          const k = this.knobs.values;
          const due = meta.logEntries >= k.searchCompactLogEntries || meta.logBytes >= k.searchCompactLogBytes;
          if (due && meta.failures < k.compactionMaxFailures) this.alarms.request(Date.now() + k.compactionDelayMs);
        },
      });
      this.store.useSearch(this.search);
      const backfill = backfillIndexes(ctx.storage, app.schema, this.search.storage, (table) => this.store.documentsOf(table));
      if (!backfill.firstStart && backfill.rebuilt.length + backfill.dropped.length > 0) console.log(`indexes rebuilt: ${backfill.rebuilt.join(", ") || "-"}; dropped: ${backfill.dropped.join(", ") || "-"}`);
      this.admission = new Admission(() => this.knobs.values, Date.now());
      this.alarms = new AlarmScheduler(ctx.storage, {
        ping: () => {
          this.sync.pingIdle();
          return this.sync.sessionCount > 0 ? Date.now() + this.knobs.values.idlePingMs : null;
        },
        compaction: () => {
          if (!this.compactionDue()) return null;
          const report = this.compact(false);
          return report.moreWork ? Date.now() + this.knobs.values.compactionDelayMs : null;
        },
      });
      this.engine = new Engine({ schema: app.schema, functions, store: this.store, limits: () => this.knobs.engineLimits() });
      this.sync = new SyncServer({
        engine: this.engine,
        storage: new SqliteSyncStorage(ctx.storage.sql, () => this.knobs.values.mutationResultRetentionMs),
        knobs: () => this.knobs.sync(),
        advanceTimestamp: (ts) => this.store.advanceTimestamp(ts),
      });
      const open: { connection: Connection; attachment: SessionAttachment }[] = [];
      for (const ws of ctx.getWebSockets()) {
        const attachment = attachmentOf(ws);
        if (attachment) open.push({ connection: socketConnection(ws), attachment });
      }
      this.sync.restore(open);
      // Lets clients that send the literal "ping" keep alive without waking us.
      ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    }

    /** WebSocket upgrades for `/api/<clientVersion>/sync` (the Worker routes only those here). */
    override async fetch(request: Request): Promise<Response> {
      if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
        return new Response("Expected a WebSocket upgrade", { status: 426 });
      }
      const decision = this.admission.decide(this.sync.sessionCount, Date.now());
      if (!decision.admit) {
        return Response.json(
          { code: decision.code, message: decision.message, retryAfterMs: decision.retryAfterMs },
          { status: 429, headers: { "Retry-After": String(Math.ceil(decision.retryAfterMs / 1000)) } },
        );
      }
      const { 0: client, 1: server } = new WebSocketPair();
      this.ctx.acceptWebSocket(server);
      const connectionId = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
      this.sockets.set(server, this.sync.open(socketConnection(server), connectionId));
      this.alarms.request(Date.now() + this.knobs.values.idlePingMs);
      return new Response(null, { status: 101, webSocket: client });
    }

    override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
      const session = this.sessionOf(ws);
      if (!session) return;
      await this.sync.receive(session, message);
    }

    override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
      const session = this.sessionOf(ws);
      if (session) this.sync.close(session);
      // Answer the close handshake (a peer left waiting reports 1006 after a timeout).
      // 1005 means "no code": answer without one; 1006/1015 are never sent on the wire.
      try {
        if (code === 1005) ws.close();
        else if (code !== 1006 && code !== 1015) ws.close(code, reason);
      } catch {
        // Already closed.
      }
    }

    override async webSocketError(ws: WebSocket): Promise<void> {
      const session = this.sessionOf(ws);
      if (session) this.sync.close(session);
    }

    override async alarm(): Promise<void> {
      await this.alarms.run();
    }

    /**
     * The last resort: when sessions exceed `maxSessions` (lowered at runtime),
     * close the newest ones with 1013 and a jittered retry hint whose prefix the
     * official client treats as overload.
     */
    private shedExcessSessions(): void {
      const excess = this.sync.sessionCount - this.knobs.values.maxSessions;
      if (excess <= 0) return;
      const shed = this.sync.newestSessions(excess);
      for (const session of shed) {
        const retryAfterMs = 3_000 + Math.floor(Math.random() * 12_000);
        console.warn(`[${session.connectionId}] session=${session.sessionId ?? "-"} shed over maxSessions=${this.knobs.values.maxSessions}; retry in ${retryAfterMs} ms`);
        session.connection.close(1013, shedReason(retryAfterMs));
        this.sync.close(session);
      }
    }

    private compactionDue(): boolean {
      const k = this.knobs.values;
      return this.search.storage.partitionsToCompact(k.searchCompactLogEntries, k.searchCompactLogBytes, 1).some((m) => m.failures < k.compactionMaxFailures);
    }

    /** Search compaction: not a commit (see src/search/compactor.ts). `all` compacts every non-empty log now. */
    private compact(all: boolean): CompactionReport {
      const k = this.knobs.values;
      return compactSearchIndexes(this.search, {
        minLogEntries: all ? 1 : k.searchCompactLogEntries,
        minLogBytes: all ? 0 : k.searchCompactLogBytes,
        budgetDocuments: all ? Infinity : k.compactionBudgetDocuments,
        maxChunkBytes: k.searchSnapshotChunkBytes,
        maxFailures: all ? Infinity : k.compactionMaxFailures,
      });
    }

    /**
     * Runs a compaction of every partition with a non-empty log, now (operators, tests).
     * Compaction is synchronous, so no commit can interleave with it.
     */
    async compactNow(): Promise<CompactionReport> {
      return this.compact(true);
    }


    /** The session of a socket: from memory, or after a wake from its attachment (once). */
    private sessionOf(ws: WebSocket): SyncSession | undefined {
      let session = this.sockets.get(ws);
      if (!session) {
        const attachment = attachmentOf(ws);
        session = attachment ? this.sync.session(attachment.connectionId) : undefined;
        if (session) this.sockets.set(ws, session);
      }
      return session;
    }

    /** Runs a query or mutation over HTTP. Function failures are answered, never thrown. */
    async run(kind: FunctionKind, path: string, encodedArgs: JSONValue, requestId: string): Promise<FunctionResponse> {
      try {
        const args = jsonToConvex(encodedArgs);
        if (kind === "query") return successResponse((await this.engine.runQuery(path, args)).json);
        const result = await this.engine.runMutation(path, args);
        this.sync.afterCommit(result.writes, result.searchWrites);
        return successResponse(result.json);
      } catch (error) {
        if (error instanceof FunctionError) return errorResponse(error);
        if (error instanceof ValueError) return errorResponse(new FunctionError("InvalidArgument", `Invalid arguments: ${error.message}`));
        // Anything else is our bug: log it with the request id, tell the caller only the id.
        console.error(`[${requestId}] ${kind} ${path} failed:`, error);
        return { status: "error", errorMessage: `[Request ID: ${requestId}] Server Error`, logLines: [] };
      }
    }

    async status(): Promise<DeploymentStatus> {
      const counters = this.store.persistedCounters;
      return {
        deployment: this.ctx.id.name ?? this.ctx.id.toString(),
        version: VERSION,
        commits: counters.commits,
        documents: counters.documents,
        queryExecutions: this.engine.counters.queryExecutions,
        mutationExecutions: this.engine.counters.mutationExecutions,
        sessions: this.sync.sessionCount,
        subscriptions: this.sync.subscriptionCount,
        queryInstances: this.sync.instanceCount,
        invalidations: this.sync.counters.invalidations,
        transitionsSent: this.sync.counters.transitionsSent,
        protocolErrors: this.sync.counters.protocolErrors,
        searchQueries: this.search.counters.searchQueries,
        searchPartitionsLoaded: this.search.loadedPartitions,
        searchPartitionRebuilds: this.search.counters.partitionRebuilds,
        searchPartitions: this.search.storage.partitionCount(),
        searchMemoryBytes: this.search.memoryBytes,
        searchMemoryBudgetBytes: this.knobs.values.searchMemoryBudgetMB * 1_048_576,
        compactions: this.search.counters.compactions,
        compactionMs: this.search.counters.compactionMs,
        compactionFailures: this.search.counters.compactionFailures,
        uptimeMs: Date.now() - this.startedAt,
        limits: this.limits(),
      };
    }

    private limits(): DeploymentStatus["limits"] {
      const k = this.knobs.values;
      const refresh = this.sync.scheduler.metrics;
      const now = Date.now();
      return {
        refreshQueue: { depth: refresh.queueDepth, peak: refresh.queuePeak, overflow: refresh.overflow, overflowPeak: refresh.overflowPeak, limit: k.refreshQueueLimit },
        oldestStaleSessionWaitMs: this.sync.scheduler.oldestWaitMs(),
        refreshSlices: { count: refresh.slices, ms: refresh.sliceMs, queryRunsPerSlice: k.refreshSliceQueryRuns, transitionsPerSlice: k.refreshSliceTransitions },
        sessions: { current: this.sync.sessionCount, limit: k.maxSessions },
        admissions: { ...this.admission.metrics(now), ratePerSecond: k.sessionAdmitRate, burst: k.sessionAdmitBurst },
        searchMemory: { bytes: this.search.memoryBytes, budgetBytes: k.searchMemoryBudgetMB * 1_048_576 },
        queryResultCache: { bytes: this.sync.instances.results.bytes, budgetBytes: k.queryResultCacheMB * 1_048_576, evictions: this.sync.instances.results.evictions },
        frameBytes: { limit: k.maxFrameBytes },
      };
    }

    async knobReport(): Promise<{ knobs: KnobReport[]; history: KnobChange[] }> {
      return { knobs: this.knobs.report(), history: this.knobs.history() };
    }

    async setKnobs(changes: Record<string, unknown>): Promise<{ ok: true; changes: KnobChange[] } | { ok: false; error: string }> {
      try {
        const applied = this.knobs.set(changes);
        for (const change of applied) console.log(`knob ${change.name}: ${change.old} -> ${change.new}`);
        this.shedExcessSessions();
        return { ok: true, changes: applied };
      } catch (error) {
        if (error instanceof KnobError) return { ok: false, error: error.message };
        throw error;
      }
    }

    /** Operator view: status plus storage size and the schema's tables and indexes. */
    async adminStatus(): Promise<AdminStatus> {
      const tables: Record<string, { indexes: string[] }> = {};
      for (const [name, table] of app.schema.tables) tables[name] = { indexes: [...table.indexes.keys()] };
      return { ...(await this.status()), storageBytes: this.ctx.storage.sql.databaseSize, tables };
    }
  };
}

export type DeploymentClass = ReturnType<typeof defineDeployment>;
export type Deployment = InstanceType<DeploymentClass>;
