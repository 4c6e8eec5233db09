/**
 * One deployment's running parts, wired in one place and in one order:
 * storage schema first, then knobs, documents, search, engine, live sync,
 * admission and the shared alarm. The Durable Object (`deployment.ts`)
 * creates this only for a deployment that exists, so a stranger's request
 * for an unknown name starts nothing and writes nothing.
 */
import { isScheduledJobsIndex, type Components } from "../engine/index.ts";
import {
  AuthenticationError,
  AllCronJobs,
  Engine,
  FileStorage,
  FunctionError,
  RunningJobActions,
  ScheduledJobs,
  jsonToConvex,
  type CronDefinition,
  type UserIdentity,
  type Value,
  knownFunctionError,
  type FunctionRegistry,
  type HttpRouter,
  type Schema,
  type JSONValue,
  SERVER_ERROR,
  withRequestId,
} from "../engine/index.ts";
import { errorResponse, successResponse, type FunctionResponse } from "../protocol/http.ts";
import { SyncFront } from "../sync/front.ts";
import { localFront, type LocalSource } from "../sync/local-source.ts";
import { earlierRun, mutationFingerprint, recordKey } from "../sync/mutation-records.ts";
import { SessionGate } from "../sync/session-gate.ts";
import { ClientBuckets, clientKey } from "../sync/client-limits.ts";
import { SearchIndexes } from "../search/search-indexes.ts";
import { CompactionPolicy } from "../search/compactor.ts";
import { documentsOf, SqliteStore } from "./sqlite-store.ts";
import { SqliteSyncStorage } from "./sqlite-sync-storage.ts";
import { SqliteSearchStorage } from "./sqlite-search-storage.ts";
import { SqliteVectorStorage } from "./sqlite-vector-storage.ts";
import { VectorIndexes } from "../vectors/vector-indexes.ts";
import { AlarmScheduler } from "../operations/alarm-scheduler.ts";
import { LogRing } from "../operations/log-ring.ts";
import { logStream, type LogStreamRequest, type LogTail } from "../operations/log-stream.ts";

/** Any index of the jobs table: every job write appears in each. */
import { backfillIndexes } from "./index-backfill.ts";
import { componentStatuses, type ComponentStatus } from "./component-status.ts";
import { KnobError, Knobs, type KnobChange, type KnobReport } from "./knobs.ts";
import { migrate } from "./migrations.ts";
import { openSockets } from "./sockets.ts";
import { MetricsRing } from "../operations/metrics-ring.ts";
import { TIERS, tierReport, type TierReport, type TierStamp } from "../knobs/tiers.ts";
import { isLocalConfiguration, type Env } from "../env.ts";
import { shardConfig, shardName, ShardSessions, type ShardApi } from "./shard-sessions.ts";
import { DeploymentAuth } from "./auth.ts";
import { DeploymentUrls, functionVariables } from "./deployment-urls.ts";
import { R2BlobStore } from "./r2-blob-store.ts";
import { Uploads } from "./uploads.ts";
import { DeploymentEnvironment, EnvironmentError, type EnvironmentChange } from "./environment.ts";
import { SnapshotImports } from "./snapshot-import.ts";

export type FunctionKind = "query" | "mutation" | "action";

/**
 * A hop through the runtime's event queue (a timer): events waiting behind ours are delivered, and the
 * writes made before it commit (workerd commits an object's implicit transaction once control returns
 * to its event loop; awaiting an already resolved promise never gets there).
 */
const yieldToEvents = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/** Longest `Idempotency-Key` accepted (Stripe's limit; a UUID is 36). */
const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
/** Where a deployment publishes its own public keys, under CONVEX_CLOUD_URL (Convex's path). */
const JWKS_PATH = "/.well-known/jwks.json";

/** What every deployment object of an isolate serves: the app's code, loaded once (see `defineDeployment`). */
export interface ResolvedApp {
  schema: Schema;
  functions: FunctionRegistry;
  httpRouter: HttpRouter | null;
  crons: Record<string, CronDefinition>;
  /** Each component instance's own jobs (its `crons.ts`) by its path; an instance without one has none. */
  componentCrons?: Record<string, Record<string, CronDefinition>>;
  /** convex/auth.config.ts's default export, its variables still placeholders (src/engine/auth/config-variables.ts). */
  authConfig: unknown;
  /** Modules that failed to load, by module path, with the error. */
  moduleErrors: Record<string, string>;
  /** The app's component instances (convex.config.ts), `functions` being the app's own. */
  components?: Components;
}

