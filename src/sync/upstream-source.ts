/**
 * The front's results inside a sync shard (docs/SHARDS.md): every function
 * runs in the deployment's database object, and the shard is one **peer
 * session** of it. The peer session's query set is the union of the shard's
 * clients' distinct queries (each with its caller); clients' mutations and
 * actions go up with their caller and the client's session and request id
 * (so a retry is still recognised); what comes back (Transitions, responses)
 * arrives in numbered pushes, and each client's turn builds its Transition
 * from the results the shard holds.
 *
 * Invariants kept from the single object:
 * - All of a client's results in one Transition are at one timestamp: the
 *   shard holds results at the timestamp of the last push it applied.
 * - A client's mutation is in its subscriptions once the mutation resolves:
 *   the client gets its Transition at or past the commit's timestamp only
 *   after the push that carries it.
 * - A lost, repeated or out-of-order push is never applied: the shard opens a
 *   new peer session and re-adds its distinct queries (in chunks below the
 *   peer limits); clients are sent only results whose hash changed, and
 *   pending mutations are re-sent (the database object answers a retry from
 *   its record, running nothing twice). An upstream that refuses is retried
 *   with backoff; nothing pending is dropped meanwhile.
 */
import { ByteBudgetLru, type JSONValue } from "../engine/index.ts";
import { actionFailure, queryRemoved, transition, type ClientMessage, type EncodedModification, type StateVersion } from "../protocol/sync.ts";
import { parsePeerPush, type PeerModification, type PeerPush } from "../protocol/peer.ts";
import { SyncFront, type FrontKnobs, type FrontPort, type ResultSource, type SyncFrontOptions } from "./front.ts";
import { shortDigest } from "./hash.ts";
import { callerKey, modificationFor, sharedKey, type EncodedResult, type PreparedQuery } from "./query-instances.ts";
import type { TurnResult } from "./refresh-scheduler.ts";
import type { SessionAuth, SyncSession } from "./session.ts";
import type { SyncStorage } from "./storage.ts";
import { groupBySize, takeBatch } from "./peer-batches.ts";
import { MemoryShardStorage, type ShardStorage, type StoredHeldQuery, type StoredPeerState } from "./shard-storage.ts";

/** The way to the database object's side of the peer session. */
export interface UpstreamLink {
  /** Opens a new peer session for this shard (closing any earlier one); returns its id. */
  open(): Promise<string>;
  /** Sends frames to the peer session, in order; false if the database object no longer has it (it restarted). */
  send(connectionId: string, frames: string[]): Promise<boolean>;
  /** Moves the deployment's timestamp past a client's observation; the peer session is then owed a Transition at it. */
  advanceTimestamp(connectionId: string, ts: bigint): Promise<void>;
}

/** Bounds of the peer path (knobs): how much one frame up carries, and how the shard backs off an upstream that refuses. */
export interface UpstreamKnobs {
  /** Query set modifications in one `ModifyQuerySet` up (a resync of many queries goes in several). */
  peerModificationsPerFrame: number;
  /** Characters of frames in one call up (a larger backlog goes in several calls, below the runtime's RPC limit); also the most one `ModifyQuerySet` up carries. */
  maxPeerBatchBytes: number;
  /** The largest frame the deployment object accepts from the peer session. */
  maxPeerFrameBytes: number;
  /** Memory for held results: past it those every holder has been sent are dropped (asked for again when needed). */
  shardResultCacheBytes: number;
  /** First wait after an upstream failure; it doubles up to `peerRetryMaxMs`, with jitter. */
  peerRetryMinMs: number;
  peerRetryMaxMs: number;
  /** Distinct queries the peer session may hold upstream: a client's change past it is refused here, before the upstream refuses the peer session. */
  maxQueriesPerShard: number;
}

