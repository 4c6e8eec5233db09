/**
 * The deployment Durable Object: one per deployment name. This file is its
 * shell: whether the deployment exists, and the runtime's entry points
 * (RPC from the Worker, socket events, the alarm) handed to the parts that
 * do the work (`runtime.ts`).
 *
 * A deployment exists once its storage was initialised: on first use of a
 * name declared in configuration (`DECLARED_DEPLOYMENTS`), or when an
 * operator creates it (`create()`, behind the admin key). For any other name
 * the object starts nothing and writes nothing, so a stranger cannot make
 * databases by naming them; and the Worker does not even address it: which
 * names exist is the directory's to say (src/deployment/directory.ts).
 *
 * Transactions (see src/engine/engine.ts): functions run one at a time through
 * the engine's fair lock; a mutation writes into an in-memory overlay that its
 * reads see, and commits it with its index keys in one `transactionSync`.
 *
 * Hibernation: a session's identity and versions live on its socket's
 * attachment, its query set and the shared query instances' read-sets in
 * SQLite. Starting rebuilds the subscription index from them without running
 * a query; idle Pings come from an alarm, never from timers.
 */
import { DurableObject } from "cloudflare:workers";
import {
  AuthenticationError,
  Components,
  componentSchemas,
  fileMetadata,
  findCrons,
  findHttpRouter,
  loadApp,
  registerModules,
  Schema,
  STORAGE_TABLE,
  tableOfId,
  type FileMetadata,
  type GeneratedApp,
  type JSONValue,
  type VerifiedToken,
  wallClock,
} from "../engine/index.ts";
import { shardConfig, shardName, type ShardConfig } from "./shard-sessions.ts";
import type { FunctionResponse } from "../protocol/http.ts";
import type { SyncSession } from "../sync/session.ts";
import type { CompactionReport } from "../search/compactor.ts";
import type { KnobChange, KnobReport } from "./knobs.ts";
import { storageInitialized } from "./migrations.ts";
import { DeploymentRuntime, type FunctionKind, type ResolvedApp } from "./runtime.ts";
import {
  acceptBareSocket,
  answerClose,
  isWebSocketUpgrade,
  newConnectionId,
  refusalResponse,
  socketConnection,
  SocketSessions,
  upgradeRequiredResponse,
} from "./sockets.ts";
import { deploymentStatus, health, type DeploymentHealth, type DeploymentStatus } from "./status.ts";
import type { MetricsSample } from "../operations/metrics-ring.ts";
import { isDeclaredDeployment, isLocalConfiguration, type Env } from "../env.ts";
import { clientAddress } from "../sync/client-limits.ts";
import { directoryStub } from "./directory.ts";
import type { UploadedFile, UploadStart } from "./uploads.ts";
import type { EnvironmentChange } from "./environment.ts";
import { parseLogStreamRequest } from "../operations/log-stream.ts";
import { exportPage, exportTables, type ExportPage } from "./snapshot-export.ts";
import type { ImportAnswer, ImportReport } from "./snapshot-import.ts";
import type { ImportOptions } from "../snapshots/layout.ts";
import type { LineEncoding } from "../snapshots/documents.ts";
import { ImportProblem } from "../snapshots/import-problem.ts";

export type { FunctionKind, DeploymentHealth, DeploymentStatus };

/**
 * The deployment object's RPC surface. Typed by hand: the inferred stub type of
 * a class with recursive JSON types is too deep for the compiler.
 */
export function deploymentStub(env: Env, name: string): DeploymentApi {
  return env.DEPLOYMENTS.getByName(name) as unknown as DeploymentApi;
}

