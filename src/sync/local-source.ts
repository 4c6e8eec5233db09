/**
 * The front's results inside the deployment object: the engine and its
 * shared query instances.
 *
 * - `query-instances.ts`: one shared instance per (function, args), run once
 *   per timestamp however many sessions watch it, held once in the
 *   subscription index.
 * - `refresh-turn.ts`: what one session's turn does (re-run what is dirty,
 *   build one Transition within its byte bounds).
 *
 * The engine announces every commit (`Engine.onCommit`); this source marks
 * the instances it hit dirty and schedules their sessions. Nothing else
 * (restart, hibernation, a no-op mutation, search maintenance) dirties
 * anything. Every step that touches the database runs inside the engine's
 * lock, so a turn sees one snapshot and Transitions are ordered after the
 * mutation responses that caused them.
 */
import {
  jsonToConvex,
  knownFunctionError,
  SERVER_ERROR,
  type CommitEvent,
  type EncodedValue,
  type Engine,
  type LockOwner,
  type QueryCache,
  type RegisteredFunction,
  type UserIdentity,
  type Value,
} from "../engine/index.ts";
import { actionFailure, actionSuccess, mutationFailure, mutationSuccess, type ClientMessage } from "../protocol/sync.ts";
import { SyncFront, type FrontKnobs, type FrontPort, type ResultSource, type SyncFrontOptions } from "./front.ts";
import { QueryInstances, type PreparedQuery, type QueryInstance } from "./query-instances.ts";
import { RefreshTurn, type TurnKnobs } from "./refresh-turn.ts";
import type { TurnResult } from "./refresh-scheduler.ts";
import { earlierRun, mutationFingerprint, recordKey } from "./mutation-records.ts";
import type { SessionAuth, SyncSession } from "./session.ts";
import type { SyncStorage } from "./storage.ts";
import { TokenBucket } from "./token-bucket.ts";

/** The knobs live sync reads inside the deployment object (from the deployment's knob table). */
export interface SyncKnobs extends FrontKnobs, TurnKnobs {
  /** Distinct query instances this object holds for all sessions; a query set change that would create more is refused. */
  maxQueryInstances: number;
  /** Memory for shared encoded results (LRU beyond it; an evicted one is re-run when needed). */
  queryResultCacheBytes: number;
}

export interface LocalSourceOptions {
  engine: Engine;
  storage: SyncStorage;
  knobs: () => SyncKnobs;
  now?: () => number;
  /** Moves the deployment's timestamp forward without a commit (see Connect). */
  advanceTimestamp: (ts: bigint) => void;
}

export class LocalSource implements ResultSource, QueryCache {
  readonly instances: QueryInstances;
  private readonly engine: Engine;
  private readonly storage: SyncStorage;
  private readonly knobs: () => SyncKnobs;
  private readonly now: () => number;
  private readonly advance: (ts: bigint) => void;
  /** Budget for running queries that are new to a session (reconnect replays). */
  private readonly resubscribe: TokenBucket;
  private turns: RefreshTurn | null = null;
  private port: FrontPort | null = null;
  /** Whether query sets and instances have been loaded from storage since this object started. */
  private loaded = false;

  constructor(options: LocalSourceOptions) {
    this.engine = options.engine;
    this.storage = options.storage;
    this.knobs = options.knobs;
    this.now = options.now ?? Date.now;
    this.advance = options.advanceTimestamp;
    this.instances = new QueryInstances(this.engine, this.storage, () => this.knobs().queryResultCacheBytes, this.now);
    this.resubscribe = new TokenBucket(
      () => this.knobs().resubscribeRate,
      () => this.knobs().resubscribeBurst,
      this.now(),
    );
    this.engine.onCommit((commit) => this.invalidate(commit));
  }

  bind(port: FrontPort): void {
    this.port = port;
    this.turns = new RefreshTurn({
      instances: this.instances,
      knobs: this.knobs,
      now: this.now,
      counters: port.counters,
      lastTimestamp: () => this.engine.store.lastTimestamp(),
      resubscribe: this.resubscribe,
      send: port.send,
      schedule: port.schedule,
      sent: port.sent,
    });
    // From now on commits reach the instances (`invalidate`), so they may answer one-shot queries too.
    this.engine.useQueryCache(this);
  }

  /** A one-shot query's answer from the shared instances (the deployment's query cache; `QueryInstances.answer`). */
  answer(fn: RegisteredFunction, args: Value, identity: UserIdentity | null, owner?: LockOwner): Promise<EncodedValue> {
    this.ensureLoaded();
    return this.instances.answer(fn, args, identity, owner);
  }

  private get front(): FrontPort {
    if (!this.port) throw new Error("LocalSource is not bound to a front");
    return this.port;
  }

  get instanceCount(): number {
    this.ensureLoaded();
    return this.instances.size;
  }

  latestTimestamp(): bigint {
    return this.engine.store.lastTimestamp();
  }

  /** The session's turns are at the newest timestamp, which is now past `ts`. */
  advanceTimestamp(ts: bigint): void {
    this.advance(ts);
  }

  exclusive<T>(fn: () => Promise<T>, owner: object): Promise<T> {
    return this.engine.exclusive(fn, owner);
  }

  /**
   * Loads query sets and instances on first need after a wake, not at start:
   * an alarm that only sends pings (every `idlePingMs` while sockets are
   * open) then costs a walk over the sockets, not a reload of every
   * subscription.
   */
  ensureLoaded(): void {
    if (this.loaded) return;
    this.loaded = true;
    this.instances.load(this.front.sessions);
  }