export interface UpstreamSourceOptions {
  link: UpstreamLink;
  knobs: () => UpstreamKnobs;
  /** Clients' query sets (the front's storage). */
  storage: SyncStorage;
  /** The peer session, held queries and requests, kept across hibernation (default: memory only). */
  shardStorage?: ShardStorage;
  now?: () => number;
  /** Waits before a retry (a timer; injected so tests advance time instead of sleeping). */
  delay?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** One distinct query the shard holds for its clients. */
interface HeldQuery {
  key: string;
  /** The query's id in the peer session's query set (renumbered on each resync). */
  upstreamId: number;
  udfPath: string;
  args: JSONValue;
  journal: string | null;
  caller: SessionAuth | null;
  /** The latest result, its journal and its hash; null until the first push carries it. */
  result: EncodedResult | null;
  resultJournal: string | null;
  hash: string | null;
  holders: Map<SyncSession, number>;
  /** Restored or dropped without its result: asked for again (added under a new id) once, when a client needs it. */
  refetching: boolean;
  /** Admitted holders whose turn has not yet looked at the latest result: it is not dropped while any is left. */
  waiters: Set<SyncSession>;
}

interface PendingRequest {
  session: SyncSession;
  clientRequestId: number;
  /** The frame as sent upstream, re-sent after a resync (mutations only). */
  frame: string;
  /** A mutation's: it has its answer. An action's: resolves with the client's ActionResponse frame. */
  answer: { kind: "Mutation"; answered: () => void } | { kind: "Action"; resolve: (frame: string) => void };
}

export interface ShardCounters {
  /** Pushes not applied: repeated, out of order, or after a gap. */
  pushesRejected: number;
  resyncs: number;
  /** Calls to the database object that failed and were retried after a backoff. */
  upstreamRetries: number;
}

export class UpstreamSource implements ResultSource {
  readonly counters: ShardCounters = { pushesRejected: 0, resyncs: 0, upstreamRetries: 0 };
  private readonly held = new Map<string, HeldQuery>();
  private readonly byUpstreamId = new Map<number, HeldQuery>();
  /**
   * Held results within `shardResultCacheBytes`, least recently used out
   * first, as the deployment object's query results are. A result is dropped
   * only once every holder's turn has seen it (else the turn would ask for
   * it again, and a result dropped again before that turn would be asked for
   * forever); a client that needs it later gets it by a refetch.
   */
  private readonly results: ByteBudgetLru<HeldQuery, EncodedResult>;
  private readonly pending = new Map<number, PendingRequest>();
  /** Sessions owed a Transition once the shard holds their mutation's ts (`SyncSession.owedTs`). */
  private readonly owing = new Set<SyncSession>();
  /** The peer session: its id, the version and push number last applied, and the next ids to hand out. */
  private upstream = {
    connectionId: null as string | null,
    version: { querySet: 0, ts: 0n, identity: 0 } as StateVersion,
    epoch: null as string | null,
    seq: 0,
    querySet: 0,
    nextQueryId: 0,
    nextRequestId: 0,
  };
  /** Query set changes not sent yet: they go up in one `ModifyQuerySet` before the next frame. */
  private changes: unknown[] = [];
  private changesQueued = false;
  /** Frames waiting to go up, sent in order by one call at a time. */
  private outbox: string[] = [];
  private sending: Promise<void> | null = null;
  private opening: Promise<void> | null = null;
  /** The newest ts this shard asked the deployment object to move its clock past. */
  private advancedTo = 0n;
  /** Peer sessions opened (or tried) since one last delivered a Transition: the backoff grows with them. */
  private failures = 0;
  private port: FrontPort | null = null;
  /** Whether what the shard kept (peer session, held queries, clients' query sets) was restored since it started. */
  private loaded = false;
  private stateSaveQueued = false;
  private readonly storage: SyncStorage;
  private readonly shardStorage: ShardStorage;
  private readonly options: UpstreamSourceOptions;
  private readonly delay: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(options: UpstreamSourceOptions) {
    this.options = options;
    this.storage = options.storage;
    this.shardStorage = options.shardStorage ?? new MemoryShardStorage();
    this.delay = options.delay ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
    this.results = new ByteBudgetLru<HeldQuery, EncodedResult>({
      budgetBytes: () => options.knobs().shardResultCacheBytes,
      // UTF-16 in memory: two bytes per code unit.
      sizeOf: (encoded) => 2 * ((encoded.ok ? encoded.value.length : encoded.message.length) + encoded.logLines.reduce((n, line) => n + line.length, 0)),
      onEvict: (held) => (held.result = null),
      pinned: (held) => held.waiters.size > 0,
    });
  }

