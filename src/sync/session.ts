/**
 * One client connection's sync state. What must survive hibernation while the
 * socket stays open lives in a small attachment (`SessionAttachment`); the
 * query set lives in `SyncStorage`.
 */
import type { UserIdentity } from "../engine/index.ts";
import { ProtocolError, type ClientMessage, type InternalFields, type StateVersion } from "../protocol/sync.ts";
import type { TokenBucket } from "./token-bucket.ts";

/** The transport: a socket in the Durable Object, a fake in tests. */
export interface Connection {
  /** False when the runtime refused the frame (socket gone, frame over its size limit): the client did not get it. */
  send(frame: string): boolean;
  close(code: number, reason: string): void;
  /** Keeps the session's versions with the socket, so they survive hibernation. */
  saveAttachment(attachment: SessionAttachment): void;
}

/** Kept on the socket (well under the 16 KiB attachment limit). */
export interface SessionAttachment {
  v: 1;
  /** Our id for this connection, used in logs and as the storage key. */
  connectionId: string;
  /** The client's session id from Connect (stable across its reconnects); null before Connect. */
  sessionId: string | null;
  /** Last version sent to the client: the next Transition must start here. */
  querySet: number;
  ts: string;
  identity: number;
  /** Latest versions received from the client: the next Transition ends here. */
  receivedQuerySet: number;
  receivedIdentity: number;
  /** Set while the session waits for room (ms since it started waiting): it survives hibernation in order. */
  waitingSince?: number;
  /** The page is in the background (from calmsync's client transport). */
  background?: true;
  /** Who the session is signed in as (absent: anonymous). */
  auth?: SessionAuth;
  /** A sync shard's peer session (see `PeerSession`). */
  internal?: true;
}

/**
 * A mutation a waiting session sent: kept until it has run, so a wake, an
 * eviction or a restart while the session waits loses nothing (and holds
 * no event open, so the object may hibernate meanwhile).
 */
export interface HeldMutation {
  connectionId: string;
  /** Order within the connection. */
  seq: number;
  message: Extract<ClientMessage, { type: "Mutation" }>;
  /** Who the session was signed in as when it sent it (the mutation runs as that caller). */
  auth: SessionAuth | null;
  /** What it took from the pending-bytes budgets, given back when it has its answer (in memory; not stored). */
  bytes?: number;
}

/** A verified identity as a session holds it. */
export interface SessionAuth {
  identity: UserIdentity;
  /** A digest of the identity: what instance keys of queries that read it carry. */
  key: string;
  /** When the token stops being valid (ms since the epoch). */
  expiresAt: number;
}

export interface SessionQuery {
  instanceKey: string;
  /** Hash of the result last sent for this query; null until its first result is sent. */
  sentHash: string | null;
  /** On a shard's internal session: the caller of this query (each query may have another). */
  caller?: SessionAuth | null;
}

export class SyncSession {
  readonly connectionId: string;
  readonly connection: Connection;
  sessionId: string | null;
  version: StateVersion;
  receivedQuerySet: number;
  receivedIdentity: number;
  readonly queries = new Map<number, SessionQuery>();
  /** Query ids removed since the last Transition (each becomes a QueryRemoved). */
  pendingRemovals: number[] = [];
  /** Mutations received and not yet answered. */
  pendingMutations = 0;
  /** Actions of this session running now (bounded by `maxPendingActionsPerSession`). */
  pendingActions = 0;
  /** Bytes of its frames held before they are handled (see `PendingBytes`). */
  pendingBytes = 0;
  /** A Transition is owed even without modifications (after a mutation, to confirm its ts). */
  owesTransition = false;
  /** On a sync shard: a Transition is owed once the shard holds this ts (the client's mutation committed at it). */
  owedTs: bigint | null = null;
  /** Its page is in the background (calmsync's client transport says so): refreshed less often under pressure. */
  background: boolean;
  /** When it was last sent a Transition (for the background refresh interval); 0: never. */
  lastRefreshAt = 0;
  /** When it started waiting for room, or null once admitted (see waiting-room.ts). */
  waitingSince: number | null;
  /** Mutations sent while it waited, in order, kept in storage until they run (see `HeldMutation`). */
  held: HeldMutation[] = [];
  private heldSeq = 0;
  /** Bytes this session may be sent (created on its first Transition; see RefreshTurn). */
  sendBudget: TokenBucket | null = null;
  /** A turn put off until the send budget recovers. */
  sendRetry: ReturnType<typeof setTimeout> | null = null;
  /** When we last sent anything, for idle pings (0 after a wake: ping at the next chance). */
  lastSentAt = 0;
  closed = false;
  /** Signed in as (null: anonymous). */
  auth: SessionAuth | null;
  /**
   * The tail of this socket's messages still being handled (a token being
   * checked): later messages wait behind it, so they are handled in order.
   */
  inbound: Promise<void> | null = null;
  /** Frames it may send now (sessionFrameRate), made on its first frame; frames waiting for theirs, unparsed. */
  frameBudget: TokenBucket | null = null;
  throttledFrames = 0;
  /** Ends the wait of the throttled frame now waiting for its token (the front calls it when the session ends). */
  endThrottleWait: (() => void) | null = null;

