/**
 * Live sync: sessions speaking the Convex sync protocol over their sockets.
 * This module keeps the sessions (opening, restoring after a wake, closing,
 * saving their versions) and handles each protocol message; the rest lives
 * in rooms of their own:
 *
 * - `query-instances.ts`: one shared instance per (function, args), run once
 *   per timestamp however many sessions watch it, held once in the
 *   subscription index.
 * - `refresh-scheduler.ts`: sessions waiting for a turn (coalesced, bounded,
 *   sliced); `refresh-turn.ts`: what one turn does (re-run what is dirty,
 *   build one Transition within its byte bounds).
 *
 * The engine announces every commit (`Engine.onCommit`); this server marks
 * the instances it hit dirty and schedules their sessions. Nothing else
 * (restart, hibernation, a no-op mutation, search maintenance) dirties
 * anything. Every step that touches the database runs inside the engine's
 * lock, so a turn sees one snapshot and Transitions are ordered after the
 * mutation responses that caused them.
 */
import { AuthenticationError, convexToJson, isPlainObject, jsonToConvex, knownFunctionError, type CommitEvent, type Engine, type VerifiedToken } from "../engine/index.ts";
import {
  PING,
  FrameTooLargeError,
  ProtocolError,
  actionFailure,
  actionSuccess,
  fatalError,
  mutationFailure,
  mutationSuccess,
  parseClientMessage,
  VISIBILITY_EVENT,
  type ClientMessage,
} from "../protocol/sync.ts";
import { SyncSession, type Connection, type SessionAttachment, type SessionAuth } from "./session.ts";
import { decideAuthenticate, expiredFrame, refusedFrame } from "./authenticate.ts";
import type { HeldMutation, SyncStorage } from "./storage.ts";
import { RefreshScheduler, type RefreshKnobs } from "./refresh-scheduler.ts";
import { TokenBucket } from "./token-bucket.ts";
import { QueryInstances } from "./query-instances.ts";
import { resultHash } from "./hash.ts";
import { RefreshTurn } from "./refresh-turn.ts";
import { WaitingRoom } from "./waiting-room.ts";

/** The knobs live sync reads (from the deployment's knob table). */
export interface SyncKnobs extends RefreshKnobs {
  maxFrameBytes: number;
  idlePingMs: number;
  maxClockAheadMs: number;
  /** Executions per second for queries new to a session (the replay of a reconnecting client's query set). */
  resubscribeRate: number;
  resubscribeBurst: number;
  /** Memory for shared encoded results (LRU beyond it; an evicted one is re-run when needed). */
  queryResultCacheBytes: number;
  /** Queries one session may hold. */
  maxQueriesPerSession: number;
  /** Mutations one session may have waiting to run. */
  maxPendingMutationsPerSession: number;
  /** Actions one session may have running. */
  maxPendingActionsPerSession: number;
  /** Largest Transition sent; results that do not fit wait for the next one (below the runtime's 32 MiB message limit). */
  maxTransitionBytes: number;
  /** Bytes of Transitions one session may be sent per second (burst: maxTransitionBytes); past it its updates coalesce. */
  sessionSendBytesPerSecond: number;
}

export interface SyncCounters {
  /** Instance re-runs caused by commits. */
  invalidations: number;
  transitionsSent: number;
  protocolErrors: number;
  /** Turns put off because a session used up its send budget. */
  sendsPutOff: number;
  /** Characters of frames sent to sockets (JSON text: about bytes): the sending work a commit costs this object. */
  charactersSent: number;
}

/** Close codes: 1008 policy violation (protocol error), 1011 internal error. */
const CLOSE_PROTOCOL_ERROR = 1008;
const CLOSE_INTERNAL_ERROR = 1011;

/**
 * The head of a Mutation or Action frame as the official client writes it
 * (`{"type":"Mutation","requestId":7,...`): read from a frame too large to
 * parse, so that request alone fails instead of the whole socket.
 */