  /** Bytes of results held, and how many were dropped past `shardResultCacheBytes`. */
  get resultBytes(): number {
    return this.results.bytes;
  }

  get resultEvictions(): number {
    return this.results.evictions;
  }

  bind(port: FrontPort): void {
    this.port = port;
  }

  private get front(): FrontPort {
    if (!this.port) throw new Error("UpstreamSource is not bound to a front");
    return this.port;
  }

  /** Distinct queries held (the peer session's query set). */
  get heldCount(): number {
    return this.held.size;
  }

  /** Nothing waiting to go up, no session opening. */
  get idle(): boolean {
    return this.sending === null && this.opening === null && this.outbox.length === 0 && this.changes.length === 0;
  }

  latestTimestamp(): bigint {
    return this.upstream.version.ts;
  }

  /**
   * A client saw a newer ts than the last push (it was on another shard, or
   * the object): the deployment's clock moves past it and this shard is
   * pushed a Transition at it, and the client is owed one at it. One call
   * per newer ts, so a reconnect wave from other shards costs a few calls,
   * not one per client.
   */
  advanceTimestamp(ts: bigint, session: SyncSession): void {
    if (session.owedTs === null || session.owedTs < ts) session.owedTs = ts;
    this.owing.add(session);
    this.requestAdvance(ts);
  }

  private requestAdvance(ts: bigint): void {
    const connectionId = this.upstream.connectionId;
    if (connectionId === null || ts <= this.advancedTo) return;
    this.advancedTo = ts;
    this.options.link
      .advanceTimestamp(connectionId, ts)
      .catch((error: unknown) => this.front.log(`moving the deployment's clock failed: ${(error as Error).message}`));
  }

  /** A turn here runs no query, so it needs no lock. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  /**
   * After a wake: the peer session, the held queries (without results) and
   * the requests waiting for an answer come back from storage, and each
   * restored client's query set is attached to them, running nothing. A
   * client is taken to hold the result last held (as on the deployment
   * object: versions are saved once the refresh queue drains, before the
   * object may sleep); a waiting one holds nothing yet.
   */
  ensureLoaded(): void {
    if (this.loaded) return;
    this.loaded = true;
    const state = this.shardStorage.loadValue("peer");
    if (state !== null) {
      const stored = JSON.parse(state) as StoredPeerState;
      this.upstream = { ...stored, version: { ...stored.version, ts: BigInt(stored.version.ts) } };
    }
    for (const row of this.shardStorage.loadHeld()) {
      const held: HeldQuery = {
        key: row.key,
        upstreamId: row.upstreamId,
        udfPath: row.udfPath,
        args: JSON.parse(row.argsJson) as JSONValue,
        journal: row.journal,
        caller: row.caller,
        result: null,
        resultJournal: null,
        hash: row.hash,
        holders: new Map(),
        refetching: false,
        waiters: new Set(),
      };
      this.held.set(held.key, held);
      this.byUpstreamId.set(held.upstreamId, held);
    }
    const sessions = this.front.sessions;
    for (const query of this.storage.loadQueries()) {
      const session = sessions.get(query.connectionId);
      const held = this.held.get(query.instanceKey);
      if (!session || !held) {
        this.storage.deleteQuery(query.connectionId, query.queryId);
        continue;
      }
      held.holders.set(session, (held.holders.get(session) ?? 0) + 1);
      session.queries.set(query.queryId, { instanceKey: held.key, sentHash: session.waiting ? null : held.hash });
    }
    for (const request of this.shardStorage.loadRequests()) {
      const session = sessions.get(request.connectionId);
      if (!session) {
        this.shardStorage.deleteRequest(request.requestId);
        continue;
      }
      // Its answer goes straight to the client: whatever awaited it before the sleep is gone.
      if (request.kind === "Mutation") session.pendingMutations++;
      const answer: PendingRequest["answer"] =
        request.kind === "Mutation"
          ? { kind: "Mutation", answered: () => session.pendingMutations-- }
          : { kind: "Action", resolve: (frame) => this.front.send(session, frame) };
      this.pending.set(request.requestId, { session, clientRequestId: request.clientRequestId, frame: request.frame, answer });
    }
    // Queries nobody holds any more (their clients left while the shard slept) leave the peer session.
    for (const held of [...this.held.values()]) if (held.holders.size === 0) this.drop(held);
  }