  constructor(connection: Connection, attachment: SessionAttachment) {
    this.connection = connection;
    this.connectionId = attachment.connectionId;
    this.sessionId = attachment.sessionId;
    this.version = { querySet: attachment.querySet, ts: BigInt(attachment.ts), identity: attachment.identity };
    this.receivedQuerySet = attachment.receivedQuerySet;
    this.receivedIdentity = attachment.receivedIdentity;
    this.waitingSince = attachment.waitingSince ?? null;
    this.background = attachment.background === true;
    this.auth = attachment.auth ?? null;
  }

  get waiting(): boolean {
    return this.waitingSince !== null;
  }

  /** Lets the session in; the server then runs its held mutations. Returns them (taken off the session). */
  admit(): HeldMutation[] {
    this.waitingSince = null;
    const held = this.held;
    this.held = [];
    return held;
  }

  /** The next held mutation's place in line (after any restored ones). */
  nextHeldSeq(): number {
    for (const held of this.held) if (held.seq > this.heldSeq) this.heldSeq = held.seq;
    return ++this.heldSeq;
  }

  static fresh(connectionId: string, waitingSince: number | null = null): SessionAttachment {
    return {
      v: 1,
      connectionId,
      sessionId: null,
      querySet: 0,
      ts: "0",
      identity: 0,
      receivedQuerySet: 0,
      receivedIdentity: 0,
      ...(waitingSince !== null ? { waitingSince } : {}),
    };
  }

  attachment(): SessionAttachment {
    return {
      v: 1,
      connectionId: this.connectionId,
      sessionId: this.sessionId,
      querySet: this.version.querySet,
      ts: this.version.ts.toString(),
      identity: this.version.identity,
      receivedQuerySet: this.receivedQuerySet,
      receivedIdentity: this.receivedIdentity,
      ...(this.waitingSince !== null ? { waitingSince: this.waitingSince } : {}),
      ...(this.background ? { background: true as const } : {}),
      ...(this.auth ? { auth: this.auth } : {}),
    };
  }

  /**
   * Runs a message's handling strictly after the socket's earlier ones: while
   * one is still being handled (a token being checked), later ones queue
   * behind it. Most are handled at once and return nothing to wait for.
   */
  inOrder(handle: () => Promise<void> | undefined): Promise<void> | undefined {
    const handled = this.inbound ? this.inbound.then(handle) : handle();
    if (!handled) return undefined;
    const tail: Promise<void> = handled.finally(() => {
      if (this.inbound === tail) this.inbound = null;
    });
    this.inbound = tail;
    return tail;
  }

  /**
   * Checks a query set change against the set it produces, before any of it
   * applies: versions chain, ids are added once and removed only if present,
   * and the set stays within `maxQueries`.
   */
  checkQuerySetChange(message: Extract<ClientMessage, { type: "ModifyQuerySet" }>, limits: SessionLimits): void {
    if (message.baseVersion !== this.receivedQuerySet) {
      throw new ProtocolError(`ModifyQuerySet.baseVersion ${message.baseVersion} does not match the query set version ${this.receivedQuerySet}`);
    }
    if (message.newVersion <= message.baseVersion) throw new ProtocolError("ModifyQuerySet.newVersion must be greater than baseVersion");
    const ids = new Set(this.queries.keys());
    for (const modification of message.modifications) {
      if (modification.type === "Add") {
        if (ids.has(modification.queryId)) throw new ProtocolError(`Query ${modification.queryId} is already in the query set`);
        ids.add(modification.queryId);
      } else if (!ids.delete(modification.queryId)) {
        throw new ProtocolError(`Query ${modification.queryId} is not in the query set and cannot be removed`);
      }
    }
    if (ids.size > limits.queries)
      throw new ProtocolError(`Query set of ${ids.size} queries exceeds the limit of ${limits.queries} per session (knob ${limits.queriesKnob})`);
  }

  // ---- what differs between a client and a shard's peer session (PeerSession overrides these) ----

  /** A client: counted against `maxSessions`, admitted through the waiting room, pinged when idle, shed last. */
  get isClient(): boolean {
    return true;
  }