/** What the Worker calls on a deployment object over RPC. */
export interface DeploymentApi {
  /** Whether the deployment exists (creates nothing). */
  exists(): Promise<boolean>;
  /** Creates the deployment if it does not exist (operators only: the Worker guards it with the admin key). */
  create(): Promise<{ created: boolean }>;
  /** `idempotencyKey`: a mutation's `Idempotency-Key` header (a repeat gets the first run's answer). */
  /** `address`: the client's (CF-Connecting-IP; "local" without one), whose calls are limited and served as one caller. */
  run(
    kind: FunctionKind,
    path: string,
    encodedArgs: JSONValue,
    requestId: string,
    authorization?: string | null,
    idempotencyKey?: string | null,
    address?: string | null,
  ): Promise<FunctionResponse>;
  /** A token from the local development issuer (the Worker allows it only locally, see `devIssuerAllowed`). */
  mintDevToken(name: string): Promise<{ token: string; expiresAt: number }>;
  /** The deployment's public keys, for `/.well-known/jwks.json`. */
  jwks(): Promise<unknown>;
  /** Local configuration only (tests): moves the object's clock forward instead of sleeping. */
  advanceClock(ms: number): Promise<void>;
  /** How many sync shards hold this deployment's sockets (knob syncShards; 1: this object itself). */
  syncShards(): Promise<number>;
  /** Sync shards (docs/SHARDS.md): a new internal session for shard `name`, and the knobs it serves clients with. */
  openShardSession(name: string): Promise<{ connectionId: string; config: ShardConfig }>;
  /** A shard's client observed a newer timestamp (its Connect): moves the clock past it; the shard is pushed a Transition at it. */
  advanceShardTimestamp(connectionId: string, ts: string): Promise<void>;
  /** A shard's frames for its internal session, in order; false if this object no longer has it. */
  shardFrames(connectionId: string, frames: string[]): Promise<boolean>;
  /** Checks a token for a shard's client (the providers' caches and the dev issuer's key live here). */
  verifyToken(token: string): Promise<{ ok: true; verified: VerifiedToken } | { ok: false; code: AuthenticationError["code"]; message: string }>;
  health(): Promise<DeploymentHealth>;
  status(): Promise<DeploymentStatus>;
  compactNow(): Promise<CompactionReport>;
  /** Per-second samples of the last minutes, oldest first (the dashboard's charts). */
  metricsHistory(): Promise<MetricsSample[]>;
  knobReport(): Promise<{ knobs: KnobReport[]; history: KnobChange[] }>;
  /** Applies knob changes; a bad name or value fails the whole request with a message naming it. */
  setKnobs(changes: Record<string, unknown>): Promise<{ ok: true; changes: KnobChange[] } | { ok: false; error: string }>;
  fetch(request: Request): Promise<Response>;
  /** The deployment's environment variables: names and when each was set, and the audit (no values). */
  environmentList(): Promise<{ variables: { name: string; updatedAt: number }[]; history: EnvironmentChange[] }>;
  /** One variable's value (the only call that shows one), or null when the deployment does not set it. */
  environmentValue(name: string): Promise<string | null>;
  /** Sets `name` to `value`, or removes it (`value` undefined); `actor` is who the caller says they are, for the audit. */
  changeEnvironment(name: string, value: unknown, actor: string): Promise<{ ok: true; change: EnvironmentChange | null } | { ok: false; error: string }>;
  /** A tail of the operator's log as NDJSON (`?since=&function=&level=&follow=`; src/operations/log-stream.ts), or 400 with why; past `maxLogStreams` the oldest tail is replaced. */
  logs(query: string): Promise<Response>;
  /** The Worker says where this deployment is reached (`https://host` or `https://host/d/<name>`), once per isolate. */
  noteBaseUrl(url: string): Promise<void>;
  /** File storage (docs/FILES.md): checks an upload URL's token and the declared size; the id to store the bytes under. */
  beginUpload(token: string, declaredBytes: number): Promise<UploadStart>;
  /** The bytes are in R2: records the file (false: the upload was abandoned meanwhile, and its bytes deleted). */
  finishUpload(storageId: string, file: UploadedFile): Promise<boolean>;
  /** The bytes could not be stored: forgets the upload and deletes whatever reached R2. */
  abortUpload(storageId: string): Promise<void>;
  /** A file's metadata as of the latest commit, or null (no such file, or an id that is not a file's). */
  fileMetadata(storageId: string): Promise<FileMetadata | null>;
  /** Snapshot export (docs/SNAPSHOTS.md): the tables with documents, then each one's pages (at most snapshotBatchBytes). */
  exportTables(): Promise<{ name: string; documents: number }[]>;
  exportPage(table: string, after: ArrayBuffer | null): Promise<ExportPage>;
  /** Snapshot import: staged batch by batch, applied by finishImport, or forgotten (its files deleted) by abortImport. */
  beginImport(options: ImportOptions): Promise<{ importId: string; batchBytes: number; maxLineBytes: number }>;
  stageImport(importId: string, file: string, table: string, encoding: LineEncoding, lines: { line: number; text: string }[]): Promise<ImportAnswer<object>>;
  importFileTarget(importId: string, sourceId: string, entry: string): Promise<ImportAnswer<{ storageId: string; size: number }>>;
  importFileStored(importId: string, sourceId: string, sha256: string, size: number): Promise<void>;
  finishImport(importId: string): Promise<ImportAnswer<{ report: ImportReport }>>;
  abortImport(importId: string): Promise<void>;
}