  /** The peer session's record is saved once per turn of the event loop, however many changes it had. */
  private saveState(): void {
    if (this.stateSaveQueued) return;
    this.stateSaveQueued = true;
    queueMicrotask(() => {
      this.stateSaveQueued = false;
      const { version, ...rest } = this.upstream;
      this.shardStorage.saveValue("peer", JSON.stringify({ ...rest, version: { ...version, ts: version.ts.toString() } } satisfies StoredPeerState));
    });
  }

  private saveHeld(held: HeldQuery): void {
    const row: StoredHeldQuery = {
      key: held.key,
      upstreamId: held.upstreamId,
      udfPath: held.udfPath,
      argsJson: JSON.stringify(held.args),
      journal: held.journal,
      caller: held.caller,
      hash: held.hash,
    };
    this.shardStorage.saveHeld(row);
  }

  // ---- clients' query sets ----

  refuseQueries(_session: SyncSession, added: readonly { query: PreparedQuery; caller: SessionAuth | null }[]): string | null {
    const limit = this.options.knobs().maxQueriesPerShard;
    const keys = new Set<string>();
    for (const { query, caller } of added) {
      const key = callerKey(query.key, caller);
      if (!this.held.has(key)) keys.add(key);
    }
    if (keys.size === 0 || this.held.size + keys.size <= limit) return null;
    // Otherwise the deployment object would refuse the peer session's change, and every client of this shard would wait on its resync.
    return `it needs ${keys.size} new distinct queries and this shard holds ${this.held.size} of at most ${limit} (knob maxQueriesPerShard)`;
  }

  add(session: SyncSession, queryId: number, query: PreparedQuery, caller: SessionAuth | null): void {
    const held = this.hold(query.key, query.udfPath, JSON.parse(query.argsJson) as JSONValue, query.journal, caller, session);
    session.queries.set(queryId, { instanceKey: held.key, sentHash: null });
    this.storage.saveQuery({ connectionId: session.connectionId, queryId, instanceKey: held.key });
  }

  remove(session: SyncSession, queryId: number): void {
    const query = session.queries.get(queryId);
    if (!query) return;
    session.queries.delete(queryId);
    this.storage.deleteQuery(session.connectionId, queryId);
    this.release(query.instanceKey, session);
  }

  /** After a sign-in: each query moves to the held query of the new caller (the same caller, a refreshed token: nothing moves). */
  rekey(session: SyncSession): void {
    for (const [queryId, query] of session.queries) {
      const old = this.held.get(query.instanceKey)!;
      query.instanceKey = this.hold(sharedKey(old.key), old.udfPath, old.args, old.journal, session.auth, session).key;
      this.storage.saveQuery({ connectionId: session.connectionId, queryId, instanceKey: query.instanceKey });
      this.release(old.key, session);
    }
  }

  closed(session: SyncSession): void {
    this.owing.delete(session);
    for (const [id, request] of this.pending) {
      if (request.session !== session) continue;
      this.pending.delete(id);
      this.shardStorage.deleteRequest(id);
    }
  }

  /**
   * The held query for (shared key, caller), created and added upstream if
   * new. Signed-in clients' queries carry their caller: the database object
   * still runs one instance for all of them unless the query reads the identity.
   */
  private hold(shared: string, udfPath: string, args: JSONValue, journal: string | null, caller: SessionAuth | null, session: SyncSession): HeldQuery {
    const key = callerKey(shared, caller);
    let held = this.held.get(key);
    if (!held) {
      held = {
        key,
        upstreamId: this.upstream.nextQueryId++,
        udfPath,
        args,
        journal,
        caller,
        result: null,
        resultJournal: null,
        hash: null,
        holders: new Map(),
        refetching: false,
        waiters: new Set(),
      };
      this.held.set(key, held);
      this.byUpstreamId.set(held.upstreamId, held);
      this.saveHeld(held);
      this.change(addFor(held));
    }
    held.holders.set(session, (held.holders.get(session) ?? 0) + 1);
    // Its turn (scheduled after the change) takes the result held now: keep it until then.
    if (held.result !== null && !session.waiting) held.waiters.add(session);
    return held;
  }