export class DeploymentRuntime {
  readonly knobs: Knobs;
  readonly store: SqliteStore;
  readonly engine: Engine;
  /** Live sync: the protocol front, over the engine's shared query instances. */
  readonly sync: SyncFront<LocalSource>;
  readonly search: SearchIndexes;
  /** Vector indexes within their memory budget (src/vectors/). */
  readonly vectors: VectorIndexes;
  /** When and how much search compaction runs (src/search/compactor.ts). */
  readonly compaction: CompactionPolicy;
  readonly alarms: AlarmScheduler;
  /** Scheduled functions, run from the alarm (src/engine/scheduled-jobs.ts). */
  readonly scheduled: ScheduledJobs;
  /** Sessions' query sets and the records of mutations that must run once (socket retries, idempotency keys). */
  private readonly syncStorage: SqliteSyncStorage;
  /** Modules of the app that failed to load, by module path (status shows them; calls into them say why). */
  readonly moduleErrors: Record<string, string>;
  /** `convex/crons.ts`'s jobs and each component instance's own, run from the alarm (src/engine/cron-jobs.ts). */
  readonly crons: AllCronJobs;
  /** New sessions: admitted, waiting or refused; the waiting room's turns; shedding (src/sync/session-gate.ts). */
  readonly gate: SessionGate;
  /** HTTP function calls per client (`clientCallRate`): one client cannot fill the function lock's time. */
  readonly callsPerClient: ClientBuckets;
  readonly startedAt = Date.now();
  /** The tier this deployment runs on and whether its stamp agrees with the manifest (src/knobs/tiers.ts). */
  readonly tier: TierReport;
  /** The last minutes, sampled by the entry points (see metrics-ring.ts). */
  readonly metrics: MetricsRing;
  /** Sign-in: the app's providers, verified tokens, the local dev issuer (src/deployment/auth.ts). */
  readonly auth: DeploymentAuth;
  /** Sync shards' internal sessions (docs/SHARDS.md). */
  readonly shards: ShardSessions;
  /** Uploads through signed URLs, and the URL files are served at (docs/FILES.md); null without an R2 binding. */
  readonly uploads: Uploads | null;
  /** `process.env` of this deployment's functions, set by its operator (src/deployment/environment.ts). */
  readonly environment: DeploymentEnvironment;
  /** Where the deployment is reached: CONVEX_SITE_URL and CONVEX_CLOUD_URL for its functions (src/deployment/deployment-urls.ts). */
  readonly urls: DeploymentUrls;
  /** The operator's log: every run's console lines, outcome and duration, bounded (src/operations/log-ring.ts). */
  readonly logs: LogRing;
  /** Tails of the log open now, oldest first (at most `maxLogStreams`). */
  private readonly openLogStreams = new Set<LogTail>();
  /** Snapshot imports staged and applied (src/deployment/snapshot-import.ts, docs/SNAPSHOTS.md). */
  readonly imports: SnapshotImports;
  private readonly ctx: DurableObjectState;
  readonly now: () => number;

