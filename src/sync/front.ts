/**
 * The sync front: THE server of the Convex sync protocol, the same wherever
 * sessions live (the deployment object, or a sync shard). It keeps the
 * sessions (opening, restoring after a wake, closing, saving their versions),
 * handles every protocol message (`Connect`, `ModifyQuerySet`, `Mutation`,
 * `Action`, `Authenticate`, `Event`), the waiting room, background pages,
 * idle pings, errors and close codes, each in one path.
 *
 * What it serves comes from a `ResultSource`: inside the deployment object
 * the engine and its shared query instances (`local-source.ts`), inside a
 * shard the upstream link to the deployment object (`upstream-source.ts`).
 * The source runs or relays functions and builds each session's Transition;
 * the front decides who may ask for what, when, and in which order.
 *
 * A shard's session on the deployment object is a `PeerSession`, another
 * type: it names a caller per query, mutation and action and is not a
 * client (never waits, not pinged, not counted in `maxSessions`).
 */
import { AuthenticationError, isPlainObject, type VerifiedToken } from "../engine/index.ts";
import {
  PING,
  FrameTooLargeError,
  ProtocolError,
  actionFailure,
  fatalError,
  mutationFailure,
  parseClientMessage,
  VISIBILITY_EVENT,
  type ClientMessage,
} from "../protocol/sync.ts";
import {
  PeerSession,
  SyncSession,
  sessionFrom,
  type Connection,
  type SessionAttachment,
  type SessionAuth,
  type SessionLimitKnobs,
  type HeldMutation,
} from "./session.ts";
import { decideAuthenticate, expiredFrame, refusedFrame } from "./authenticate.ts";
import type { SyncStorage } from "./storage.ts";
import { RefreshScheduler, type RefreshKnobs, type TurnResult } from "./refresh-scheduler.ts";
import { prepareQuery, type PreparedQuery } from "./query-instances.ts";
import { WaitingRoom } from "./waiting-room.ts";
import { CLOSE } from "../knobs/wire.ts";
import { TokenBucket } from "./token-bucket.ts";
import { frameSize, PendingBytes, pendingRefusalText, type PendingBytesKnobs, type PendingRefusal } from "./pending-bytes.ts";
import { shedReason } from "./admission.ts";

/** The knobs the front reads (from the deployment's knob table). */
export interface FrontKnobs extends RefreshKnobs, SessionLimitKnobs, PendingBytesKnobs {
  idlePingMs: number;
  maxClockAheadMs: number;
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
  /** Frames that waited for their session's frame rate (sessionFrameRate). */
  framesThrottled: number;
  /** Frames read (parsed): a socket closed for flooding has the rest of its frames dropped unread. */
  framesRead: number;
}

/** The retry hint of a socket closed for overload (the official client backs off on 1013 anyway). */
const OVERLOAD_RETRY_MS = 1_000;

/**
 * The head of a Mutation or Action frame as the official client writes it
 * (`{"type":"Mutation","requestId":7,...`): read from a frame too large to
 * parse, so that request alone fails instead of the whole socket.
 */
const REQUEST_HEAD = /^\s*\{\s*"type"\s*:\s*"(Mutation|Action)"\s*,\s*"requestId"\s*:\s*(\d{1,15})\s*[,}]/;

/** What the front gives its source: the way to the sessions. */
export interface FrontPort {
  readonly sessions: ReadonlyMap<string, SyncSession>;
  readonly counters: SyncCounters;
  /** Sends a frame; if the runtime refuses it the session is closed (the client reconnects and resyncs); false then. */
  send(session: SyncSession, frame: string): boolean;
  /** Queues a session for a turn (a waiting session's turn waits for its admission). */
  schedule(session: SyncSession): void;
  /** A Transition went out: the session's versions moved (saved once the refresh queue drains). */
  sent(session: SyncSession): void;
  log(line: string): void;
  now(): number;
}