  private release(key: string, session: SyncSession): void {
    const held = this.held.get(key);
    if (!held) return;
    const remaining = (held.holders.get(session) ?? 1) - 1;
    if (remaining > 0) held.holders.set(session, remaining);
    else {
      held.holders.delete(session);
      held.waiters.delete(session);
    }
    if (held.holders.size === 0) this.drop(held);
  }

  private drop(held: HeldQuery): void {
    this.results.delete(held);
    this.held.delete(held.key);
    this.byUpstreamId.delete(held.upstreamId);
    this.shardStorage.deleteHeld(held.key);
    this.change({ type: "Remove", queryId: held.upstreamId });
  }

  /**
   * A restored query without its result (results are not kept: they can be
   * large) that a client now needs: added again under a new id, then the old
   * id removed (in that order, so the deployment object keeps its instance),
   * and the next push carries the result.
   */
  private refetch(held: HeldQuery): void {
    held.refetching = true;
    const old = held.upstreamId;
    this.byUpstreamId.delete(old);
    held.upstreamId = this.upstream.nextQueryId++;
    this.byUpstreamId.set(held.upstreamId, held);
    this.saveHeld(held);
    this.change(addFor(held));
    this.change({ type: "Remove", queryId: old });
  }

  /** Queues one change of the peer session's query set: all of a turn's go up together, before any later frame. */
  private change(modification: unknown): void {
    this.changes.push(modification);
    this.saveState();
    if (this.changesQueued) return;
    this.changesQueued = true;
    queueMicrotask(() => this.flushChanges());
  }

  private flushChanges(): void {
    this.changesQueued = false;
    if (this.changes.length === 0) return;
    const changes = this.changes;
    this.changes = [];
    this.outbox.push(...this.querySetFrames(changes));
    this.drain();
  }

  /**
   * `ModifyQuerySet` frames for `modifications`, chained from the version
   * held, each of at most `peerModificationsPerFrame` and within the batch
   * and frame limits (queries' arguments can be large: a count alone could
   * make a frame the deployment object refuses, and the resync would refuse again).
   */
  private querySetFrames(modifications: unknown[]): string[] {
    const knobs = this.options.knobs();
    const maxChars = Math.min(knobs.maxPeerBatchBytes, knobs.maxPeerFrameBytes) - 1_024;
    return groupBySize(modifications, Math.max(1, knobs.peerModificationsPerFrame), maxChars).map((group) => {
      const base = this.upstream.querySet++;
      return JSON.stringify({ type: "ModifyQuerySet", baseVersion: base, newVersion: base + 1, modifications: group });
    });
  }

  // ---- clients' mutations and actions ----

  async mutation(session: SyncSession, message: Extract<ClientMessage, { type: "Mutation" }>, caller: SessionAuth | null, answered: () => void): Promise<void> {
    this.request(session, message, caller, { kind: "Mutation", answered });
  }

  action(session: SyncSession, message: Extract<ClientMessage, { type: "Action" }>, caller: SessionAuth | null): Promise<string> {
    return new Promise((resolve) => this.request(session, message, caller, { kind: "Action", resolve }));
  }

  private request(
    session: SyncSession,
    message: Extract<ClientMessage, { type: "Mutation" | "Action" }>,
    caller: SessionAuth | null,
    answer: PendingRequest["answer"],
  ): void {
    const requestId = this.upstream.nextRequestId++;
    const frame = JSON.stringify({
      type: message.type,
      requestId,
      udfPath: message.udfPath,
      args: [message.args],
      internal: { caller, clientSessionId: session.sessionId, clientRequestId: message.requestId },
    });
    this.pending.set(requestId, { session, clientRequestId: message.requestId, frame, answer });
    this.shardStorage.saveRequest({ requestId, connectionId: session.connectionId, kind: message.type, clientRequestId: message.requestId, frame });
    this.saveState();
    this.sendUp(frame);
  }