  constructor(
    ctx: DurableObjectState,
    { schema, functions, httpRouter, crons, componentCrons, authConfig, moduleErrors, components }: ResolvedApp,
    vars: TierStamp & Partial<Pick<Env, "SYNC_SHARDS" | "FILES">>,
    name: string,
    /** The object's clock (the wall clock; tests of the local configuration move it forward instead of sleeping). */
    now: () => number = Date.now,
  ) {
    this.ctx = ctx;
    this.now = now;
    migrate(ctx.storage);
    this.tier = tierReport(vars, name);
    // Said once per start, where an operator looking at the logs will see it.
    if (this.tier.mismatch.length > 0) console.warn(`deployment ${name}: tier mismatch (running as ${this.tier.name}): ${this.tier.mismatch.join("; ")}`);
    this.knobs = new Knobs(ctx.storage, TIERS[this.tier.name].knobs);
    this.moduleErrors = moduleErrors;
    this.search = new SearchIndexes({
      schema,
      storage: new SqliteSearchStorage(ctx.storage),
      budgetBytes: () => this.knobs.values.searchMemoryBudgetBytes,
      documents: (table) => documentsOf(ctx.storage.sql, table),
      onLogGrowth: (meta) => {
        if (this.compaction.dueAfterWrite(meta)) this.alarms.request(Date.now() + this.knobs.values.compactionDelayMs);
      },
    });
    this.compaction = new CompactionPolicy(this.search, () => this.knobs.values);
    this.vectors = new VectorIndexes({ schema, storage: new SqliteVectorStorage(ctx.storage.sql), knobs: () => this.knobs.values, now });
    this.store = new SqliteStore(ctx.storage, this.search, this.vectors);
    const backfill = backfillIndexes(ctx.storage, schema, this.search.storage, this.vectors, (table) => documentsOf(ctx.storage.sql, table));
    if (!backfill.firstStart && backfill.rebuilt.length + backfill.dropped.length > 0)
      console.log(`indexes rebuilt: ${backfill.rebuilt.join(", ") || "-"}; dropped: ${backfill.dropped.join(", ") || "-"}`);
    this.alarms = new AlarmScheduler(ctx.storage, {
      ping: () => {
        this.sync.pingIdle();
        // Waiting sessions are pinged too: their clients must not time out while they wait.
        return this.sync.sessionCount + this.sync.waitingCount > 0 ? this.now() + this.knobs.values.idlePingMs : null;
      },
      waitingRoom: () => this.gate.serve(),
      compaction: () => {
        if (!this.compaction.due()) return null;
        return this.compaction.run().moreWork ? Date.now() + this.knobs.values.compactionDelayMs : null;
      },
      scheduled: () => this.scheduled.runDue(),
      crons: () => this.crons.runDue(),
      uploads: () => this.uploads?.sweep() ?? null,
    });
    let files: FileStorage | null = null;
    if (vars.FILES) {
      const blobs = new R2BlobStore(vars.FILES, name);
      const uploads = new Uploads({ sql: ctx.storage.sql, blobs, knobs: () => this.knobs.values, now });
      files = new FileStorage({
        blobs,
        tokens: uploads.tokens,
        baseUrl: () => uploads.baseUrl,
        onDeleteFailed: (storageId, error) => console.error(`file ${storageId}: its row is deleted but its bytes could not be (orphaned in R2):`, error),
      });
      this.uploads = uploads;
    } else this.uploads = null;
    this.environment = new DeploymentEnvironment(ctx.storage, () => this.knobs.values);
    this.urls = new DeploymentUrls(ctx.storage.sql);
    const variables = functionVariables(() => this.environment.variables, this.urls);
    const workerVars = vars as unknown as Record<string, unknown>;
    this.auth = new DeploymentAuth(ctx.storage.sql, authConfig, () => this.knobs.values, {
      devIssuer: isLocalConfiguration(vars),
      variable: (name) => variables().get(name) ?? (typeof workerVars[name] === "string" ? workerVars[name] : undefined),
      serveOwn: (url) => this.serveOwn(url),
    });
    this.logs = new LogRing(() => ({ entries: this.knobs.values.logRingEntries, bytes: this.knobs.values.logRingBytes }));
    this.engine = new Engine({
      environment: variables,
      onRun: (run) => this.logs.add(run),
      schema,
      functions,
      httpRouter,
      store: this.store,
      files,
      limits: () => this.knobs.engineLimits(),
      yieldToEvents,
      functionsPerYield: () => this.knobs.values.functionsPerYield,
      exposeFunctionDetails: isLocalConfiguration(vars),
      moduleErrors,
      deploymentKey: this.auth.deploymentKey,
      ...(components ? { components } : {}),
    });
    this.imports = new SnapshotImports({
      storage: ctx.storage,
      schema,
      engine: this.engine,
      store: this.store,
      search: this.search,
      vectors: this.vectors,
      blobs: vars.FILES ? new R2BlobStore(vars.FILES, name) : null,
      knobs: () => this.knobs.values,
      now,
      yieldToEvents,
      restart: (reason) => ctx.abort(reason),
    });
    // An import an earlier run left half applied takes the function lock before anything else can ask for it.
    ctx.waitUntil(
      this.imports.resume().catch((error: unknown) => {
        console.error("a snapshot import left applying could not be finished:", error);
        ctx.abort(`a snapshot import left applying could not be finished: ${String(error)}`);
      }),
    );
    this.syncStorage = new SqliteSyncStorage(ctx.storage.sql, () => this.knobs.values.mutationResultRetentionMs);
    this.sync = localFront({
      engine: this.engine,
      storage: this.syncStorage,
      knobs: () => this.knobs.sync(),
      advanceTimestamp: (ts) => this.store.advanceTimestamp(ts),
      authenticate: (token) => this.auth.verify(token),
      now,
    });
    this.gate = new SessionGate({ front: this.sync, knobs: () => this.knobs.values, now, wake: (at) => this.alarms.request(at) });
    this.callsPerClient = new ClientBuckets({
      rate: () => this.knobs.values.clientCallRate,
      burst: () => this.knobs.values.clientCallBurst,
      what: "HTTP function calls",
      knobs: "clientCallRate/clientCallBurst",
    });
    this.shards = new ShardSessions(
      ctx.storage.sql,
      this.sync,
      (shard) => vars.SYNC_SHARDS!.getByName(shard) as unknown as ShardApi,
      () => this.knobs.values.maxPeerBatchBytes,
    );
    // Shards' internal sessions come back with the sockets' sessions, running nothing.
    const shardSessions = this.shards.restorable();
    this.sync.restore([...openSockets(ctx), ...shardSessions.open]);
    if (vars.SYNC_SHARDS) {
      shardSessions.adopt();
      this.shards.notifyKnownShards();
    }
    this.metrics = new MetricsRing((now) => {
      const k = this.knobs.values;
      const refresh = this.sync.scheduler.metrics;
      return {
        at: now,
        sessions: this.sync.sessionCount,
        maxSessions: k.maxSessions,
        waiting: this.sync.waitingCount,
        maxWaitingSessions: k.maxWaitingSessions,
        oldestWaitMs: this.sync.oldestWaitMs(),
        refreshQueue: refresh.queueDepth + refresh.overflow,
        refreshQueueLimit: k.refreshQueueLimit,
        queryExecutions: this.engine.counters.queryExecutions,
        invalidations: this.sync.counters.invalidations,
        transitions: this.sync.counters.transitionsSent,
        commits: this.store.commitCount(),
        admitted: this.gate.admission.admitted,
        refused: this.gate.admission.refused,
        searchMemoryBytes: this.search.memoryBytes,
        searchMemoryBudgetBytes: k.searchMemoryBudgetBytes,
        compactions: this.search.counters.compactions,
        signedIn: this.sync.signedInCount,
        tokensRefused: this.auth.verifier.counters.refused,
      };
    });
    // Job actions run on after the alarm that started them has returned; waitUntil keeps the object up meanwhile.
    const running = new RunningJobActions((ended) => ctx.waitUntil(ended));
    this.scheduled = new ScheduledJobs(this.engine, {
      maxPerRun: () => this.knobs.values.scheduledJobsPerAlarm,
      retentionMs: () => this.knobs.values.scheduledJobRetentionMs,
      running,
    });
    this.crons = new AllCronJobs(this.engine, { "": crons, ...componentCrons }, { running });
    // The jobs of this code's crons.ts, reconciled with the stored ones before their first alarm.
    void this.crons.reconcile().then(
      (first) => first !== null && this.alarms.request(first),
      (error: unknown) => console.error("cron jobs could not be reconciled with crons.ts:", error),
    );
    // Jobs left pending by an earlier run of this object (an eviction, a crash) keep their alarm.
    const due = this.scheduled.nextDue();
    if (due !== null) this.alarms.request(due);
    // Sessions restored as waiting are served again now (room may have freed while the object slept), and the
    // alarm is set for their next turn, whatever the alarm set before the sleep was.
    if (this.sync.waitingCount > 0) this.gate.pump();
    // What a commit sets off, after live sync has marked what it hit (its listener, registered with the
    // front above, runs first: subscribers' turns are queued before anything else reacts), in this order:
    this.engine.onCommit(({ writes }) => {
      // A commit that scheduled or canceled a job (the app's or a component's) moves the alarm to the next due one.
      if (writes.some((write) => isScheduledJobsIndex(write.index))) {
        const next = this.scheduled.nextDue();
        if (next !== null) this.alarms.request(next);
      }
      // Every commit is a moment worth sampling (cheap: at most once a second).
      this.metrics.maybeSample();
    });
  }

