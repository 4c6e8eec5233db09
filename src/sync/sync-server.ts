/**
 * Live sync: sessions speaking the Convex sync protocol, shared query
 * instances, precise invalidation and the refresh path.
 *
 * - Sessions share a **query instance** per (function, args)
 *   (`query-instances.ts`): it runs once per timestamp however many sessions
 *   watch it, and the subscription index holds it once.
 * - After a commit, the subscription index names the instances whose read-sets
 *   contain a written key; they become dirty and their sessions are scheduled.
 *   Nothing else (restart, hibernation, a no-op mutation, search maintenance)
 *   dirties anything.
 * - A session's turn brings it to the latest timestamp: dirty instances it
 *   needs re-run (once, shared), results whose hash differs from what the
 *   session last got become modifications, and one Transition goes out,
 *   starting exactly at the version the client holds.
 *
 * Every step that touches the database runs inside `engine.exclusive()`, so a
 * turn sees one snapshot and transitions are ordered after the mutation
 * responses that caused them.
 */
import { FunctionError, ValueError, convexToJson, jsonToConvex, type Engine, type IndexWrite, type SearchWrite } from "../engine/index.ts";
import {
  PING,
  ProtocolError,
  actionFailure,
  authError,
  fatalError,
  mutationFailure,
  mutationSuccess,
  parseClientMessage,
  queryFailed,
  queryRemoved,
  queryUpdated,
  transition,
  type ClientMessage,
  type EncodedModification,
  type StateVersion,
} from "../protocol/sync.ts";
import { SyncSession, type Connection, type SessionAttachment } from "./session.ts";
import type { SyncStorage } from "./storage.ts";
import { RefreshScheduler, type RefreshKnobs, type TurnResult } from "./refresh-scheduler.ts";
import { TokenBucket } from "./token-bucket.ts";
import { QueryInstances } from "./query-instances.ts";

/** The knobs live sync reads (from the deployment's knob table). */
export interface SyncKnobs extends RefreshKnobs {
  maxFrameBytes: number;
  idlePingMs: number;
  maxClockAheadMs: number;
  /** Executions per second for queries new to a session (the replay of a reconnecting client's query set). */
  resubscribeRate: number;
  resubscribeBurst: number;
  /** Memory for shared encoded results (LRU beyond it; an evicted one is re-run when needed). */
  queryResultCacheMB: number;
  /** Queries one session may hold. */
  maxQueriesPerSession: number;
  /** Mutations one session may have waiting to run. */
  maxPendingMutationsPerSession: number;
}

export interface SyncCounters {
  /** Instance re-runs caused by commits. */
  invalidations: number;
  transitionsSent: number;
  protocolErrors: number;
}

/** Close codes: 1008 policy violation (protocol error), 1011 internal error. */
const CLOSE_PROTOCOL_ERROR = 1008;
const CLOSE_INTERNAL_ERROR = 1011;

export interface SyncServerOptions {
  engine: Engine;
  storage: SyncStorage;
  knobs: () => SyncKnobs;
  now?: () => number;
  log?: (line: string) => void;
  /** Moves the deployment's timestamp forward without a commit (see Connect). */
  advanceTimestamp: (ts: bigint) => void;
  /** Yields between refresh slices (default: a timer). */
  pause?: (ms: number) => Promise<void>;
}

export class SyncServer {
  readonly counters: SyncCounters = { invalidations: 0, transitionsSent: 0, protocolErrors: 0 };
  private readonly sessions = new Map<string, SyncSession>();
  readonly instances: QueryInstances;
  readonly scheduler: RefreshScheduler;
  /** Sessions whose attachment lags behind the version last sent (saved once the refresh queue drains). */
  private readonly unsavedVersions = new Set<SyncSession>();
  /** Whether query sets and instances have been loaded from storage since this object started. */
  private loaded = false;
  /** Budget for running queries that are new to a session (reconnect replays). */
  private readonly resubscribe: TokenBucket;
  private readonly engine: Engine;
  private readonly storage: SyncStorage;
  private readonly knobs: () => SyncKnobs;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly advanceTimestamp: (ts: bigint) => void;