  // ---- the peer session ----

  private sendUp(frame: string): void {
    this.flushChanges();
    this.outbox.push(frame);
    this.drain();
  }

  private drain(): void {
    this.sending ??= this.drainOutbox()
      .catch((error: unknown) => this.front.log(`sending to the database object stopped: ${(error as Error)?.stack ?? error}`))
      .finally(() => (this.sending = null));
  }

  /** Sends the outbox in order, one call at a time; a refused call (the database object restarted) resyncs. */
  private async drainOutbox(): Promise<void> {
    while (this.outbox.length > 0) {
      if (this.upstream.connectionId === null) {
        await this.resync("no peer session yet");
        continue;
      }
      // In calls below the RPC limit: one call too large would fail, and the resync would send it again.
      const frames = takeBatch(this.outbox, this.options.knobs().maxPeerBatchBytes);
      let accepted: boolean;
      try {
        accepted = await this.options.link.send(this.upstream.connectionId, frames);
      } catch (error) {
        this.front.log(`sending to the database object failed: ${(error as Error).message}`);
        accepted = false;
      }
      if (!accepted) await this.resync("the database object no longer has this shard's session");
    }
  }

  /**
   * A push from the database object: the frames its peer session was sent,
   * numbered within an epoch (one start of that object). Only the next
   * number is applied; a repeat is ignored, a gap (a lost push) resyncs. A
   * new epoch starts again at 1: the session came back with that object, and
   * the next Transition's start version shows whether anything was lost.
   * Returns false for a session that is not the current one, which tells the
   * database object to close it.
   */
  async deliver(connectionId: string, epoch: string, seq: number, frames: string[]): Promise<boolean> {
    this.ensureLoaded();
    if (connectionId !== this.upstream.connectionId) return false;
    if (epoch !== this.upstream.epoch) {
      this.upstream.epoch = epoch;
      this.upstream.seq = 0;
    }
    if (seq <= this.upstream.seq) {
      this.counters.pushesRejected++;
      return true;
    }
    if (seq !== this.upstream.seq + 1) {
      this.counters.pushesRejected++;
      this.startOver(`push ${seq} arrived after ${this.upstream.seq}`);
      return true;
    }
    this.upstream.seq = seq;
    this.saveState();
    for (const frame of frames) {
      if (connectionId !== this.upstream.connectionId) break;
      let push: PeerPush;
      try {
        push = parsePeerPush(frame);
      } catch (error) {
        // A bad frame from upstream is that peer session's problem: start it over, keep every client.
        this.startOver(`a push frame could not be read: ${(error as Error).message}`);
        break;
      }
      await this.apply(push);
    }
    return true;
  }

  private async apply(push: PeerPush): Promise<void> {
    switch (push.type) {
      case "Transition":
        return this.applyTransition(push.startVersion, push.endVersion, push.modifications);
      case "MutationResponse":
      case "ActionResponse": {
        const request = this.pending.get(push.requestId);
        if (!request) return;
        this.pending.delete(push.requestId);
        this.shardStorage.deleteRequest(push.requestId);
        const { session } = request;
        const frame = JSON.stringify({ ...push.raw, requestId: request.clientRequestId });
        if (request.answer.kind === "Action") return request.answer.resolve(frame);
        request.answer.answered();
        if (session.closed) return;
        this.front.send(session, frame);
        if (push.type === "MutationResponse" && push.ts !== null) {
          // The client resolves the mutation once a Transition reaches its ts; one is owed then.
          session.owedTs = push.ts;
          this.owing.add(session);
          if (session.owedTs <= this.upstream.version.ts) this.front.schedule(session);
        }
        return;
      }
      case "Ping":
        return;
      case "Other":
        // A FatalError or anything unexpected on the peer session: start it over.
        this.startOver(`unexpected ${push.what} on the peer session`);
    }
  }