/** Where a front's results come from: the engine in the deployment object, the upstream link in a shard. */
export interface ResultSource {
  /** Called once by the front it serves. */
  bind(port: FrontPort): void;
  /** The newest timestamp this source serves results at (a client's `maxObservedTimestamp` is checked against it). */
  latestTimestamp(): bigint;
  /** Moves the deployment's timestamp past what `session`'s client observed, without a commit; its next Transition is at or past it. */
  advanceTimestamp(ts: bigint, session: SyncSession): void;
  /** Runs `fn` in `owner`'s turn of the lock the results are read under. */
  exclusive<T>(fn: () => Promise<T>, owner: object): Promise<T>;
  /** After a wake: what the restored sessions hold comes back from storage, running nothing (idempotent, cheap once done). */
  ensureLoaded(): void;
  /**
   * Why `added` (a query set change's new queries) cannot be held, or null:
   * the object's bound on the distinct queries it holds for all its sessions
   * (a query already held for someone costs nothing more).
   */
  refuseQueries(session: SyncSession, added: readonly { query: PreparedQuery; caller: SessionAuth | null }[]): string | null;
  /** A query joins the session's set, as `caller`. */
  add(session: SyncSession, queryId: number, query: PreparedQuery, caller: SessionAuth | null): void;
  remove(session: SyncSession, queryId: number): void;
  /** The session's identity changed: its queries move to that caller's results. */
  rekey(session: SyncSession): void;
  /** The session's turn: one Transition to the newest state it can be sent (or nothing). */
  turn(session: SyncSession): Promise<TurnResult>;
  /** Runs (or relays) a mutation as `caller` and answers it; `answered` once it has its answer. */
  mutation(session: SyncSession, message: Extract<ClientMessage, { type: "Mutation" }>, caller: SessionAuth | null, answered: () => void): Promise<void>;
  /** Runs (or relays) an action as `caller`; resolves with its `ActionResponse` frame. */
  action(session: SyncSession, message: Extract<ClientMessage, { type: "Action" }>, caller: SessionAuth | null): Promise<string>;
  /** The session is gone: release what it held. */
  closed(session: SyncSession): void;
}

export interface SyncFrontOptions<S extends ResultSource = ResultSource> {
  source: S;
  storage: SyncStorage;
  knobs: () => FrontKnobs;
  now?: () => number;
  log?: (line: string) => void;
  /** Yields between refresh slices (default: a timer). */
  pause?: (ms: number) => Promise<void>;
  /** Checks a token from `Authenticate` (throws `AuthenticationError`); without it every token is refused. */
  authenticate?: (token: string) => Promise<VerifiedToken>;
}

export class SyncFront<S extends ResultSource = ResultSource> {
  readonly counters: SyncCounters = {
    invalidations: 0,
    transitionsSent: 0,
    protocolErrors: 0,
    sendsPutOff: 0,
    charactersSent: 0,
    framesThrottled: 0,
    framesRead: 0,
  };
  private readonly sessions = new Map<string, SyncSession>();
  /** Sync shards' sessions among `sessions` (docs/SHARDS.md). */
  private peerCount = 0;
  /** Accepted sessions waiting for room, in arrival order. */
  private readonly waitingRoom = new WaitingRoom<SyncSession>();
  readonly scheduler: RefreshScheduler;
  readonly source: S;
  /** Sessions whose attachment lags behind the version last sent (saved once the refresh queue drains). */
  private readonly unsavedVersions = new Set<SyncSession>();
  private readonly storage: SyncStorage;
  private readonly knobs: () => FrontKnobs;
  readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly authenticate: (token: string) => Promise<VerifiedToken>;
  /** Bytes of frames held before they are handled, per session and in all (`maxPendingBytesPerSession`, `maxPendingBytes`). */
  readonly pendingBytes = new PendingBytes();
  constructor(options: SyncFrontOptions<S>) {
    this.source = options.source;
    this.storage = options.storage;
    this.knobs = options.knobs;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? ((line) => console.log(line));
    this.authenticate =
      options.authenticate ??
      (() => Promise.reject(new AuthenticationError("NoAuthProvider", "This deployment has no auth providers (convex/auth.config.ts)")));
    // The refresh scheduler is one owner of the results' lock: it gets a slice per round, as each session gets a function.
    const refreshOwner = {};
    this.scheduler = new RefreshScheduler({
      knobs: this.knobs,
      exclusive: (fn) => this.source.exclusive(fn, refreshOwner),
      // An expired token is caught before the session is sent anything more.
      turn: (session) => (session.closed || this.endIfExpired(session) ? Promise.resolve({ runs: 0, sent: false }) : this.source.turn(session)),
      onError: (session, error) => this.internalError(session, error),
      now: this.now,
      pause: options.pause ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      onIdle: () => this.saveVersions(),
    });
    this.source.bind({
      sessions: this.sessions,
      counters: this.counters,
      send: (session, frame) => this.sendOrDrop(session, frame),
      schedule: (session) => this.schedule(session),
      // Saving the attachment costs about as much as the send itself; it only has to be
      // current before the object can hibernate, which needs it idle, so save when the
      // refresh queue drains: a fan-out sends everything first, and a session refreshed
      // many times under load is saved once.
      sent: (session) => this.unsavedVersions.add(session),
      log: this.log,
      now: this.now,
    });
  }