  constructor(options: SyncServerOptions) {
    this.engine = options.engine;
    this.storage = options.storage;
    this.knobs = options.knobs;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? ((line) => console.log(line));
    this.advanceTimestamp = options.advanceTimestamp;
    this.scheduler = new RefreshScheduler({
      knobs: this.knobs,
      exclusive: (fn) => this.engine.exclusive(fn),
      turn: (session) => this.turn(session),
      onError: (session, error) => {
        // Our bug, not the client's: drop this session (it reconnects with backoff) and serve the rest.
        this.log(`[${session.connectionId}] refresh failed: ${error instanceof Error ? error.stack : String(error)}`);
        session.connection.close(CLOSE_INTERNAL_ERROR, "InternalServerError");
        this.close(session);
      },
      now: this.now,
      pause: options.pause ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      onIdle: () => this.saveVersions(),
    });
    this.instances = new QueryInstances(this.engine, this.storage, () => this.knobs().queryResultCacheMB * 1_048_576);
    this.resubscribe = new TokenBucket(
      () => this.knobs().resubscribeRate,
      () => this.knobs().resubscribeBurst,
      this.now(),
    );
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  get subscriptionCount(): number {
    this.ensureLoaded();
    let n = 0;
    for (const session of this.sessions.values()) n += session.queries.size;
    return n;
  }

  get instanceCount(): number {
    this.ensureLoaded();
    return this.instances.size;
  }

  /**
   * After a wake: sessions from the sockets still open. Their query sets and
   * the instances (read-sets, not results) come from storage when first
   * needed. Runs no query and invalidates nothing.
   */
  restore(open: { connection: Connection; attachment: SessionAttachment }[]): void {
    for (const { connection, attachment } of open) this.sessions.set(attachment.connectionId, new SyncSession(connection, attachment));
  }

  /**
   * Loads query sets and instances on first need after a wake, not in the
   * constructor: an alarm that only sends pings (every `idlePingMs` while
   * sockets are open) then costs a walk over the sockets, not a reload of
   * every subscription.
   */
  private ensureLoaded(): void {
    if (this.loaded) return;
    this.loaded = true;
    this.instances.load(this.sessions);
  }

  open(connection: Connection, connectionId: string): SyncSession {
    const attachment = SyncSession.fresh(connectionId);
    connection.saveAttachment(attachment);
    const session = new SyncSession(connection, attachment);
    this.sessions.set(connectionId, session);
    return session;
  }

  /** The `count` most recently opened sessions, newest first. */
  newestSessions(count: number): SyncSession[] {
    this.ensureLoaded();
    return [...this.sessions.values()].reverse().slice(0, count);
  }

  session(connectionId: string): SyncSession | undefined {
    return this.sessions.get(connectionId);
  }

  /** Handles one frame. Protocol errors close this socket only, with a FatalError first. */
  async receive(session: SyncSession, frame: string | ArrayBuffer): Promise<void> {
    this.ensureLoaded();
    let message: ClientMessage;
    try {
      message = parseClientMessage(frame, this.knobs().maxFrameBytes);
      if (message.type !== "Connect" && session.sessionId === null) throw new ProtocolError(`${message.type} before Connect`);
      await this.handle(session, message);
    } catch (error) {
      if (error instanceof ProtocolError) return this.fail(session, error.message);
      // Our bug or a storage failure, not the client's fault: close this socket as an
      // internal error (the client retries with backoff); every other session goes on.
      this.log(`[${session.connectionId}] session=${session.sessionId ?? "-"} failed: ${error instanceof Error ? error.stack : String(error)}`);
      session.connection.close(CLOSE_INTERNAL_ERROR, "InternalServerError");
      this.close(session);
    }
  }

  private async handle(session: SyncSession, message: ClientMessage): Promise<void> {
    switch (message.type) {
      case "Connect":
        return this.connect(session, message);
      case "ModifyQuerySet":
        return this.modifyQuerySet(session, message);
      case "Mutation":
        return this.mutation(session, message);
      case "Authenticate":
        if (message.baseVersion !== session.receivedIdentity) {
          throw new ProtocolError(`Authenticate.baseVersion ${message.baseVersion} does not match the identity version ${session.receivedIdentity}`);
        }
        if (message.tokenType !== "None") {
          session.send(authError(`calmsync does not support ${message.tokenType} authentication yet; connect without auth`, session.version.identity), this.now());
          session.connection.close(1000, "AuthError");
          return this.close(session);
        }
        session.receivedIdentity = message.baseVersion + 1;
        this.saveAttachment(session);
        return this.schedule(session);
      case "Action":
        return session.send(actionFailure(message.requestId, `calmsync does not support actions; ${message.udfPath} was not run`), this.now());
      case "Event":
        return;
    }
  }

  private connect(session: SyncSession, message: Extract<ClientMessage, { type: "Connect" }>): void {
    if (session.sessionId !== null) throw new ProtocolError("Connect sent twice on one socket");
    const latest = this.engine.store.lastTimestamp();
    const observed = message.maxObservedTimestamp;
    if (observed !== null && observed > latest) {
      // The client saw a newer timestamp than ours (our storage was reset, or its clock
      // reading came from elsewhere). Move our clock past it, as a non-commit, so its
      // pending mutations can complete; refuse absurd values as an internal error,
      // which the official client retries with backoff (as Convex does).
      const limitNs = BigInt(Math.floor(this.now() + this.knobs().maxClockAheadMs)) * 1_000_000n;
      if (observed > limitNs) {
        this.log(`[${session.connectionId}] Connect maxObservedTimestamp ${observed} is ahead of the clock; closing`);
        session.connection.close(CLOSE_INTERNAL_ERROR, "InternalServerError: maxObservedTimestamp is ahead of this deployment");
        return this.close(session);
      }
      this.log(`[${session.connectionId}] session=${message.sessionId} observed ts ${observed} ahead of ${latest}; moving the clock forward`);
      this.advanceTimestamp(observed);
    }
    session.sessionId = message.sessionId;
    this.saveAttachment(session);
  }

  private modifyQuerySet(session: SyncSession, message: Extract<ClientMessage, { type: "ModifyQuerySet" }>): void {
    if (message.baseVersion !== session.receivedQuerySet) {
      throw new ProtocolError(`ModifyQuerySet.baseVersion ${message.baseVersion} does not match the query set version ${session.receivedQuerySet}`);
    }
    if (message.newVersion <= message.baseVersion) throw new ProtocolError("ModifyQuerySet.newVersion must be greater than baseVersion");
    const adds = message.modifications.filter((m) => m.type === "Add").length;
    const removes = message.modifications.filter((m) => m.type === "Remove" && session.queries.has(m.queryId)).length;
    const limit = this.knobs().maxQueriesPerSession;
    if (session.queries.size + adds - removes > limit) {
      throw new ProtocolError(`Query set of ${session.queries.size + adds - removes} queries exceeds the limit of ${limit} per session (knob maxQueriesPerSession)`);
    }
    for (const modification of message.modifications) {
      if (modification.type === "Add") {
        if (session.queries.has(modification.queryId)) throw new ProtocolError(`Query ${modification.queryId} is already in the query set`);
        const instance = this.instances.acquire(modification.udfPath, modification.args);
        this.instances.subscribe(instance, session);
        session.queries.set(modification.queryId, { instanceKey: instance.key, sentHash: null });
        this.storage.saveQuery({ connectionId: session.connectionId, queryId: modification.queryId, instanceKey: instance.key });
      } else {
        this.removeQuery(session, modification.queryId);
        session.pendingRemovals.push(modification.queryId);
      }
    }
    session.receivedQuerySet = message.newVersion;
    this.saveAttachment(session);
    this.schedule(session);
  }

  private removeQuery(session: SyncSession, queryId: number): void {
    const query = session.queries.get(queryId);
    if (!query) return;
    session.queries.delete(queryId);
    this.storage.deleteQuery(session.connectionId, queryId);
    this.instances.unsubscribe(query.instanceKey, session);
  }

  private async mutation(session: SyncSession, message: Extract<ClientMessage, { type: "Mutation" }>): Promise<void> {
    const sessionId = session.sessionId!;
    const limit = this.knobs().maxPendingMutationsPerSession;
    if (session.pendingMutations >= limit) {
      // Not fatal: the client fails this one mutation and can retry once earlier ones finish.
      const refusal = `Too many concurrent mutations on this connection: ${limit} are waiting (knob maxPendingMutationsPerSession)`;
      return session.send(mutationFailure(message.requestId, refusal, undefined), this.now());
    }
    session.pendingMutations++;
    await this.engine.exclusive(async () => {
      const previous = this.storage.findMutationResult(sessionId, message.requestId);
      if (previous) {
        // A retry after a reconnect: answer the original outcome, run nothing.
        session.send(mutationSuccess(message.requestId, previous.resultJson, previous.ts), this.now());
      } else {
        try {
          const fn = this.engine.resolve(message.udfPath, "mutation");
          const args = jsonToConvex(message.args);
          const result = await this.engine.executeMutation(fn, message.udfPath, args, ({ json, ts }) =>
            this.storage.recordMutationResult(sessionId, message.requestId, { resultJson: JSON.stringify(json), ts }, this.now()),
          );
          session.send(mutationSuccess(message.requestId, JSON.stringify(result.json), result.ts), this.now());
          this.afterCommit(result.writes, result.searchWrites);
        } catch (error) {
          const failure = error instanceof FunctionError ? error : error instanceof ValueError ? new FunctionError("InvalidArgument", error.message) : null;
          if (!failure) throw error;
          session.send(mutationFailure(message.requestId, failure.message, failure.data === undefined ? undefined : convexToJson(failure.data)), this.now());
        }
      }
      // The client resolves the mutation once a Transition reaches its ts.
      session.owesTransition = true;
      this.schedule(session);
    }).finally(() => session.pendingMutations--);
  }

  /** Marks what a commit affected. Call after every commit, whatever ran it (HTTP or socket). */
  afterCommit(writes: readonly IndexWrite[], searchWrites: readonly SearchWrite[] = []): void {
    if (writes.length === 0 && searchWrites.length === 0) return;
    this.ensureLoaded();
    for (const instance of this.instances.invalidate(writes, searchWrites)) {
      for (const session of instance.subscribers.keys()) this.schedule(session);
    }
  }

  private schedule(session: SyncSession): void {
    this.scheduler.schedule(session);
  }

  /**
   * One session's turn: brings it to the latest timestamp with one Transition
   * (or nothing, if nothing it holds changed). Queries new to the session
   * spend the re-subscription budget; without enough, the turn is deferred.
   */
  private async turn(session: SyncSession): Promise<TurnResult> {
    let fresh = 0;
    for (const query of session.queries.values()) {
      const instance = this.instances.get(query.instanceKey)!;
      if (query.sentHash === null && (instance.dirty || instance.encoded === null)) fresh++;
    }
    if (fresh > 0) {
      const need = Math.min(fresh, this.knobs().resubscribeBurst);
      if (!this.resubscribe.take(this.now(), need)) return { runs: 0, sent: false, deferMs: Math.max(1, this.resubscribe.waitMs(this.now(), need)) };
    }
    let runs = 0;
    const ts = this.engine.store.lastTimestamp();
    const modifications: EncodedModification[] = session.pendingRemovals.map(queryRemoved);
    session.pendingRemovals = [];
    for (const [queryId, query] of session.queries) {
      const instance = this.instances.get(query.instanceKey)!;
      if (instance.dirty || (instance.encoded === null && query.sentHash !== instance.resultHash)) {
        if (await this.instances.run(instance)) this.counters.invalidations++;
        runs++;
      }
      if (query.sentHash === instance.resultHash) continue;
      const encoded = instance.encoded!;
      this.instances.results.touch(instance);
      modifications.push(encoded.ok ? queryUpdated(queryId, encoded.value) : queryFailed(queryId, encoded.message, encoded.data));
      query.sentHash = instance.resultHash;
    }
    const end: StateVersion = { querySet: session.receivedQuerySet, ts, identity: session.receivedIdentity };
    const versionMoved = end.querySet !== session.version.querySet || end.identity !== session.version.identity;
    if (modifications.length === 0 && !versionMoved && !session.owesTransition) return { runs, sent: false };
    session.send(transition(session.version, end, modifications), this.now());
    session.version = end;
    session.owesTransition = false;
    this.counters.transitionsSent++;
    // Saving the attachment costs about as much as the send itself; it only has to be
    // current before the object can hibernate, which needs it idle, so save when the
    // refresh queue drains: a fan-out sends everything first, and a session refreshed
    // many times under load is saved once.
    this.unsavedVersions.add(session);
    return { runs, sent: true };
  }

  private saveAttachment(session: SyncSession): void {
    this.unsavedVersions.delete(session);
    if (!session.closed) session.connection.saveAttachment(session.attachment());
  }

  private saveVersions(): void {
    for (const session of this.unsavedVersions) this.saveAttachment(session);
  }

  private fail(session: SyncSession, reason: string): void {
    this.counters.protocolErrors++;
    this.log(`[${session.connectionId}] session=${session.sessionId ?? "-"} protocol error: ${reason}`);
    session.send(fatalError(reason), this.now());
    session.connection.close(CLOSE_PROTOCOL_ERROR, "ProtocolError");
    this.close(session);
  }

  /** Forgets a session whose socket closed. */
  close(session: SyncSession): void {
    if (session.closed) return;
    session.closed = true;
    this.sessions.delete(session.connectionId);
    this.scheduler.forget(session);
    this.unsavedVersions.delete(session);
    for (const queryId of [...session.queries.keys()]) this.removeQuery(session, queryId);
    this.storage.deleteConnection(session.connectionId);
  }

  /** Sends Ping to sessions that have been sent nothing for half the ping interval. */
  pingIdle(): void {
    const now = this.now();
    const threshold = this.knobs().idlePingMs / 2;
    for (const session of this.sessions.values()) if (now - session.lastSentAt >= threshold) session.send(PING, now);
  }
}