const REQUEST_HEAD = /^\s*\{\s*"type"\s*:\s*"(Mutation|Action)"\s*,\s*"requestId"\s*:\s*(\d{1,15})\s*[,}]/;

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
  /** Checks a token from `Authenticate` (throws `AuthenticationError`); without it every token is refused. */
  authenticate?: (token: string) => Promise<VerifiedToken>;
}

export class SyncServer {
  readonly counters: SyncCounters = { invalidations: 0, transitionsSent: 0, protocolErrors: 0, sendsPutOff: 0, charactersSent: 0 };
  private readonly sessions = new Map<string, SyncSession>();
  /** Sync shards' sessions among `sessions` (docs/SHARDS.md). */
  private internalSessions = 0;
  /** Accepted sessions waiting for room, in arrival order. */
  private readonly waitingRoom = new WaitingRoom<SyncSession>();
  readonly instances: QueryInstances;
  readonly scheduler: RefreshScheduler;
  /** Sessions whose attachment lags behind the version last sent (saved once the refresh queue drains). */
  private readonly unsavedVersions = new Set<SyncSession>();
  /** Whether query sets and instances have been loaded from storage since this object started. */
  private loaded = false;
  /** Budget for running queries that are new to a session (reconnect replays). */
  private readonly resubscribe: TokenBucket;
  private readonly turns: RefreshTurn;
  private readonly engine: Engine;
  private readonly storage: SyncStorage;
  private readonly knobs: () => SyncKnobs;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly advanceTimestamp: (ts: bigint) => void;
  private readonly authenticate: (token: string) => Promise<VerifiedToken>;

  constructor(options: SyncServerOptions) {
    this.engine = options.engine;
    this.storage = options.storage;
    this.knobs = options.knobs;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? ((line) => console.log(line));
    this.advanceTimestamp = options.advanceTimestamp;
    this.authenticate =
      options.authenticate ??
      (() => Promise.reject(new AuthenticationError("NoAuthProvider", "This deployment has no auth providers (convex/auth.config.ts)")));
    // The refresh scheduler is one owner of the function lock: it gets a slice per round, as each session gets a function.
    const refreshOwner = {};
    this.scheduler = new RefreshScheduler({
      knobs: this.knobs,
      exclusive: (fn) => this.engine.exclusive(fn, refreshOwner),
      // An expired token is caught before the session is sent anything more.
      turn: (session) => (this.endIfExpired(session) ? Promise.resolve({ runs: 0, sent: false }) : this.turns.run(session)),
      onError: (session, error) => this.internalError(session, error),
      now: this.now,
      pause: options.pause ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      onIdle: () => this.saveVersions(),
    });
    this.instances = new QueryInstances(this.engine, this.storage, () => this.knobs().queryResultCacheBytes);
    this.resubscribe = new TokenBucket(
      () => this.knobs().resubscribeRate,
      () => this.knobs().resubscribeBurst,
      this.now(),
    );
    this.turns = new RefreshTurn({
      instances: this.instances,
      knobs: this.knobs,
      now: this.now,
      counters: this.counters,
      lastTimestamp: () => this.engine.store.lastTimestamp(),
      resubscribe: this.resubscribe,
      send: (session, frame) => this.sendOrDrop(session, frame),
      schedule: (session) => this.schedule(session),
      // Saving the attachment costs about as much as the send itself; it only has to be
      // current before the object can hibernate, which needs it idle, so save when the
      // refresh queue drains: a fan-out sends everything first, and a session refreshed
      // many times under load is saved once.
      sent: (session) => this.unsavedVersions.add(session),
    });
    this.engine.onCommit((commit) => this.invalidate(commit));
  }

  /** Admitted client sessions (the ones `maxSessions` counts; shards' internal sessions are not clients). */
  get sessionCount(): number {
    return this.sessions.size - this.waitingRoom.size - this.internalSessions;
  }

  /** Sessions whose page is in the background (calmsync's client transport). */
  get backgroundCount(): number {
    let n = 0;
    for (const session of this.sessions.values()) if (session.background) n++;
    return n;
  }