/** Thrown by every entry point of a deployment that does not exist (the Worker answers 404 before it gets here). */
/** Marks a request the Worker forwards to the app's HTTP actions (its URL already stripped of the prefix). */
export const HTTP_ACTION_HEADER = "x-calmsync-http-action";

class DeploymentNotFoundError extends Error {
  override name = "DeploymentNotFoundError";
}

export function defineDeployment(app: GeneratedApp) {
  // Resolved once per isolate, on the first object's start: every deployment object in it serves the same app.
  const schema = new Schema(app.schema, componentSchemas(app));
  let resolving: Promise<ResolvedApp> | null = null;
  const resolveApp = () =>
    (resolving ??= loadApp(app).then((loaded) => {
      const components = Components.load(registerModules(loaded.modules), loaded.components);
      return {
        schema,
        functions: components.root.functions,
        components,
        httpRouter: findHttpRouter(loaded.modules),
        crons: findCrons(loaded.modules),
        componentCrons: Object.fromEntries(loaded.components.map(({ path, modules }) => [path, findCrons(modules)])),
        authConfig: loaded.authConfig,
        moduleErrors: loaded.moduleErrors,
      };
    }));

  return class Deployment extends DurableObject<Env> implements DeploymentApi {
    private started: DeploymentRuntime | null = null;
    /** The app's modules, loaded before any event is delivered (see the constructor). */
    private resolved: ResolvedApp | null = null;
    private readonly sockets = new SocketSessions();
    /** Local tests only: how far this object's clock is moved past the wall clock (see `advanceClock`). */
    private clockAheadMs = 0;

    constructor(ctx: DurableObjectState, env: Env) {
      super(ctx, env);
      // The one initialisation path: the app's modules are loaded (no event is delivered until then), and an
      // existing deployment (or a declared one) starts here, whole.
      void ctx.blockConcurrencyWhile(async () => {
        this.resolved = await resolveApp();
        const existed = storageInitialized(ctx.storage.sql);
        if (existed || isDeclaredDeployment(env, this.name)) this.start();
        // A deployment created before the directory existed records itself there when it next starts (an alarm or
        // a socket wakes it), so the Worker finds it again; idle ones an operator re-creates (README: Deployments).
        if (existed && !isDeclaredDeployment(env, this.name) && env.DIRECTORY) ctx.waitUntil(directoryStub(env).record(this.name));
      });
      // Lets clients that send the literal "ping" keep alive without waking us.
      ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    }

    get name(): string {
      return this.ctx.id.name ?? this.ctx.id.toString();
    }

    private start(): DeploymentRuntime {
      // The unwrapped clock: `Date.now` inside a function run tells the run it read the clock (the query cache's rule), and the object's own reads of it, many per commit, need not ask which run they are in.
      return (this.started ??= new DeploymentRuntime(this.ctx, this.resolved!, this.env, this.name, () => wallClock() + this.clockAheadMs));
    }

    /** The running deployment; throws for one that does not exist. */
    get runtime(): DeploymentRuntime {
      if (!this.started) throw this.notFound();
      return this.started;
    }

    private notFound(): DeploymentNotFoundError {
      return new DeploymentNotFoundError(`Deployment "${this.name}" does not exist`);
    }

    async exists(): Promise<boolean> {
      return this.started !== null;
    }

    async create(): Promise<{ created: boolean }> {
      const created = this.started === null;
      this.start();
      if (created) console.log(`deployment ${this.name} created`);
      return { created };
    }

    /** WebSocket upgrades for `/api/<clientVersion>/sync` (the Worker routes only those here). */
    override async fetch(request: Request): Promise<Response> {
      if (request.headers.has(HTTP_ACTION_HEADER)) {
        if (!this.started) return Response.json({ code: "DeploymentNotFound", message: this.notFound().message }, { status: 404 });
        const forwarded = new Request(request);
        forwarded.headers.delete(HTTP_ACTION_HEADER);
        const authorization = forwarded.headers.get("Authorization");
        const response = await this.started.engine.runHttpAction(forwarded, () => this.started!.auth.identityFromHeader(authorization));
        return response ?? new Response(`No HttpAction routed for ${new URL(request.url).pathname}`, { status: 404 });
      }
      if (!isWebSocketUpgrade(request)) return upgradeRequiredResponse();
      if (!this.started) return Response.json({ code: "DeploymentNotFound", message: this.notFound().message }, { status: 404 });
      const bare = acceptBareSocket(this.ctx, this.env, request, this.sockets);
      if (bare) return bare;
      const runtime = this.started;
      const { sync, gate, alarms, knobs, metrics } = runtime;
      metrics.maybeSample();
      const door = gate.accept(clientAddress(request.headers));
      if ("refusal" in door) return refusalResponse(door.refusal);
      const { 0: client, 1: server } = new WebSocketPair();
      this.ctx.acceptWebSocket(server);
      this.sockets.set(server, sync.open(socketConnection(server), newConnectionId(), door.waiting));
      alarms.request(runtime.now() + knobs.values.idlePingMs);
      if (door.waiting) gate.pump();
      return new Response(null, { status: 101, webSocket: client });
    }

    override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
      const session = this.sessionOf(ws);
      if (!session) return;
      this.runtime.metrics.maybeSample();
      await this.runtime.sync.receive(session, message);
    }

    override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
      const session = this.sessionOf(ws);
      if (session) this.closed(session);
      answerClose(ws, code, reason);
    }

    override async webSocketError(ws: WebSocket): Promise<void> {
      const session = this.sessionOf(ws);
      if (session) this.closed(session);
    }

    /** A socket went away: forget its session; its place may let a waiting one in. */
    private closed(session: SyncSession): void {
      this.runtime.sync.forget(session);
      this.runtime.gate.pump();
    }

    override async alarm(): Promise<void> {
      if (!this.started) return;
      this.started.metrics.maybeSample();
      await this.started.alarms.run();
    }

    /** The session of a socket: from memory, or after a wake from its attachment (once). */
    private sessionOf(ws: WebSocket): SyncSession | undefined {
      return this.started ? this.sockets.of(ws, this.started.sync) : undefined;
    }

    async run(
      kind: FunctionKind,
      path: string,
      encodedArgs: JSONValue,
      requestId: string,
      authorization: string | null = null,
      idempotencyKey: string | null = null,
      address: string | null = null,
    ): Promise<FunctionResponse> {
      this.runtime.metrics.maybeSample();
      return this.runtime.run(kind, path, encodedArgs, requestId, authorization, idempotencyKey, address);
    }

    /**
     * Local configuration only (tests): moves this object's clock forward, so a
     * test of something that waits (the waiting room's time-out) advances time
     * instead of sleeping. Refused anywhere else.
     */
    async advanceClock(ms: number): Promise<void> {
      if (!isLocalConfiguration(this.env)) throw new Error("Moving the clock is a local test hook");
      this.clockAheadMs += ms;
    }

    async syncShards(): Promise<number> {
      return this.runtime.knobs.values.syncShards;
    }

    async openShardSession(name: string): Promise<{ connectionId: string; config: ShardConfig }> {
      return { connectionId: this.runtime.shards.open(name), config: shardConfig(this.runtime.knobs.values, shardName(name).index) };
    }

    async advanceShardTimestamp(connectionId: string, ts: string): Promise<void> {
      const peer = this.runtime.shards.peer(connectionId);
      if (!peer) return;
      this.runtime.store.advanceTimestamp(BigInt(ts));
      this.runtime.sync.owe(peer);
    }

    async shardFrames(connectionId: string, frames: string[]): Promise<boolean> {
      return this.runtime.shards.receive(connectionId, frames);
    }

    async verifyToken(token: string): Promise<{ ok: true; verified: VerifiedToken } | { ok: false; code: AuthenticationError["code"]; message: string }> {
      try {
        return { ok: true, verified: await this.runtime.auth.verify(token) };
      } catch (error) {
        if (error instanceof AuthenticationError) return { ok: false, code: error.code, message: error.message };
        throw error;
      }
    }

    /** The deployment's public keys (`/.well-known/jwks.json`): what `ctx.auth.signJwt` signed is verified with them. */
    async jwks(): Promise<unknown> {
      return this.runtime.auth.deploymentKey.jwks();
    }

    async mintDevToken(name: string): Promise<{ token: string; expiresAt: number }> {
      const issuer = this.runtime.auth.devIssuer;
      if (!issuer) throw new Error("The development issuer exists only in the local configuration (CALMSYNC_ENV=dev)");
      return issuer.mint(name, this.runtime.knobs.values.devTokenTtlMs);
    }

    async metricsHistory(): Promise<MetricsSample[]> {
      this.runtime.metrics.maybeSample();
      return this.runtime.metrics.history();
    }

    async health(): Promise<DeploymentHealth> {
      if (!this.started) throw this.notFound();
      return health(this.name);
    }

    async status(): Promise<DeploymentStatus> {
      return deploymentStatus(this.name, this.runtime, schema, await this.runtime.shards.status(Date.now()));
    }

    /** Compacts every search partition with a non-empty log now. Synchronous, so no commit interleaves. */
    async compactNow(): Promise<CompactionReport> {
      return this.runtime.compaction.run(true);
    }

    async knobReport(): Promise<{ knobs: KnobReport[]; history: KnobChange[] }> {
      return this.runtime.knobReport();
    }

    async noteBaseUrl(url: string): Promise<void> {
      this.runtime.urls.note(url);
      this.runtime.uploads?.noteBaseUrl(url);
    }

    private get uploads() {
      const uploads = this.runtime.uploads;
      if (!uploads) throw new Error("File storage needs the R2 binding FILES (wrangler.toml)");
      return uploads;
    }

    async beginUpload(token: string, declaredBytes: number): Promise<UploadStart> {
      const started = await this.uploads.begin(token, declaredBytes);
      if (started.ok) this.runtime.alarms.request(this.runtime.now() + this.runtime.knobs.values.uploadTimeoutMs);
      return started;
    }

    async finishUpload(storageId: string, file: UploadedFile): Promise<boolean> {
      return this.uploads.finish(this.runtime.engine, storageId, file);
    }

    async abortUpload(storageId: string): Promise<void> {
      await this.uploads.abort(storageId);
    }

    async fileMetadata(storageId: string): Promise<FileMetadata | null> {
      if (tableOfId(storageId) !== STORAGE_TABLE) return null;
      return fileMetadata(this.runtime.engine.readCommitted(storageId));
    }

    async setKnobs(changes: Record<string, unknown>): Promise<{ ok: true; changes: KnobChange[] } | { ok: false; error: string }> {
      return this.runtime.setKnobs(changes);
    }

    async environmentList(): Promise<{ variables: { name: string; updatedAt: number }[]; history: EnvironmentChange[] }> {
      return { variables: this.runtime.environment.list(), history: this.runtime.environment.history() };
    }

    async environmentValue(name: string): Promise<string | null> {
      return this.runtime.environment.value(name);
    }

    async changeEnvironment(
      name: string,
      value: unknown,
      actor: string,
    ): Promise<{ ok: true; change: EnvironmentChange | null } | { ok: false; error: string }> {
      return this.runtime.changeEnvironment(name, value, actor);
    }

    async logs(query: string): Promise<Response> {
      const request = parseLogStreamRequest(new URLSearchParams(query));
      if ("error" in request) return Response.json({ code: "BadLogQuery", message: request.error }, { status: 400 });
      return this.runtime.logStream(request);
    }

    // In the function lock, as a query: never between two transactions of an import being applied.
    async exportTables(): Promise<{ name: string; documents: number }[]> {
      return this.runtime.engine.exclusive(async () => exportTables(this.ctx.storage.sql));
    }

    async exportPage(table: string, after: ArrayBuffer | null): Promise<ExportPage> {
      const runtime = this.runtime;
      return runtime.engine.exclusive(async () => exportPage(this.ctx.storage.sql, table, after, runtime.knobs.values.snapshotBatchBytes));
    }

    async beginImport(options: ImportOptions): Promise<{ importId: string; batchBytes: number; maxLineBytes: number }> {
      return this.runtime.imports.begin(options);
    }

    async stageImport(
      importId: string,
      file: string,
      table: string,
      encoding: LineEncoding,
      lines: { line: number; text: string }[],
    ): Promise<ImportAnswer<object>> {
      return importAnswer(() => (this.runtime.imports.stage(importId, file, table, encoding, lines), {}));
    }

    async importFileTarget(importId: string, sourceId: string, entry: string): Promise<ImportAnswer<{ storageId: string; size: number }>> {
      return importAnswer(() => this.runtime.imports.fileTarget(importId, sourceId, entry));
    }

    async importFileStored(importId: string, sourceId: string, sha256: string, size: number): Promise<void> {
      this.runtime.imports.fileStored(importId, sourceId, sha256, size);
    }

    async finishImport(importId: string): Promise<ImportAnswer<{ report: ImportReport }>> {
      return importAnswer(async () => ({ report: await this.runtime.imports.finish(importId) }));
    }

    async abortImport(importId: string): Promise<void> {
      await this.runtime.imports.abort(importId);
    }
  };
}

/** An import step's outcome; a problem with the snapshot is answered (its message names the file and line), anything else thrown. */
async function importAnswer<T extends object>(step: () => T | Promise<T>): Promise<ImportAnswer<T>> {
  try {
    return { ok: true, ...(await step()) };
  } catch (error) {
    if (error instanceof ImportProblem) return { ok: false, error: error.message };
    throw error;
  }
}

export type DeploymentClass = ReturnType<typeof defineDeployment>;
export type Deployment = InstanceType<DeploymentClass>;