  /** The app's component instances with their tables' documents and sizes, pending jobs and crons (status, dashboard; component-status.ts). */
  componentStatuses(schema: Schema): ComponentStatus[] {
    return componentStatuses(this.ctx.storage.sql, this.engine.components, schema, this.knobs.values.statusTableRowsCounted);
  }

  /**
   * Runs a query, mutation or action over HTTP, as the caller its
   * `Authorization` header names. Function failures are answered, never
   * thrown; a refused token is `Unauthenticated`, and no function runs.
   *
   * `address` is the client's (src/sync/client-limits.ts). The caller (its
   * identity when signed in, else its address) is one owner of the function
   * lock whatever the number of its calls in flight, so N parallel calls get
   * one turn per round as a socket session does, not N; and past
   * `clientCallRate` it is refused before anything runs.
   */
  async run(
    kind: FunctionKind,
    path: string,
    encodedArgs: JSONValue,
    requestId: string,
    authorization: string | null = null,
    idempotencyKey: string | null = null,
    address: string | null = null,
  ): Promise<FunctionResponse> {
    // The Worker's request id goes with every function this request runs (the operator's log shows it).
    return withRequestId(requestId, () => this.runAs(kind, path, encodedArgs, requestId, authorization, idempotencyKey, address));
  }

  private async runAs(
    kind: FunctionKind,
    path: string,
    encodedArgs: JSONValue,
    requestId: string,
    authorization: string | null,
    idempotencyKey: string | null,
    address: string | null,
  ): Promise<FunctionResponse> {
    try {
      let identity: UserIdentity | null;
      try {
        identity = await this.auth.identityFromHeader(authorization);
      } catch (error) {
        // A refused token still costs its address a call, so a flood of bad tokens is limited like any other.
        const refused = error instanceof AuthenticationError && address !== null ? this.callsPerClient.take(clientKey(address, null), this.now()) : null;
        if (refused) return { status: "rateLimited", ...refused };
        throw error;
      }
      // No address: not a client's request through the Worker (a script, a test over RPC): one caller, not limited per client.
      const client = clientKey(address ?? "rpc", identity?.tokenIdentifier ?? null);
      const refused = address === null ? null : this.callsPerClient.take(client, this.now());
      if (refused) return { status: "rateLimited", ...refused };
      const args = jsonToConvex(encodedArgs);
      const owner = `http ${client}`;
      const caller = { identity, owner };
      if (kind === "mutation" && idempotencyKey !== null) return await this.runOnce(path, encodedArgs, args, idempotencyKey, identity, owner);
      const result =
        kind === "query"
          ? await this.engine.query(path, args, caller)
          : kind === "mutation"
            ? await this.engine.runMutation(path, args, undefined, caller)
            : await this.engine.runAction(path, args, caller);
      return successResponse(result.json, result.logLines);
    } catch (error) {
      if (error instanceof AuthenticationError) return { status: "unauthenticated", code: error.code, message: error.message };
      const failure = knownFunctionError(error);
      if (failure) return errorResponse(failure);
      // Anything else is our bug: log it with the request id, tell the caller only the id.
      console.error(`[${requestId}] ${kind} ${path} failed:`, error);
      return { status: "error", errorMessage: `[Request ID: ${requestId}] ${SERVER_ERROR}`, logLines: [] };
    }
  }