  /** Sessions signed in (the others are anonymous). */
  get signedInCount(): number {
    let n = 0;
    for (const session of this.sessions.values()) if (session.auth !== null) n++;
    return n;
  }

  /** Sessions accepted but waiting for room. */
  get waitingCount(): number {
    return this.waitingRoom.size;
  }

  oldestWaitMs(): number {
    return this.waitingRoom.oldestWaitMs(this.now());
  }

  /** When the longest-waiting session started waiting (ms), or null. */
  oldestWaitingSince(): number | null {
    return this.waitingRoom.oldestSince();
  }

  /**
   * Lets waiting sessions in, in arrival order, while `canAdmit()` allows (room
   * and the admission bucket); each is then served like any other session, its
   * query set running through the re-subscription budget. Returns how many.
   */
  admitWaiting(canAdmit: () => boolean): number {
    // Loaded while they still count as waiting: a waiting session's restored queries have been sent nothing.
    this.ensureLoaded();
    const admitted = this.waitingRoom.admit(canAdmit);
    for (const session of admitted) {
      const held = session.admit();
      this.saveAttachment(session);
      this.schedule(session);
      for (const mutation of held) this.runHeld(session, mutation);
    }
    return admitted.length;
  }

  /** Tells sessions that waited `maxWaitMs` to come back later: 1013 with a retry hint the official client backs off on. */
  expireWaiting(maxWaitMs: number, reason: () => string): number {
    const expired = this.waitingRoom.expire(this.now(), maxWaitMs);
    for (const session of expired) this.drop(session, 1013, reason(), `waited ${maxWaitMs} ms for room; told to come back later`);
    return expired.length;
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
    const waiting: SyncSession[] = [];
    for (const { connection, attachment } of open) {
      const session = new SyncSession(connection, attachment);
      this.sessions.set(attachment.connectionId, session);
      if (session.internal) this.internalSessions++;
      if (session.waitingSince !== null) waiting.push(session);
    }
    // Back in arrival order (sockets come back in any order).
    waiting.sort((a, b) => a.waitingSince! - b.waitingSince!);
    for (const session of waiting) this.waitingRoom.add(session, session.waitingSince!);
    // Mutations held for waiting sessions wait on; an admitted session's (admitted, then stopped before they ran) run now.
    for (const held of this.storage.loadHeldMutations()) {
      const session = this.sessions.get(held.connectionId);
      if (!session) {
        this.storage.deleteConnection(held.connectionId);
        continue;
      }
      session.pendingMutations++;
      if (session.waiting) session.held.push(held);
      else this.runHeld(session, held);
    }
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

  /** A new session; `waiting` holds it in the waiting room until `admitWaiting` lets it in. */
  open(connection: Connection, connectionId: string, waiting = false): SyncSession {
    const attachment = SyncSession.fresh(connectionId, waiting ? this.now() : null);
    connection.saveAttachment(attachment);
    const session = new SyncSession(connection, attachment);
    this.sessions.set(connectionId, session);
    if (session.waitingSince !== null) this.waitingRoom.add(session, session.waitingSince);
    return session;
  }

  /** The `count` most recently opened admitted client sessions, newest first. */
  newestSessions(count: number): SyncSession[] {
    this.ensureLoaded();
    return [...this.sessions.values()].filter((session) => !session.waiting && !session.internal).reverse().slice(0, count);
  }

  /**
   * A sync shard's session (docs/SHARDS.md): speaks the same protocol over
   * `connection`, for many clients at once, with the internal fields a
   * client may not send. Admitted at once and never pinged.
   */
  openInternal(connection: Connection, connectionId: string): SyncSession {
    const attachment: SessionAttachment = { ...SyncSession.fresh(connectionId), internal: true };
    connection.saveAttachment(attachment);
    const session = new SyncSession(connection, attachment);
    this.sessions.set(connectionId, session);
    this.internalSessions++;
    return session;
  }

  session(connectionId: string): SyncSession | undefined {
    return this.sessions.get(connectionId);
  }

  /**
   * Handles one frame, strictly after the socket's earlier ones: while one is
   * still being handled (a token being checked), later frames queue behind
   * it, as Convex awaits a token before the next message. Most frames are
   * handled at once and return nothing to wait for. Protocol errors close
   * this socket only, with a FatalError first.
   */
  receive(session: SyncSession, frame: string | ArrayBuffer): Promise<void> | undefined {
    return session.inOrder(() => this.receiveNow(session, frame));
  }

  /** Handles one frame now; a promise only for a message that waits on something (it never rejects). */
  private receiveNow(session: SyncSession, frame: string | ArrayBuffer): Promise<void> | undefined {
    if (session.closed) return undefined;
    this.ensureLoaded();
    try {
      let message: ClientMessage;
      try {
        message = parseClientMessage(frame, this.knobs().maxFrameBytes);
      } catch (error) {
        if (error instanceof FrameTooLargeError && session.sessionId !== null && this.refuseOversizedRequest(session, frame as string, error)) return undefined;
        throw error;
      }
      if (message.type !== "Connect" && session.sessionId === null) throw new ProtocolError(`${message.type} before Connect`);
      return this.handle(session, message)?.catch((error: unknown) => this.failed(session, error));
    } catch (error) {
      this.failed(session, error);
      return undefined;
    }
  }

  /** A message's failure: the client's (a protocol error) or ours; either way only this socket closes. */
  private failed(session: SyncSession, error: unknown): void {
    if (error instanceof ProtocolError) return this.fail(session, error.message);
    this.internalError(session, error);
  }

  /**
   * Our bug or a storage failure, not the client's fault: close this socket as an
   * internal error (the client retries with backoff); every other session goes on.
   */
  private internalError(session: SyncSession, error: unknown): void {
    this.drop(session, CLOSE_INTERNAL_ERROR, "InternalServerError", `failed: ${error instanceof Error ? error.stack : String(error)}`);
  }

  /**
   * An oversized Mutation or Action whose request id can be read fails as that
   * request (the official client rejects that one promise) instead of closing
   * the socket with a fatal error that the client cannot recover from.
   */
  private refuseOversizedRequest(session: SyncSession, frame: string, error: FrameTooLargeError): boolean {
    const head = REQUEST_HEAD.exec(frame.slice(0, 200));
    if (!head) return false;
    const requestId = Number(head[2]);
    const reason = `${head[1]} request is too large: ${error.message}`;
    this.log(`[${session.connectionId}] session=${session.sessionId} ${reason}`);
    this.sendOrDrop(session, head[1] === "Mutation" ? mutationFailure(requestId, reason, undefined) : actionFailure(requestId, reason));
    return true;
  }

  private handle(session: SyncSession, message: ClientMessage): Promise<void> | undefined {
    if (!session.internal && carriesInternalFields(message)) throw new ProtocolError("Internal fields are for a sync shard's session, not a client's");
    switch (message.type) {
      case "Connect":
        this.connect(session, message);
        return undefined;
      case "ModifyQuerySet":
        this.modifyQuerySet(session, message);
        return undefined;
      case "Mutation":
        // Queued, not awaited: the runtime delivers a socket's next frame only when this handler
        // returns, so awaiting would leave a flood queued in front of everyone else's frames,
        // where no limit sees it. Queued here, it counts against maxPendingMutationsPerSession
        // and runs in order, one per round of the fair lock.
        this.mutation(session, message);
        return undefined;
      case "Authenticate":
        return this.authenticateSession(session, message);
      case "Action":
        this.action(session, message);
        return undefined;
      case "Event":
        if (message.eventType === VISIBILITY_EVENT && isPlainObject(message.event) && typeof message.event.background === "boolean") {
          const background = message.event.background;
          if (background === session.background) return;
          session.background = background;
          this.saveAttachment(session);
          // Back in front: whatever it skipped goes out now.
          if (!background) this.schedule(session);
        }
        return undefined;
    }
  }

  /**
   * `Authenticate`: checks the token (the socket's later messages wait), then
   * switches the session to the new identity: its queries that read the
   * identity move to that identity's instances, and the next Transition
   * carries the new identity version, which is how the client learns the
   * token was accepted. A refused token ends the session with `AuthError`.
   */
  private authenticateSession(session: SyncSession, message: Extract<ClientMessage, { type: "Authenticate" }>): Promise<void> {
    return decideAuthenticate(session, message, this.authenticate).then((outcome) => {
      if (session.closed) return;
      if (outcome.ok) return this.signIn(session, message.baseVersion, outcome.auth);
      this.sendOrDrop(session, refusedFrame(message.baseVersion, outcome.reason));
      this.drop(session, 1000, "AuthError", `token refused: ${outcome.reason}`);
    });
  }

  /**
   * Switches the session's identity in its own turn of the function lock, so
   * no refresh turn is half done around it: a Transition that carries the
   * new identity version holds no result computed for the old identity.
   */
  private signIn(session: SyncSession, baseVersion: number, auth: SessionAuth | null): Promise<void> {
    return this.engine.exclusive(async () => {
      if (session.closed) return;
      session.auth = auth;
      session.receivedIdentity = baseVersion + 1;
      this.instances.rekey(session);
      // Confirmed by a Transition that moves the identity version, even one with no modifications.
      session.owesTransition = true;
      this.saveAttachment(session);
      this.schedule(session);
    }, session);
  }

  /**
   * Checked before each function and Transition: a session whose token
   * expired is told so (`authUpdateAttempted: false`) and closed; the client
   * signs in again with a fresh token. Returns whether it was.
   */
  private endIfExpired(session: SyncSession): boolean {
    const expired = expiredFrame(session, this.now());
    if (expired === null) return false;
    this.sendOrDrop(session, expired);
    this.drop(session, 1000, "AuthError", "token expired");
    return true;
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
        return this.drop(session, CLOSE_INTERNAL_ERROR, "InternalServerError: maxObservedTimestamp is ahead of this deployment", `Connect maxObservedTimestamp ${observed} is ahead of the clock`);
      }
      this.log(`[${session.connectionId}] session=${message.sessionId} observed ts ${observed} ahead of ${latest}; moving the clock forward`);
      this.advanceTimestamp(observed);
    }
    session.sessionId = message.sessionId;
    this.saveAttachment(session);
  }

  private modifyQuerySet(session: SyncSession, message: Extract<ClientMessage, { type: "ModifyQuerySet" }>): void {
    session.checkQuerySetChange(message, this.knobs().maxQueriesPerSession);
    // Check every query's arguments first: bad ones fail the message with nothing applied.
    const added = message.modifications.map((m) => (m.type === "Add" ? this.instances.prepare(m.udfPath, m.args, m.journal) : null));
    message.modifications.forEach((modification, i) => {
      if (modification.type === "Add") {
        // A shard's session names each query's caller; a client's queries run as the client.
        const caller = session.internal ? (modification.internal?.caller ?? null) : session.auth;
        const instance = this.instances.acquire(added[i]!, caller);
        this.instances.subscribe(instance, session);
        session.queries.set(modification.queryId, { instanceKey: instance.key, sentHash: null, ...(session.internal ? { caller } : {}) });
        this.storage.saveQuery({ connectionId: session.connectionId, queryId: modification.queryId, instanceKey: instance.key, ...(session.internal ? { caller } : {}) });
      } else {
        this.removeQuery(session, modification.queryId);
        session.pendingRemovals.push(modification.queryId);
      }
    });
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

  /**
   * A mutation: run in the session's turn of the function lock, or, while the
   * session waits for room, held in storage (so no event stays open and a
   * wake loses nothing) and run in order once it is admitted.
   */
  private mutation(session: SyncSession, message: Extract<ClientMessage, { type: "Mutation" }>): void {
    // A shard's session carries all its clients' mutations; the shard holds each client to the limit.
    const limit = session.internal ? Infinity : this.knobs().maxPendingMutationsPerSession;
    if (session.pendingMutations >= limit) {
      // Not fatal: the client fails this one mutation and can retry once earlier ones finish.
      const refusal = `Too many concurrent mutations on this connection: ${limit} are waiting (knob maxPendingMutationsPerSession)`;
      this.sendOrDrop(session, mutationFailure(message.requestId, refusal, undefined));
      return;
    }
    session.pendingMutations++;
    if (session.waiting) {
      const held = { connectionId: session.connectionId, seq: session.nextHeldSeq(), message, auth: session.auth };
      this.storage.holdMutation(held);
      session.held.push(held);
      return;
    }
    const caller = session.internal ? (message.internal?.caller ?? null) : session.auth;
    this.runMutation(session, message, caller).catch((error) => this.internalError(session, error));
  }

  /** Runs a mutation held while its session waited; its row goes once it has an answer. */
  private runHeld(session: SyncSession, held: HeldMutation): void {
    this.runMutation(session, held.message, held.auth, () => this.storage.releaseMutation(held.connectionId, held.seq)).catch((error) => this.internalError(session, error));
  }

  private runMutation(session: SyncSession, message: Extract<ClientMessage, { type: "Mutation" }>, caller: SessionAuth | null, answered?: () => void): Promise<void> {
    const sessionId = session.sessionId!;
    // A retry is recognised by the client's session and request id; a shard passes them on for its client.
    const retryOf = session.internal && message.internal?.clientSessionId ? { sessionId: message.internal.clientSessionId, requestId: message.internal.clientRequestId ?? message.requestId } : { sessionId, requestId: message.requestId };
    // The session owns its place in the function lock: its mutations run in order, one per round.
    return this.engine
      .exclusive(async () => {
        if (session.closed || this.endIfExpired(session)) return;
        const fingerprint = await resultHash(`${message.udfPath}\n${JSON.stringify(message.args)}`);
        const previous = this.storage.findMutationResult(retryOf.sessionId, retryOf.requestId);
        if (previous && previous.fingerprint !== "" && previous.fingerprint !== fingerprint) {
          // A reused request id is not a retry: answer nothing of the other call, run nothing.
          const reason = `Request ${message.requestId} of this session was already used for a different mutation; a retry must repeat the same function and arguments`;
          this.sendOrDrop(session, mutationFailure(message.requestId, reason, undefined));
        } else if (previous) {
          // A retry after a reconnect: answer the original outcome, run nothing.
          this.sendOrDrop(session, mutationSuccess(message.requestId, previous.resultJson, previous.ts));
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
            this.sendOrDrop(session, mutationSuccess(message.requestId, result.text, result.ts, result.logLines));
          } catch (error) {
            const failure = knownFunctionError(error);
            if (!failure) throw error;
            this.sendOrDrop(session, mutationFailure(message.requestId, failure.message, failure.data === undefined ? undefined : convexToJson(failure.data), failure.logLines));
          }
        }
        answered?.();
        // The client resolves the mutation once a Transition reaches its ts.
        session.owesTransition = true;
        this.schedule(session);
      }, session)
      .finally(() => session.pendingMutations--);
  }

  /** Marks what a commit affected and schedules their sessions (the engine calls it for every commit, whatever ran it). */
  private invalidate(commit: CommitEvent): void {
    this.ensureLoaded();
    for (const instance of this.instances.invalidate(commit.writes, commit.searchWrites)) {
      for (const session of instance.subscribers.keys()) this.schedule(session);
    }
  }

  /** Queues a session for a refresh turn; a waiting session's queries do not run until it is admitted. */
  private schedule(session: SyncSession): void {
    if (session.waiting) return;
    // A turn serves the session's query set: after a wake it must be loaded first (an admission, a sign-in or
    // a mutation may be the first thing to need it), or the turn would answer an empty set.
    this.ensureLoaded();
    this.scheduler.schedule(session);
  }

  /** Sends a frame; if the runtime refuses it, the client's state is unknown, so close the session (it reconnects and resyncs). */
  /**
   * Runs an action outside the function lock and answers when it ends; the
   * socket's other messages go on meanwhile (Convex runs a socket's actions
   * concurrently). What it writes reaches subscribers by the usual commits.
   */
  private action(session: SyncSession, message: Extract<ClientMessage, { type: "Action" }>): void {
    const limit = session.internal ? Infinity : this.knobs().maxPendingActionsPerSession;
    if (session.waiting) {
      this.sendOrDrop(session, actionFailure(message.requestId, "The deployment is at capacity and this connection is waiting for admission; try the action again shortly"));
      return;
    }
    if (session.pendingActions >= limit) {
      this.sendOrDrop(session, actionFailure(message.requestId, `Too many concurrent actions on this connection: ${limit} are running (knob maxPendingActionsPerSession)`));
      return;
    }
    if (this.endIfExpired(session)) return;
    session.pendingActions++;
    void (async () => {
      try {
        const caller = session.internal ? (message.internal?.caller ?? null) : session.auth;
        const result = await this.engine.runAction(message.udfPath, jsonToConvex(message.args), { identity: caller?.identity ?? null });
        this.sendOrDrop(session, actionSuccess(message.requestId, result.text, result.logLines));
      } catch (error) {
        const failure = knownFunctionError(error);
        if (!failure) this.log(`[${session.connectionId}] action ${message.udfPath} failed: ${(error as Error)?.stack ?? error}`);
        const text = failure?.message ?? "Server Error";
        this.sendOrDrop(session, actionFailure(message.requestId, text, failure?.data === undefined ? undefined : convexToJson(failure.data), failure?.logLines));
      } finally {
        session.pendingActions--;
      }
    })();
  }

  private sendOrDrop(session: SyncSession, frame: string): boolean {
    this.counters.charactersSent += frame.length;
    if (session.send(frame, this.now())) return true;
    if (!session.closed) this.drop(session, CLOSE_INTERNAL_ERROR, "InternalServerError", `send of ${frame.length} characters failed; closing`);
    return false;
  }

  /** Closes a session's socket with `code` and forgets it; logs `why` when given. The one way the server ends a session. */
  drop(session: SyncSession, code: number, reason: string, why?: string): void {
    if (why) this.log(`[${session.connectionId}] session=${session.sessionId ?? "-"} ${why}`);
    session.connection.close(code, reason);
    this.close(session);
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
    session.send(fatalError(reason), this.now());
    this.drop(session, CLOSE_PROTOCOL_ERROR, "ProtocolError", `protocol error: ${reason}`);
  }

  /** Forgets a session whose socket closed. */
  close(session: SyncSession): void {
    if (session.closed) return;
    session.closed = true;
    if (session.sendRetry !== null) clearTimeout(session.sendRetry);
    // Mutations held while it waited go with it (storage forgets them below); the client re-sends them on its next socket.
    this.waitingRoom.remove(session);
    this.sessions.delete(session.connectionId);
    if (session.internal) this.internalSessions--;
    this.scheduler.forget(session);
    this.unsavedVersions.delete(session);
    for (const queryId of [...session.queries.keys()]) this.removeQuery(session, queryId);
    this.storage.deleteConnection(session.connectionId);
  }

  /** Sends Ping to sessions that have been sent nothing for half the ping interval. */
  pingIdle(): void {
    const now = this.now();
    const threshold = this.knobs().idlePingMs / 2;
    for (const session of [...this.sessions.values()]) if (!session.internal && now - session.lastSentAt >= threshold) this.sendOrDrop(session, PING);
  }
}

/** Whether a message carries fields only a shard's internal session may send. */
function carriesInternalFields(message: ClientMessage): boolean {
  if (message.type === "Mutation" || message.type === "Action") return message.internal !== undefined;
  if (message.type === "ModifyQuerySet") return message.modifications.some((m) => m.type === "Add" && m.internal !== undefined);
  return false;
}