  /** Who a query, mutation or action of this session runs as: the signed-in client (fields only a shard may send are refused). */
  callerOf(internal: InternalFields | undefined): SessionAuth | null {
    if (internal !== undefined) throw new ProtocolError("Internal fields are for a sync shard's session, not a client's");
    return this.auth;
  }

  /** Who a query of the session's set runs as. */
  queryCaller(_query: SessionQuery): SessionAuth | null {
    return this.auth;
  }

  /** Whether some of its queries may run as a caller (so a query found reading the identity moves them). */
  get hasCallers(): boolean {
    return this.auth !== null;
  }

  /**
   * Whose turn of the function lock a mutation takes (`FairLock`): the session's own, so its
   * mutations run in order, one per round, beside every other session's.
   */
  lockOwner(_message: Extract<ClientMessage, { type: "Mutation" }>): object | string {
    return this;
  }

  /** What recognises a retry of a mutation: the client's session and request id. */
  retryKey(message: Extract<ClientMessage, { type: "Mutation" }>): { sessionId: string; requestId: number } {
    return { sessionId: this.sessionId!, requestId: message.requestId };
  }

  /** How much it may hold: queries in its set, mutations waiting, actions running. */
  limits(knobs: SessionLimitKnobs): SessionLimits {
    return {
      frameBytes: knobs.maxFrameBytes,
      queries: knobs.maxQueriesPerSession,
      queriesKnob: "maxQueriesPerSession",
      mutations: knobs.maxPendingMutationsPerSession,
      actions: knobs.maxPendingActionsPerSession,
    };
  }

  /** Whether the session's token has expired (then no function may run for it). */
  authExpired(now: number): boolean {
    return this.auth !== null && now >= this.auth.expiresAt;
  }

  /** Sends one frame; false if it did not go out (then the client's state is unknown: close the session). */
  send(frame: string, now: number): boolean {
    if (this.closed) return false;
    this.lastSentAt = now;
    return this.connection.send(frame);
  }
}

export interface SessionLimits {
  /** Largest frame it may send. */
  frameBytes: number;
  queries: number;
  queriesKnob: string;
  mutations: number;
  actions: number;
}

/** The knobs that bound one session. */
export interface SessionLimitKnobs {
  maxQueriesPerSession: number;
  maxPendingMutationsPerSession: number;
  maxPendingActionsPerSession: number;
  sessionFrameRate: number;
  sessionFrameBurst: number;
  maxThrottledFramesPerSession: number;
  maxFrameBytes: number;
  /** A shard's peer session holds the union of its clients' distinct queries: bounded on its own. */
  maxQueriesPerShard: number;
  maxPeerFrameBytes: number;
}

/**
 * A sync shard's session on the deployment object (docs/SHARDS.md): it
 * speaks the same protocol for many clients at once, naming a caller per
 * query, mutation and action, and the client's session and request id of a
 * mutation (so a retry is still recognised). It is not a client: never
 * waits, is not pinged or counted in `maxSessions`, and the shard holds each
 * of its clients to the per-session limits.
 */
export class PeerSession extends SyncSession {
  override get isClient(): boolean {
    return false;
  }

  override callerOf(internal: InternalFields | undefined): SessionAuth | null {
    return internal?.caller ?? null;
  }

  override queryCaller(query: SessionQuery): SessionAuth | null {
    return query.caller ?? null;
  }

  override get hasCallers(): boolean {
    return true;
  }

  /**
   * Each of the shard's clients takes its own turn: one client flooding its shard delays
   * another client there by one of its mutations per round, as on the deployment object,
   * not by all of them (the shard relays them in the order they came).
   */
  override lockOwner(message: Extract<ClientMessage, { type: "Mutation" }>): object | string {
    const clientSessionId = message.internal?.clientSessionId;
    return clientSessionId ? `${this.connectionId}/${clientSessionId}` : this;
  }

  override retryKey(message: Extract<ClientMessage, { type: "Mutation" }>): { sessionId: string; requestId: number } {
    const internal = message.internal;
    return internal?.clientSessionId
      ? { sessionId: internal.clientSessionId, requestId: internal.clientRequestId ?? message.requestId }
      : super.retryKey(message);
  }

  override limits(knobs: SessionLimitKnobs): SessionLimits {
    return {
      frameBytes: knobs.maxPeerFrameBytes,
      queries: knobs.maxQueriesPerShard,
      queriesKnob: "maxQueriesPerShard",
      mutations: Infinity,
      actions: Infinity,
    };
  }

  override attachment(): SessionAttachment {
    return { ...super.attachment(), internal: true };
  }
}

/** A session restored from its attachment: a peer's says so. */
export function sessionFrom(connection: Connection, attachment: SessionAttachment): SyncSession {
  return attachment.internal ? new PeerSession(connection, attachment) : new SyncSession(connection, attachment);
}