  private async applyTransition(start: StateVersion, end: StateVersion, modifications: PeerModification[]): Promise<void> {
    const held = this.upstream.version;
    if (start.querySet !== held.querySet || start.ts !== held.ts || start.identity !== held.identity) {
      return this.resync(`Transition starts at ${JSON.stringify({ ...start, ts: String(start.ts) })}, not at the version held`);
    }
    const touched = new Set<SyncSession>();
    for (const modification of modifications) {
      const query = this.byUpstreamId.get(modification.queryId);
      if (!query || modification.result === null) continue;
      query.resultJournal = modification.journal;
      query.result = modification.result;
      query.refetching = false;
      // Kept for every admitted holder's turn (scheduled below); colder results others have seen make room.
      for (const session of query.holders.keys()) if (!session.waiting) query.waiters.add(session);
      this.results.set(query, modification.result);
      const hash = await shortDigest(JSON.stringify([query.result, query.resultJournal]));
      if (hash !== query.hash) {
        query.hash = hash;
        this.saveHeld(query);
      }
      for (const session of query.holders.keys()) touched.add(session);
    }
    this.upstream.version = end;
    // It works again: the next failure is retried at once.
    this.failures = 0;
    this.saveState();
    for (const session of touched) this.front.schedule(session);
    // Clients waiting for a Transition at their mutation's ts get it now that the shard holds that ts.
    for (const session of this.owing) if (session.owedTs! <= this.upstream.version.ts) this.front.schedule(session);
  }

  /**
   * The database object started again and restored this shard's session:
   * the answers to mutations still pending may have been lost with it, so
   * they are sent again (a retry is answered from its record, running
   * nothing twice). Any other session (or none) starts over.
   */
  async upstreamRestarted(connectionId: string): Promise<void> {
    this.ensureLoaded();
    if (this.front.sessions.size === 0) return;
    if (connectionId !== this.upstream.connectionId) return this.resync("the database object started again without this shard's session");
    for (const request of this.pending.values()) if (request.answer.kind === "Mutation") this.sendUp(request.frame);
  }

  /**
   * Starts the peer session over: a new one, every held query added again
   * (results kept, so clients see only what changed), pending mutations
   * re-sent (answered from the database object's record if they ran) and
   * pending actions failed (an action runs at most once). An upstream that
   * refuses is tried again after a backoff that doubles (with jitter) up to
   * `peerRetryMaxMs`; clients keep what they have meanwhile.
   */
  resync(why: string): Promise<void> {
    this.ensureLoaded();
    this.opening ??= this.reopen(why).finally(() => (this.opening = null));
    return this.opening.then(() => this.drain());
  }

  /** A resync nobody waits for: a failure (storage, our bug) is logged, never left unhandled. */
  private startOver(why: string): void {
    this.resync(why).catch((error: unknown) => this.front.log(`shard resync failed: ${(error as Error)?.stack ?? error}`));
  }