  /**
   * An HTTP mutation with an `Idempotency-Key`: the first run's answer is
   * recorded in its own commit and returned for every repeat of the same
   * function and arguments by the same caller within
   * `mutationResultRetentionMs`, so a client retrying after a lost response
   * writes once. Checked and run in one turn of the lock: two repeats sent at
   * once run once.
   */
  private async runOnce(
    path: string,
    encodedArgs: JSONValue,
    args: Value,
    idempotencyKey: string,
    identity: UserIdentity | null,
    owner: string,
  ): Promise<FunctionResponse> {
    if (idempotencyKey.length === 0 || idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
      return errorResponse(
        new FunctionError("BadRequest", `An Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters, got ${idempotencyKey.length}`),
      );
    }
    const key = recordKey("http", { sessionId: idempotencyKey, requestId: 0 }, identity?.tokenIdentifier ?? null);
    const fingerprint = await mutationFingerprint(path, encodedArgs);
    return this.engine.exclusive(async () => {
      const previous = earlierRun(this.syncStorage, key, fingerprint);
      if (previous?.kind === "conflict")
        return errorResponse(
          new FunctionError("BadRequest", "This Idempotency-Key was already used for a different mutation; a repeat must send the same function and arguments"),
        );
      if (previous) return successResponse(JSON.parse(previous.record.resultJson) as JSONValue, []);
      const fn = this.engine.resolve(path, "mutation");
      const record = ({ text, ts }: { text: string; ts: bigint }) =>
        this.syncStorage.recordMutationResult(key.sessionId, key.requestId, { resultJson: text, ts, fingerprint }, this.now());
      const result = await this.engine.executeMutation(fn, args, record, undefined, identity);
      return successResponse(result.json, result.logLines);
    }, owner);
  }