  /** Admitted client sessions (the ones `maxSessions` counts; shards' peer sessions are not clients). */
  get sessionCount(): number {
    return this.sessions.size - this.waitingRoom.size - this.peerCount;
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

  get subscriptionCount(): number {
    this.source.ensureLoaded();
    let n = 0;
    for (const session of this.sessions.values()) n += session.queries.size;
    return n;
  }

  /**
   * Lets waiting sessions in, in arrival order, while `canAdmit()` allows (room
   * and the admission bucket); each is then served like any other session, its
   * query set through the source's re-subscription budget, its held mutations
   * in the order they were sent. Returns how many.
   */
  admitWaiting(canAdmit: () => boolean): number {
    // Loaded while they still count as waiting: a waiting session's restored queries have been sent nothing.
    this.source.ensureLoaded();
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
    for (const session of expired) this.drop(session, CLOSE.tryAgainLater, reason(), `waited ${maxWaitMs} ms for room; told to come back later`);
    return expired.length;
  }

  /**
   * After a wake: sessions from the sockets still open (and shards' peer
   * sessions), waiting ones back in arrival order with their held mutations.
   * Their query sets come from storage when first needed. Runs no query and
   * invalidates nothing.
   */
  restore(open: { connection: Connection; attachment: SessionAttachment }[]): void {
    const waiting: SyncSession[] = [];
    for (const { connection, attachment } of open) {
      const session = sessionFrom(connection, attachment);
      this.sessions.set(attachment.connectionId, session);
      if (!session.isClient) this.peerCount++;
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
      // Accepted before the sleep: taken whatever the budgets say now.
      const bytes = JSON.stringify(held.message).length;
      this.pendingBytes.take(session, bytes, this.knobs(), true);
      held.bytes = bytes;
      if (session.waiting) session.held.push(held);
      else this.runHeld(session, held);
    }
  }

  /** A new client session; `waiting` holds it in the waiting room until `admitWaiting` lets it in. */
  open(connection: Connection, connectionId: string, waiting = false): SyncSession {
    const attachment = SyncSession.fresh(connectionId, waiting ? this.now() : null);
    connection.saveAttachment(attachment);
    const session = new SyncSession(connection, attachment);
    this.sessions.set(connectionId, session);
    if (session.waitingSince !== null) this.waitingRoom.add(session, session.waitingSince);
    return session;
  }

  /**
   * A sync shard's session (docs/SHARDS.md): speaks the same protocol over
   * `connection`, for many clients at once. Admitted at once and never pinged.
   */
  openPeer(connection: Connection, connectionId: string): PeerSession {
    const session = new PeerSession(connection, SyncSession.fresh(connectionId));
    connection.saveAttachment(session.attachment());
    this.sessions.set(connectionId, session);
    this.peerCount++;
    return session;
  }

  /** The `count` most recently opened admitted client sessions, newest first. */
  newestSessions(count: number): SyncSession[] {
    return [...this.sessions.values()]
      .filter((session) => !session.waiting && session.isClient)
      .reverse()
      .slice(0, count);
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
    // A socket we closed still has the frames its client sent before our close arrived: dropped before any work.
    if (session.closed) return undefined;
    // The cheapest path first: a socket past its frame rate waits here, before its frame is read.
    if (session.isClient) {
      const throttled = this.throttle(session, frame);
      if (throttled !== null) return throttled;
    }
    if (session.inbound === null) return session.inOrder(() => this.receiveNow(session, frame));
    // It waits in memory behind an earlier message (a token being checked, perhaps by a slow provider):
    // counted against the byte budgets, and past them the socket closes rather than queue without limit.
    const bytes = frameSize(frame);
    const refusal = this.pendingBytes.take(session, bytes, this.knobs());
    if (refusal) {
      this.overloaded(session, refusal, `a frame of ${bytes} bytes queued behind a message still being handled`);
      return undefined;
    }
    return session.inOrder(() => {
      this.pendingBytes.give(session, bytes);
      return this.receiveNow(session, frame);
    });
  }

  /**
   * Holds a frame that comes faster than `sessionFrameRate` (burst `sessionFrameBurst`): it waits,
   * unparsed and counted against the byte budgets, until its token is due, then is handled in order.
   * Past `maxThrottledFramesPerSession` frames waiting, the socket closes with a FatalError. Null: a
   * token was there, handle the frame as usual.
   */
  private throttle(session: SyncSession, frame: string | ArrayBuffer): Promise<void> | undefined | null {
    const knobs = this.knobs();
    const now = this.now();
    const bucket = (session.frameBudget ??= new TokenBucket(
      () => this.knobs().sessionFrameRate,
      () => this.knobs().sessionFrameBurst,
      now,
    ));
    if (session.throttledFrames === 0 && bucket.take(now)) return null;
    if (session.throttledFrames >= knobs.maxThrottledFramesPerSession) {
      this.fail(
        session,
        `Too many frames: more than ${knobs.maxThrottledFramesPerSession} waiting for the frame rate of ${knobs.sessionFrameRate}/s (knobs maxThrottledFramesPerSession, sessionFrameRate)`,
      );
      return undefined;
    }
    const bytes = frameSize(frame);
    const refusal = this.pendingBytes.take(session, bytes, knobs);
    if (refusal) {
      this.overloaded(session, refusal, `a frame of ${bytes} bytes waiting for the frame rate`);
      return undefined;
    }
    // Its token, taken now in debt: the frame is due when the bucket is back to zero.
    const due = now + bucket.waitMs(now);
    bucket.spend(now, 1);
    session.throttledFrames++;
    this.counters.framesThrottled++;
    return session.inOrder(async () => {
      // Once the socket is closed its waiting frames are dropped at once, not each after its wait (`forget`).
      const wait = due - this.now();
      if (wait > 0 && !session.closed)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          session.endThrottleWait = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      session.endThrottleWait = null;
      session.throttledFrames--;
      this.pendingBytes.give(session, bytes);
      return this.receiveNow(session, frame);
    });
  }

  /**
   * A frame that cannot be queued within the byte budgets: this socket closes
   * with 1013 (the client reconnects with backoff and re-sends what is
   * pending); no other session is affected.
   */
  private overloaded(session: SyncSession, refusal: PendingRefusal, what: string): void {
    const why = refusal.budget === "session" ? `connection over ${refusal.knob}` : `deployment over ${refusal.knob}`;
    this.drop(session, CLOSE.tryAgainLater, shedReason(OVERLOAD_RETRY_MS, why), `${what}: ${pendingRefusalText(refusal, "it is")}`);
  }

  /** Handles one frame now; a promise only for a message that waits on something (it never rejects). */
  private receiveNow(session: SyncSession, frame: string | ArrayBuffer): Promise<void> | undefined {
    if (session.closed) return undefined;
    this.source.ensureLoaded();
    try {
      let message: ClientMessage;
      this.counters.framesRead++;
      try {
        message = parseClientMessage(frame, session.limits(this.knobs()).frameBytes);
      } catch (error) {
        if (error instanceof FrameTooLargeError && session.sessionId !== null && this.refuseOversizedRequest(session, frame as string, error)) return undefined;
        throw error;
      }
      if (message.type !== "Connect" && session.sessionId === null) throw new ProtocolError(`${message.type} before Connect`);
      return this.handle(session, message, frameSize(frame))?.catch((error: unknown) => this.failed(session, error));
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
    this.drop(session, CLOSE.internalError, "InternalServerError", `failed: ${error instanceof Error ? error.stack : String(error)}`);
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

  /** `bytes`: the frame's size, which a mutation or action holds against the byte budgets until it is answered. */
  private handle(session: SyncSession, message: ClientMessage, bytes: number): Promise<void> | undefined {
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
        this.mutation(session, message, bytes);
        return undefined;
      case "Authenticate":
        return this.authenticateSession(session, message);
      case "Action":
        this.action(session, message, bytes);
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
   * identity move to that identity's results, and the next Transition
   * carries the new identity version, which is how the client learns the
   * token was accepted. A refused token ends the session with `AuthError`.
   */
  private authenticateSession(session: SyncSession, message: Extract<ClientMessage, { type: "Authenticate" }>): Promise<void> {
    return decideAuthenticate(session, message, this.authenticate).then((outcome) => {
      if (session.closed) return;
      if (outcome.ok) return this.signIn(session, message.baseVersion, outcome.auth);
      this.sendOrDrop(session, refusedFrame(message.baseVersion, outcome.reason));
      this.drop(session, CLOSE.normal, "AuthError", `token refused: ${outcome.reason}`);
    });
  }

  /**
   * Switches the session's identity in its own turn of the results' lock, so
   * no refresh turn is half done around it: a Transition that carries the
   * new identity version holds no result computed for the old identity.
   */
  private signIn(session: SyncSession, baseVersion: number, auth: SessionAuth | null): Promise<void> {
    return this.source.exclusive(async () => {
      if (session.closed) return;
      session.auth = auth;
      session.receivedIdentity = baseVersion + 1;
      this.source.rekey(session);
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
    this.drop(session, CLOSE.normal, "AuthError", "token expired");
    return true;
  }

  private connect(session: SyncSession, message: Extract<ClientMessage, { type: "Connect" }>): void {
    if (session.sessionId !== null) throw new ProtocolError("Connect sent twice on one socket");
    const latest = this.source.latestTimestamp();
    const observed = message.maxObservedTimestamp;
    if (observed !== null && observed > latest) {
      // The client saw a newer timestamp than ours (our storage was reset, or its clock
      // reading came from elsewhere). Move our clock past it, as a non-commit, so its
      // pending mutations can complete; refuse absurd values as an internal error,
      // which the official client retries with backoff (as Convex does).
      const limitNs = BigInt(Math.floor(this.now() + this.knobs().maxClockAheadMs)) * 1_000_000n;
      if (observed > limitNs) {
        return this.drop(
          session,
          CLOSE.internalError,
          "InternalServerError: maxObservedTimestamp is ahead of this deployment",
          `Connect maxObservedTimestamp ${observed} is ahead of the clock`,
        );
      }
      this.log(`[${session.connectionId}] session=${message.sessionId} observed ts ${observed} ahead of ${latest}; moving the clock forward`);
      this.source.advanceTimestamp(observed, session);
    }
    session.sessionId = message.sessionId;
    this.saveAttachment(session);
  }

  private modifyQuerySet(session: SyncSession, message: Extract<ClientMessage, { type: "ModifyQuerySet" }>): void {
    session.checkQuerySetChange(message, session.limits(this.knobs()));
    // Check every query first (its arguments, and who may name a caller): bad ones fail the message with nothing applied.
    const added = message.modifications.map((m) =>
      m.type === "Add" ? { query: prepareQuery(m.udfPath, m.args, m.journal), caller: session.callerOf(m.internal) } : null,
    );
    // Sessions times queries must not grow without limit: past the object's bound this socket comes back
    // later (1013, as on overload; the client replays its query set), with nothing of the change applied.
    const refusal = this.source.refuseQueries(
      session,
      added.filter((a) => a !== null),
    );
    if (refusal !== null) {
      this.drop(session, CLOSE.tryAgainLater, shedReason(OVERLOAD_RETRY_MS, "too many queries held here"), `query set change refused: ${refusal}`);
      return;
    }
    message.modifications.forEach((modification, i) => {
      if (modification.type === "Add") {
        this.source.add(session, modification.queryId, added[i]!.query, added[i]!.caller);
      } else {
        this.source.remove(session, modification.queryId);
        session.pendingRemovals.push(modification.queryId);
      }
    });
    session.receivedQuerySet = message.newVersion;
    this.saveAttachment(session);
    this.schedule(session);
  }

  /**
   * A mutation: run in the session's turn, or, while the session waits for
   * room, held in storage (so no event stays open, the object may sleep and a
   * wake loses nothing) and run in order once it is admitted.
   */
  private mutation(session: SyncSession, message: Extract<ClientMessage, { type: "Mutation" }>, bytes: number): void {
    const caller = session.callerOf(message.internal);
    // A shard's session carries all its clients' mutations; the shard holds each client to the limit.
    const limit = session.limits(this.knobs()).mutations;
    if (session.pendingMutations >= limit) {
      // Not fatal: the client fails this one mutation and can retry once earlier ones finish.
      const refusal = `Too many concurrent mutations on this connection: ${limit} are waiting (knob maxPendingMutationsPerSession)`;
      this.sendOrDrop(session, mutationFailure(message.requestId, refusal, undefined));
      return;
    }
    // Held in memory until answered (as its row too, while the session waits): bounded in bytes, not only in count.
    const overBudget = this.pendingBytes.take(session, bytes, this.knobs());
    if (overBudget) {
      this.sendOrDrop(session, mutationFailure(message.requestId, pendingRefusalText(overBudget, "this mutation is"), undefined));
      return;
    }
    session.pendingMutations++;
    if (session.waiting) {
      const held = { connectionId: session.connectionId, seq: session.nextHeldSeq(), message, auth: caller, bytes };
      this.storage.holdMutation(held);
      session.held.push(held);
      return;
    }
    this.runMutation(session, message, caller, bytes);
  }

  /** Runs a mutation held while its session waited; its row goes once it has an answer. */
  private runHeld(session: SyncSession, held: HeldMutation): void {
    this.runMutation(session, held.message, held.auth, held.bytes ?? 0, () => this.storage.releaseMutation(held.connectionId, held.seq));
  }

  private runMutation(
    session: SyncSession,
    message: Extract<ClientMessage, { type: "Mutation" }>,
    caller: SessionAuth | null,
    bytes: number,
    answered?: () => void,
  ): void {
    // An expired token runs nothing more: the session is told so and closed (its held rows go with it).
    if (this.endIfExpired(session)) return;
    this.source
      .mutation(session, message, caller, () => {
        session.pendingMutations--;
        this.pendingBytes.give(session, bytes);
        answered?.();
      })
      .catch((error: unknown) => this.internalError(session, error));
  }

  /**
   * Runs an action and answers when it ends; the socket's other messages go
   * on meanwhile (Convex runs a socket's actions concurrently). What it
   * writes reaches subscribers by the usual commits.
   */
  private action(session: SyncSession, message: Extract<ClientMessage, { type: "Action" }>, bytes: number): void {
    const caller = session.callerOf(message.internal);
    const limit = session.limits(this.knobs()).actions;
    if (session.waiting) {
      this.sendOrDrop(
        session,
        actionFailure(message.requestId, "The deployment is at capacity and this connection is waiting for admission; try the action again shortly"),
      );
      return;
    }
    if (session.pendingActions >= limit) {
      this.sendOrDrop(
        session,
        actionFailure(message.requestId, `Too many concurrent actions on this connection: ${limit} are running (knob maxPendingActionsPerSession)`),
      );
      return;
    }
    if (this.endIfExpired(session)) return;
    // Its arguments are held until it ends (an action may run for minutes): counted like a pending mutation's.
    const overBudget = this.pendingBytes.take(session, bytes, this.knobs());
    if (overBudget) {
      this.sendOrDrop(session, actionFailure(message.requestId, pendingRefusalText(overBudget, "this action is")));
      return;
    }
    session.pendingActions++;
    this.source.action(session, message, caller).then(
      (frame) => {
        session.pendingActions--;
        this.pendingBytes.give(session, bytes);
        this.sendOrDrop(session, frame);
      },
      (error: unknown) => {
        session.pendingActions--;
        this.pendingBytes.give(session, bytes);
        this.internalError(session, error);
      },
    );
  }

  /** Sends the session a Transition at the newest timestamp even if nothing it holds changed (a peer whose client moved the clock). */
  owe(session: SyncSession): void {
    session.owesTransition = true;
    this.schedule(session);
  }

  /** Queues a session for a refresh turn; a waiting session's queries do not run until it is admitted. */
  private schedule(session: SyncSession): void {
    if (session.waiting || session.closed) return;
    // A turn serves the session's query set: after a wake it must be loaded first (an admission, a sign-in or
    // a mutation may be the first thing to need it), or the turn would answer an empty set.
    this.source.ensureLoaded();
    this.scheduler.schedule(session);
  }

  /** Sends a frame; if the runtime refuses it, the client's state is unknown, so close the session (it reconnects and resyncs). */
  private sendOrDrop(session: SyncSession, frame: string): boolean {
    this.counters.charactersSent += frame.length;
    if (session.send(frame, this.now())) return true;
    if (!session.closed) this.drop(session, CLOSE.internalError, "InternalServerError", `send of ${frame.length} characters failed; closing`);
    return false;
  }

  /** Closes a session's socket with `code` and forgets it; logs `why` when given. The one way the front ends a session. */
  drop(session: SyncSession, code: number, reason: string, why?: string): void {
    if (why) this.log(`[${session.connectionId}] session=${session.sessionId ?? "-"} ${why}`);
    session.connection.close(code, reason);
    this.forget(session);
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
    this.drop(session, CLOSE.protocolError, "ProtocolError", `protocol error: ${reason}`);
  }

  /** Forgets a session whose socket closed (or that the front closed), and all it held. */
  forget(session: SyncSession): void {
    if (session.closed) return;
    session.closed = true;
    // What its requests still hold is given back now (their own answers, if any come, give nothing).
    this.pendingBytes.forget(session);
    if (session.sendRetry !== null) clearTimeout(session.sendRetry);
    session.endThrottleWait?.();
    // Mutations held while it waited go with it (storage forgets them below); the client re-sends them on its next socket.
    this.waitingRoom.remove(session);
    this.sessions.delete(session.connectionId);
    if (!session.isClient) this.peerCount--;
    this.scheduler.forget(session);
    this.unsavedVersions.delete(session);
    for (const queryId of [...session.queries.keys()]) this.source.remove(session, queryId);
    this.source.closed(session);
    this.storage.deleteConnection(session.connectionId);
  }

  /** Sends Ping to client sessions that have been sent nothing for half the ping interval (waiting ones too: they must not time out). */
  pingIdle(): void {
    const now = this.now();
    const threshold = this.knobs().idlePingMs / 2;
    for (const session of [...this.sessions.values()]) if (session.isClient && now - session.lastSentAt >= threshold) this.sendOrDrop(session, PING);
  }
}