  refuseQueries(_session: SyncSession, added: readonly { query: PreparedQuery; caller: SessionAuth | null }[]): string | null {
    const limit = this.knobs().maxQueryInstances;
    const missing = this.instances.missing(added);
    if (missing === 0 || this.instances.size + missing <= limit) return null;
    return `it needs ${missing} new query instances and this object holds ${this.instances.size} of at most ${limit} (knob maxQueryInstances)`;
  }

  add(session: SyncSession, queryId: number, query: PreparedQuery, caller: SessionAuth | null): void {
    const instance = this.instances.acquire(query, caller);
    this.instances.subscribe(instance, session);
    // A peer session's queries each keep their caller; a client's run as the client.
    const stored = session.isClient ? {} : { caller };
    session.queries.set(queryId, { instanceKey: instance.key, sentHash: null, ...stored });
    this.storage.saveQuery({ connectionId: session.connectionId, queryId, instanceKey: instance.key, ...stored });
  }

  remove(session: SyncSession, queryId: number): void {
    const query = session.queries.get(queryId);
    if (!query) return;
    session.queries.delete(queryId);
    this.storage.deleteQuery(session.connectionId, queryId);
    this.instances.unsubscribe(query.instanceKey, session);
  }

  rekey(session: SyncSession): void {
    this.instances.rekey(session);
  }

  turn(session: SyncSession): Promise<TurnResult> {
    return this.turns!.run(session);
  }

  closed(_session: SyncSession): void {
    // Its queries were removed one by one (instances nobody holds are dropped there).
  }

  /** Marks what a commit affected and schedules their sessions (the engine calls it for every commit, whatever ran it). */
  private invalidate(commit: CommitEvent): void {
    this.rerunStale(() => this.instances.invalidate(commit.writes, commit.searchWrites, commit.tables));
  }

  /** Every query is stale (the environment variables changed): cached answers go and every subscribed query runs again. */
  invalidateAll(): void {
    this.rerunStale(() => this.instances.invalidateAll());
  }

  /** Marks instances stale (`mark`, once the stored ones are loaded) and schedules the sessions that hold them. */
  private rerunStale(mark: () => Set<QueryInstance>): void {
    if (!this.port) return;
    this.ensureLoaded();
    for (const instance of mark()) {
      for (const session of instance.subscribers.keys()) this.front.schedule(session);
    }
  }

  /** Runs a mutation in its turn of the function lock (`lockOwner`: the session's, or a shard's client's): in order, one per round. */
  mutation(session: SyncSession, message: Extract<ClientMessage, { type: "Mutation" }>, caller: SessionAuth | null, answered: () => void): Promise<void> {
    const retryOf = recordKey("socket", session.retryKey(message), caller?.identity.tokenIdentifier ?? null);
    const front = this.front;
    return this.engine
      .exclusive(async () => {
        if (session.closed) return;
        const fingerprint = await mutationFingerprint(message.udfPath, message.args);
        const previous = earlierRun(this.storage, retryOf, fingerprint);
        if (previous?.kind === "conflict") {
          // A reused request id is not a retry: answer nothing of the other call, run nothing.
          const reason = `Request ${message.requestId} of this session was already used for a different mutation; a retry must repeat the same function and arguments`;
          front.send(session, mutationFailure(message.requestId, reason, undefined));
        } else if (previous) {
          // A retry after a reconnect: answer the original outcome, run nothing.
          front.send(session, mutationSuccess(message.requestId, previous.record.resultJson, previous.record.ts));
        } else {
          try {
            const fn = this.engine.resolve(message.udfPath, "mutation");
            const args = jsonToConvex(message.args);
            const result = await this.engine.executeMutation(
              fn,
              args,
              ({ text, ts }) => this.storage.recordMutationResult(retryOf.sessionId, retryOf.requestId, { resultJson: text, ts, fingerprint }, this.now()),
              undefined,
              caller?.identity ?? null,
            );
            front.send(session, mutationSuccess(message.requestId, result.text, result.ts, result.logLines));
          } catch (error) {
            const failure = knownFunctionError(error);
            if (!failure) throw error;
            front.send(session, mutationFailure(message.requestId, failure.message, failure.dataJson, failure.logLines));
          }
        }
        // The client resolves the mutation once a Transition reaches its ts.
        session.owesTransition = true;
        front.schedule(session);
      }, session.lockOwner(message))
      .finally(answered);
  }

  /** Runs an action outside the function lock (Convex runs a socket's actions concurrently). */
  async action(session: SyncSession, message: Extract<ClientMessage, { type: "Action" }>, caller: SessionAuth | null): Promise<string> {
    try {
      const result = await this.engine.runAction(message.udfPath, jsonToConvex(message.args), { identity: caller?.identity ?? null });
      return actionSuccess(message.requestId, result.text, result.logLines);
    } catch (error) {
      const failure = knownFunctionError(error);
      if (!failure) this.front.log(`[${session.connectionId}] action ${message.udfPath} failed: ${(error as Error)?.stack ?? error}`);
      return actionFailure(message.requestId, failure?.message ?? SERVER_ERROR, failure?.dataJson, failure?.logLines);
    }
  }
}

/** Live sync inside the deployment object: the front over the engine's shared query instances. */
export function localFront(options: LocalSourceOptions & Omit<SyncFrontOptions, "source" | "knobs">): SyncFront<LocalSource> {
  return new SyncFront({ ...options, source: new LocalSource(options) });
}