  /**
   * A GET of a URL under this deployment's CONVEX_SITE_URL, answered by its own HTTP actions (the path as the
   * Worker would hand it to them), or of its own keys at CONVEX_CLOUD_URL's `/.well-known/jwks.json`; null for
   * any other URL. Sign-in reads Convex Auth's keys this way.
   */
  serveOwn(url: string): Promise<Response> | null {
    if (this.urls.cloudUrl !== null && url === `${this.urls.cloudUrl}${JWKS_PATH}`) return Promise.resolve(Response.json(this.auth.deploymentKey.jwks()));
    const site = this.urls.siteUrl;
    if (site === null || !url.startsWith(`${site}/`)) return null;
    const own = new URL(url);
    own.pathname = own.pathname.slice(new URL(site).pathname.length);
    return this.engine
      .runHttpAction(new Request(own, { headers: { accept: "application/json" } }))
      .then((response) => response ?? new Response(`No HttpAction routed for ${own.pathname}`, { status: 404 }));
  }

  knobReport(): { knobs: KnobReport[]; history: KnobChange[] } {
    return { knobs: this.knobs.report(), history: this.knobs.history() };
  }

  /** Applies knob changes; a bad name or value fails the whole request with a message naming it. */
  setKnobs(changes: Record<string, unknown>): { ok: true; changes: KnobChange[] } | { ok: false; error: string } {
    try {
      const applied = this.knobs.set(changes);
      for (const change of applied) console.log(`knob ${change.name}: ${change.old} -> ${change.new}`);
      this.gate.shedExcess();
      this.gate.pump();
      // A lowered logRingEntries or logRingBytes applies now, not at the next run.
      this.logs.trim();
      // Shards hold their share of the limits: a raised cap lets their waiting clients in now.
      if (applied.length > 0) this.shards.configChanged((name) => shardConfig(this.knobs.values, shardName(name).index));
      return { ok: true, changes: applied };
    } catch (error) {
      if (error instanceof KnobError) return { ok: false, error: error.message };
      throw error;
    }
  }

  /** Sets or removes one of the deployment's environment variables; a bad name or value is refused with why. */
  changeEnvironment(name: string, value: unknown, actor: string): { ok: true; change: EnvironmentChange | null } | { ok: false; error: string } {
    try {
      const change = value === undefined ? this.environment.remove(name, actor, this.now()) : this.environment.set(name, value, actor, this.now());
      if (change) {
        console.log(`environment variable ${name} ${change.action === "set" ? "set" : "removed"} by ${change.actor}`);
        // No read-set records `process.env`: every cached answer and live query may now be wrong.
        this.sync.source.invalidateAll();
      }
      return { ok: true, change };
    } catch (error) {
      if (error instanceof EnvironmentError) return { ok: false, error: error.message };
      throw error;
    }
  }

  /** Tails of the log open now. */
  get logStreamsOpen(): number {
    return this.openLogStreams.size;
  }

  /**
   * A tail of the operator's log (`/api/admin/logs`): NDJSON, each open for
   * at most `logStreamMaxMs`. At most `maxLogStreams` at once: past it the
   * oldest ends ("replaced"), since a reader that went away (a closed
   * dashboard) is not known to be gone until something is written to it.
   */
  logStream(request: LogStreamRequest): Response {
    const k = this.knobs.values;
    for (const oldest of this.openLogStreams) {
      if (this.openLogStreams.size < k.maxLogStreams) break;
      oldest.close("replaced");
    }
    const tail: LogTail = logStream(this.logs, request, { maxMs: k.logStreamMaxMs, onEnd: () => this.openLogStreams.delete(tail) });
    this.openLogStreams.add(tail);
    return new Response(tail.body, { headers: { "Content-Type": "application/x-ndjson; charset=utf-8", "Cache-Control": "no-store" } });
  }

  /** Files in `_storage` and their bytes (summed in SQLite over the table's rows: an operator's read, not a hot path). */
  fileTotals(): { count: number; bytes: number } {
    const row = this.ctx.storage.sql
      .exec<{ count: number; bytes: number | null }>(
        "SELECT count(*) AS count, sum(json_extract(d.json, '$.size')) AS bytes FROM index_entries e JOIN documents d ON d.id = e.doc_id WHERE e.index_name = '_storage.by_id'",
      )
      .one();
    return { count: row.count, bytes: row.bytes ?? 0 };
  }

  /** Storage used by this deployment, in bytes. */
  get storageBytes(): number {
    return this.ctx.storage.sql.databaseSize;
  }
}