  private async reopen(why: string): Promise<void> {
    this.counters.resyncs++;
    this.front.log(`shard resync: ${why}`);
    // A fresh session starts at ts 0 (a client's ts never goes back: the turn keeps it where it is).
    this.upstream = {
      connectionId: null,
      version: { querySet: 0, ts: 0n, identity: 0 },
      epoch: null,
      seq: 0,
      querySet: 0,
      nextQueryId: 0,
      nextRequestId: this.upstream.nextRequestId,
    };
    for (;;) {
      // A session that failed again before it delivered anything (the upstream refused to open one, or
      // refused what it was sent) is not retried at once: the wait doubles with each failure in a row.
      if (this.failures > 0) {
        const { peerRetryMinMs, peerRetryMaxMs } = this.options.knobs();
        const waitMs = Math.min(peerRetryMaxMs, peerRetryMinMs * 2 ** (this.failures - 1)) * (0.5 + this.random() / 2);
        this.counters.upstreamRetries++;
        this.front.log(`peer session: ${this.failures} failures in a row; trying again in ${Math.round(waitMs)} ms`);
        await this.delay(waitMs);
      }
      this.failures++;
      try {
        this.upstream.connectionId = await this.options.link.open();
        break;
      } catch (error) {
        this.front.log(`opening a peer session failed: ${(error as Error).message}`);
      }
    }
    // Clients' changes flushed while the session was opening numbered frames that are dropped below (their
    // queries are in the new set): the new session's query set starts at version 0 all the same.
    this.upstream.querySet = 0;
    this.byUpstreamId.clear();
    for (const query of this.held.values()) {
      query.upstreamId = this.upstream.nextQueryId++;
      // A restored query's result comes with the new session's first Transition.
      query.refetching = query.result === null;
      this.byUpstreamId.set(query.upstreamId, query);
      this.saveHeld(query);
    }
    // What was queued for the old session is replaced: its query set changes are in the new set, its
    // mutations are re-sent below, and its actions are failed (an action runs at most once).
    this.changes = [];
    const connectionId = this.upstream.connectionId!;
    const frames = [
      JSON.stringify({ type: "Connect", sessionId: `shard-${connectionId}`, connectionCount: 0, lastCloseReason: null, clientTs: this.front.now() }),
    ];
    frames.push(...this.querySetFrames([...this.held.values()].map(addFor)));
    for (const [id, request] of [...this.pending]) {
      if (request.answer.kind === "Mutation") {
        frames.push(request.frame);
        continue;
      }
      this.pending.delete(id);
      this.shardStorage.deleteRequest(id);
      request.answer.resolve(
        actionFailure(request.clientRequestId, "The connection to the database was reset while this action ran; it may or may not have completed"),
      );
    }
    this.outbox = frames;
    this.saveState();
    // Clients still owed a Transition at a ts they saw elsewhere: the new session's clock must get there too.
    this.advancedTo = 0n;
    let newest = 0n;
    for (const session of this.owing) if (session.owedTs !== null && session.owedTs > newest) newest = session.owedTs;
    if (newest > 0n) this.requestAdvance(newest);
  }

  // ---- client turns ----

  /** One client's Transition from what the shard holds, at the timestamp of the last push applied. */
  async turn(session: SyncSession): Promise<TurnResult> {
    const modifications: EncodedModification[] = session.pendingRemovals.map(queryRemoved);
    session.pendingRemovals = [];
    let seen = false;
    for (const [queryId, query] of session.queries) {
      const held = this.held.get(query.instanceKey);
      if (!held) continue;
      seen = held.waiters.delete(session) || seen;
      if (query.sentHash === held.hash) continue;
      if (!held.result) {
        if (held.hash !== null && !held.refetching) this.refetch(held);
        continue;
      }
      modifications.push(modificationFor(queryId, held.result, held.resultJournal));
      this.results.get(held);
      query.sentHash = held.hash;
    }
    // Results this turn was the last to need may go now, if the budget is passed.
    if (seen) this.results.fitBudget();
    const end: StateVersion = { querySet: session.receivedQuerySet, ts: this.upstream.version.ts, identity: session.receivedIdentity };
    const owed = session.owesTransition || (session.owedTs !== null && end.ts >= session.owedTs);
    const moved = end.querySet !== session.version.querySet || end.identity !== session.version.identity;
    if (modifications.length === 0 && !moved && !owed) return { runs: 0, sent: false };
    // Never backwards: a client's ts only moves forward (a resync restarts the peer session, not the clock).
    if (end.ts < session.version.ts) end.ts = session.version.ts;
    if (!this.front.send(session, transition(session.version, end, modifications))) return { runs: 0, sent: false };
    session.version = end;
    session.owesTransition = false;
    if (session.owedTs !== null && end.ts >= session.owedTs) {
      session.owedTs = null;
      this.owing.delete(session);
    }
    this.front.counters.transitionsSent++;
    this.front.sent(session);
    return { runs: 0, sent: true };
  }
}

function addFor(held: HeldQuery): unknown {
  return { type: "Add", queryId: held.upstreamId, udfPath: held.udfPath, args: [held.args], journal: held.journal, internal: { caller: held.caller } };
}

/** Live sync inside a sync shard: the front over the upstream link to the deployment object. */
export function shardFront(
  options: Omit<UpstreamSourceOptions, "knobs"> & Omit<SyncFrontOptions, "source" | "knobs"> & { knobs: () => FrontKnobs & UpstreamKnobs },
): SyncFront<UpstreamSource> {
  return new SyncFront({ ...options, source: new UpstreamSource(options) });
}
