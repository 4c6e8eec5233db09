/**
 * A sync shard (docs/SHARDS.md): holds client sessions and speaks the Convex
 * sync protocol with them, while every function runs in the deployment's
 * database object. The shard is one **internal session** of the database
 * object: its query set is the union of its clients' distinct queries (each
 * with its caller), its clients' mutations and actions go up with their
 * caller and the client's session and request id (so a retry is still
 * recognised), and what comes back (Transitions, responses) arrives in
 * numbered pushes that the shard fans out to its clients.
 *
 * Invariants kept from the single object:
 * - All of a client's results in one Transition are at one timestamp: the
 *   shard holds results at the timestamp of the last push it applied.
 * - A client's mutation is in its subscriptions once the mutation resolves:
 *   the client gets its Transition at or past the commit's timestamp only
 *   after the push that carries it.
 * - A lost, repeated or out-of-order push is never applied: the shard opens a
 *   new internal session and re-adds its distinct queries; clients are sent
 *   only results whose hash changed, and pending mutations are re-sent (the
 *   database object answers a retry from its record, running nothing twice).
 */
import { isPlainObject, type JSONValue, type VerifiedToken } from "../engine/index.ts";
import {
  actionFailure,
  decodeTs,
  fatalError,
  mutationFailure,
  parseClientMessage,
  ProtocolError,
  queryRemoved,
  transition,
  PING,
  VISIBILITY_EVENT,
  type ClientMessage,
  type EncodedModification,
  type StateVersion,
} from "../protocol/sync.ts";
import { resultHash } from "./hash.ts";
import { callerKey, modificationFor, prepareQuery, sharedKey, type EncodedResult } from "./query-instances.ts";
import { decideAuthenticate, expiredFrame, refusedFrame } from "./authenticate.ts";
import { SyncSession, type Connection, type SessionAuth } from "./session.ts";
import { RefreshScheduler, type RefreshKnobs } from "./refresh-scheduler.ts";

/** The way to the database object's side of the internal session. */
export interface UpstreamLink {
  /** Opens a new internal session for this shard (closing any earlier one); returns its id. */
  open(): Promise<string>;
  /** Sends frames to the internal session, in order; false if the database object no longer has it (it restarted). */
  send(connectionId: string, frames: string[]): Promise<boolean>;
}

export interface ShardKnobs extends RefreshKnobs {
  maxFrameBytes: number;
  maxQueriesPerSession: number;
  maxPendingMutationsPerSession: number;
  maxPendingActionsPerSession: number;
  idlePingMs: number;
}

export interface ShardServerOptions {
  link: UpstreamLink;
  knobs: () => ShardKnobs;
  authenticate: (token: string) => Promise<VerifiedToken>;
  now?: () => number;
  log?: (line: string) => void;
}

/** One distinct query the shard holds for its clients. */
interface HeldQuery {
  key: string;
  /** The query's id in the internal session's query set (renumbered on each resync). */
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
}

interface PendingRequest {
  session: SyncSession;
  kind: "Mutation" | "Action";
  clientRequestId: number;
  /** The frame as sent upstream, re-sent after a resync (mutations only). */
  frame: string;
}

export interface ShardCounters {
  /** Pushes not applied: repeated, out of order, or after a gap. */
  pushesRejected: number;
  resyncs: number;
  transitionsSent: number;
}

const CLOSE_PROTOCOL_ERROR = 1008;
const CLOSE_INTERNAL_ERROR = 1011;

export class ShardServer {
  readonly counters: ShardCounters = { pushesRejected: 0, resyncs: 0, transitionsSent: 0 };
  private readonly sessions = new Map<string, SyncSession>();
  private readonly held = new Map<string, HeldQuery>();
  private readonly byUpstreamId = new Map<number, HeldQuery>();
  private readonly pending = new Map<number, PendingRequest>();
  /** Sessions owed a Transition once the shard holds their mutation's ts (`SyncSession.owedTs`). */
  private readonly owing = new Set<SyncSession>();
  /** The internal session: its id, the version and push number last applied, and the next ids to hand out. */
  private upstream = { connectionId: null as string | null, version: { querySet: 0, ts: 0n, identity: 0 } as StateVersion, epoch: null as string | null, seq: 0, querySet: 0, nextQueryId: 0, nextRequestId: 0 };
  /** Frames waiting to go up, sent in order by one call at a time. */
  private outbox: string[] = [];
  private sending: Promise<void> | null = null;
  private opening: Promise<void> | null = null;
  /**
   * Client turns, as on the deployment object: bounded slices, a queue limit
   * past which sessions wait as stale, background pages refreshed less often
   * under pressure. A turn here runs no query, so it needs no lock.
   */
  readonly scheduler: RefreshScheduler;
  private readonly options: ShardServerOptions;
  private readonly now: () => number;
  private readonly log: (line: string) => void;

  constructor(options: ShardServerOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? ((line) => console.log(line));
    this.scheduler = new RefreshScheduler({
      knobs: options.knobs,
      exclusive: (fn) => fn(),
      turn: async (session) => ({ runs: 0, sent: this.turn(session) }),
      onError: (session, error) => this.failed(session, error),
      now: this.now,
      pause: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    });
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  get lastPushSeq(): number {
    return this.upstream.seq;
  }

  /** Nothing waiting to go up, no session opening, no client turn pending. */
  get idle(): boolean {
    return this.sending === null && this.opening === null && this.outbox.length === 0 && this.scheduler.waiting === 0;
  }

  open(connection: Connection, connectionId: string): SyncSession {
    const session = new SyncSession(connection, SyncSession.fresh(connectionId));
    this.sessions.set(connectionId, session);
    return session;
  }

  // ---- clients ----

  /** Handles one client frame, strictly after the socket's earlier ones (see `SyncSession.inOrder`). */
  receive(session: SyncSession, frame: string | ArrayBuffer): Promise<void> | undefined {
    return session.inOrder(() => {
      if (session.closed) return undefined;
      try {
        const message = parseClientMessage(frame, this.options.knobs().maxFrameBytes);
        if (message.type !== "Connect" && session.sessionId === null) throw new ProtocolError(`${message.type} before Connect`);
        return this.handle(session, message)?.catch((error: unknown) => this.failed(session, error));
      } catch (error) {
        this.failed(session, error);
        return undefined;
      }
    });
  }

  private failed(session: SyncSession, error: unknown): void {
    if (error instanceof ProtocolError) {
      session.send(fatalError(error.message), this.now());
      return this.drop(session, CLOSE_PROTOCOL_ERROR, "ProtocolError", `protocol error: ${error.message}`);
    }
    this.drop(session, CLOSE_INTERNAL_ERROR, "InternalServerError", `failed: ${error instanceof Error ? error.stack : String(error)}`);
  }

  private handle(session: SyncSession, message: ClientMessage): Promise<void> | undefined {
    switch (message.type) {
      case "Connect":
        if (session.sessionId !== null) throw new ProtocolError("Connect sent twice on one socket");
        session.sessionId = message.sessionId;
        return undefined;
      case "ModifyQuerySet":
        this.modifyQuerySet(session, message);
        return undefined;
      case "Mutation":
      case "Action":
        if (message.internal !== undefined) throw new ProtocolError("Internal fields are for a sync shard's session, not a client's");
        this.request(session, message);
        return undefined;
      case "Authenticate":
        return this.authenticate(session, message);
      case "Event":
        // calmsync/client's visibility event: a page in the background is refreshed less often under pressure.
        if (message.eventType === VISIBILITY_EVENT && isPlainObject(message.event) && typeof message.event.background === "boolean") {
          session.background = message.event.background;
          if (!session.background) this.schedule(session);
        }
        return undefined;
    }
  }

  private modifyQuerySet(session: SyncSession, message: Extract<ClientMessage, { type: "ModifyQuerySet" }>): void {
    session.checkQuerySetChange(message, this.options.knobs().maxQueriesPerSession);
    const prepared = message.modifications.map((m) => {
      if (m.type !== "Add") return null;
      if (m.internal !== undefined) throw new ProtocolError("Internal fields are for a sync shard's session, not a client's");
      return prepareQuery(m.udfPath, m.args, m.journal);
    });
    const upstream: unknown[] = [];
    message.modifications.forEach((modification, i) => {
      if (modification.type === "Add") {
        const query = prepared[i]!;
        const held = this.hold(query.key, query.udfPath, JSON.parse(query.argsJson) as JSONValue, query.journal, session, upstream);
        session.queries.set(modification.queryId, { instanceKey: held.key, sentHash: null });
      } else {
        const query = session.queries.get(modification.queryId)!;
        session.queries.delete(modification.queryId);
        this.release(query.instanceKey, session, upstream);
        session.pendingRemovals.push(modification.queryId);
      }
    });
    session.receivedQuerySet = message.newVersion;
    this.sendQuerySetChange(upstream);
    this.schedule(session);
  }

  /**
   * The held query for (shared key, the session's caller), created and added
   * upstream if new. Signed-in clients' queries carry their caller: the
   * database object still runs one instance for all of them unless the
   * query reads the identity.
   */
  private hold(sharedKey: string, udfPath: string, args: JSONValue, journal: string | null, session: SyncSession, upstream: unknown[]): HeldQuery {
    const key = callerKey(sharedKey, session.auth);
    let held = this.held.get(key);
    if (!held) {
      held = { key, upstreamId: this.upstream.nextQueryId++, udfPath, args, journal, caller: session.auth, result: null, resultJournal: null, hash: null, holders: new Map() };
      this.held.set(key, held);
      this.byUpstreamId.set(held.upstreamId, held);
      upstream.push(this.addFor(held));
    }
    held.holders.set(session, (held.holders.get(session) ?? 0) + 1);
    return held;
  }

  private release(key: string, session: SyncSession, upstream: unknown[]): void {
    const held = this.held.get(key);
    if (!held) return;
    const remaining = (held.holders.get(session) ?? 1) - 1;
    if (remaining > 0) held.holders.set(session, remaining);
    else held.holders.delete(session);
    if (held.holders.size > 0) return;
    this.held.delete(key);
    this.byUpstreamId.delete(held.upstreamId);
    upstream.push({ type: "Remove", queryId: held.upstreamId });
  }

  private addFor(held: HeldQuery): unknown {
    return { type: "Add", queryId: held.upstreamId, udfPath: held.udfPath, args: [held.args], journal: held.journal, internal: { caller: held.caller } };
  }

  private sendQuerySetChange(modifications: unknown[]): void {
    if (modifications.length === 0) return;
    const base = this.upstream.querySet++;
    this.sendUp(JSON.stringify({ type: "ModifyQuerySet", baseVersion: base, newVersion: base + 1, modifications }));
  }

  private request(session: SyncSession, message: Extract<ClientMessage, { type: "Mutation" | "Action" }>): void {
    const knobs = this.options.knobs();
    const mutation = message.type === "Mutation";
    const limit = mutation ? knobs.maxPendingMutationsPerSession : knobs.maxPendingActionsPerSession;
    if ((mutation ? session.pendingMutations : session.pendingActions) >= limit) {
      const refusal = `Too many concurrent ${mutation ? "mutations" : "actions"} on this connection: ${limit} are waiting (knob ${mutation ? "maxPendingMutationsPerSession" : "maxPendingActionsPerSession"})`;
      session.send(mutation ? mutationFailure(message.requestId, refusal, undefined) : actionFailure(message.requestId, refusal), this.now());
      return;
    }
    if (this.endIfExpired(session)) return;
    if (mutation) session.pendingMutations++;
    else session.pendingActions++;
    const requestId = this.upstream.nextRequestId++;
    const frame = JSON.stringify({
      type: message.type,
      requestId,
      udfPath: message.udfPath,
      args: [message.args],
      internal: { caller: session.auth, clientSessionId: session.sessionId, clientRequestId: message.requestId },
    });
    this.pending.set(requestId, { session, kind: message.type, clientRequestId: message.requestId, frame });
    this.sendUp(frame);
  }

  /** `Authenticate`: the token is checked here, where the session lives; its queries move to keys of the new caller. */
  private authenticate(session: SyncSession, message: Extract<ClientMessage, { type: "Authenticate" }>): Promise<void> {
    return decideAuthenticate(session, message, this.options.authenticate).then((outcome) => {
      if (session.closed) return;
      if (outcome.ok) return this.signIn(session, message.baseVersion, outcome.auth);
      session.send(refusedFrame(message.baseVersion, outcome.reason), this.now());
      this.drop(session, 1000, "AuthError", `token refused: ${outcome.reason}`);
    });
  }

  private signIn(session: SyncSession, baseVersion: number, auth: SessionAuth | null): void {
    session.auth = auth;
    session.receivedIdentity = baseVersion + 1;
    const upstream: unknown[] = [];
    for (const query of session.queries.values()) {
      const old = this.held.get(query.instanceKey)!;
      // The same caller (a refreshed token) holds the same query: taken and released, nothing moves.
      query.instanceKey = this.hold(sharedKey(old.key), old.udfPath, old.args, old.journal, session, upstream).key;
      this.release(old.key, session, upstream);
    }
    this.sendQuerySetChange(upstream);
    session.owesTransition = true;
    this.schedule(session);
  }

  private endIfExpired(session: SyncSession): boolean {
    const expired = expiredFrame(session, this.now());
    if (expired === null) return false;
    session.send(expired, this.now());
    this.drop(session, 1000, "AuthError", "token expired");
    return true;
  }

  /** A client socket went away: forget its session and release what it held. */
  close(session: SyncSession): void {
    if (session.closed) return;
    session.closed = true;
    this.sessions.delete(session.connectionId);
    this.owing.delete(session);
    this.scheduler.forget(session);
    const upstream: unknown[] = [];
    for (const query of session.queries.values()) this.release(query.instanceKey, session, upstream);
    session.queries.clear();
    this.sendQuerySetChange(upstream);
    for (const [id, request] of this.pending) if (request.session === session) this.pending.delete(id);
  }

  drop(session: SyncSession, code: number, reason: string, why?: string): void {
    if (why) this.log(`[${session.connectionId}] session=${session.sessionId ?? "-"} ${why}`);
    session.connection.close(code, reason);
    this.close(session);
  }

  /** Pings clients sent nothing for half the ping interval. */
  pingIdle(): void {
    const now = this.now();
    const threshold = this.options.knobs().idlePingMs / 2;
    for (const session of this.sessions.values()) if (now - session.lastSentAt >= threshold) session.send(PING, now);
  }

  // ---- the internal session ----

  private sendUp(frame: string): void {
    this.outbox.push(frame);
    this.sending ??= this.drainOutbox().finally(() => (this.sending = null));
  }

  /** Sends the outbox in order, one call at a time; a refused call (the database object restarted) resyncs. */
  private async drainOutbox(): Promise<void> {
    while (this.outbox.length > 0) {
      if (this.upstream.connectionId === null) {
        await this.resync("no internal session yet");
        continue;
      }
      const frames = this.outbox;
      this.outbox = [];
      let accepted: boolean;
      try {
        accepted = await this.options.link.send(this.upstream.connectionId, frames);
      } catch (error) {
        this.log(`sending to the database object failed: ${(error as Error).message}`);
        accepted = false;
      }
      if (!accepted) await this.resync("the database object no longer has this shard's session");
    }
  }

  /**
   * A push from the database object: the frames its internal session was
   * sent, numbered within an epoch (one start of that object). Only the next
   * number is applied; a repeat is ignored, a gap (a lost push) resyncs. A
   * new epoch starts again at 1: the session came back with that object, and
   * the next Transition's start version shows whether anything was lost.
   * Returns false for a session that is not the current one, which tells the
   * database object to close it.
   */
  async deliver(connectionId: string, epoch: string, seq: number, frames: string[]): Promise<boolean> {
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
      void this.resync(`push ${seq} arrived after ${this.upstream.seq}`);
      return true;
    }
    this.upstream.seq = seq;
    for (const frame of frames) {
      if (connectionId !== this.upstream.connectionId) break;
      await this.apply(JSON.parse(frame) as Record<string, unknown>);
    }
    return true;
  }

  private async apply(message: Record<string, unknown>): Promise<void> {
    switch (message.type) {
      case "Transition":
        return this.applyTransition(message);
      case "MutationResponse":
      case "ActionResponse": {
        const request = this.pending.get(message.requestId as number);
        if (!request) return;
        this.pending.delete(message.requestId as number);
        const { session } = request;
        if (request.kind === "Mutation") session.pendingMutations--;
        else session.pendingActions--;
        if (session.closed) return;
        session.send(JSON.stringify({ ...message, requestId: request.clientRequestId }), this.now());
        if (message.type === "MutationResponse" && message.success === true) {
          // The client resolves the mutation once a Transition reaches its ts; one is owed then.
          session.owedTs = decodeTs(message.ts, "MutationResponse.ts");
          this.owing.add(session);
          if (session.owedTs <= this.upstream.version.ts) this.schedule(session);
        }
        return;
      }
      case "Ping":
        return;
      default:
        // A FatalError or anything unexpected on the internal session: start it over.
        void this.resync(`unexpected ${String(message.type)} on the internal session: ${JSON.stringify(message).slice(0, 200)}`);
    }
  }

  private async applyTransition(message: Record<string, unknown>): Promise<void> {
    const start = parseVersion(message.startVersion);
    const held = this.upstream.version;
    if (start.querySet !== held.querySet || start.ts !== held.ts || start.identity !== held.identity) {
      return this.resync(`Transition starts at ${JSON.stringify(message.startVersion)}, not at the version held`);
    }
    const touched = new Set<SyncSession>();
    for (const modification of message.modifications as Record<string, unknown>[]) {
      const query = this.byUpstreamId.get(modification.queryId as number);
      if (!query || modification.type === "QueryRemoved") continue;
      const logLines = (modification.logLines as string[] | undefined) ?? [];
      query.resultJournal = (modification.journal as string | null | undefined) ?? null;
      query.result =
        modification.type === "QueryUpdated"
          ? { ok: true, value: JSON.stringify(modification.value), logLines }
          : { ok: false, message: modification.errorMessage as string, data: modification.errorData as JSONValue | undefined, logLines };
      query.hash = await resultHash(JSON.stringify([query.result, query.resultJournal]));
      for (const session of query.holders.keys()) touched.add(session);
    }
    this.upstream.version = parseVersion(message.endVersion);
    for (const session of touched) this.schedule(session);
    // Clients waiting for a Transition at their mutation's ts get it now that the shard holds that ts.
    for (const session of this.owing) if (session.owedTs! <= this.upstream.version.ts) this.schedule(session);
  }

  /**
   * The database object started again and restored this shard's session:
   * the answers to mutations still pending may have been lost with it, so
   * they are sent again (a retry is answered from its record, running
   * nothing twice). Any other session (or none) starts over.
   */
  async upstreamRestarted(connectionId: string): Promise<void> {
    if (this.sessions.size === 0) return;
    if (connectionId !== this.upstream.connectionId) return this.resync("the database object started again without this shard's session");
    for (const request of this.pending.values()) if (request.kind === "Mutation") this.sendUp(request.frame);
  }

  /**
   * Starts the internal session over: a new one, every held query added
   * again (results kept, so clients see only what changed), pending
   * mutations re-sent (answered from the database object's record if they
   * ran) and pending actions failed (an action runs at most once).
   */
  resync(why: string): Promise<void> {
    this.opening ??= (async () => {
      this.counters.resyncs++;
      this.log(`shard resync: ${why}`);
      this.upstream = { connectionId: null, version: { querySet: 0, ts: 0n, identity: 0 }, epoch: null, seq: 0, querySet: 0, nextQueryId: 0, nextRequestId: this.upstream.nextRequestId };
      const connectionId = await this.options.link.open();
      this.upstream.connectionId = connectionId;
      this.byUpstreamId.clear();
      for (const query of this.held.values()) {
        query.upstreamId = this.upstream.nextQueryId++;
        this.byUpstreamId.set(query.upstreamId, query);
      }
      const frames = [JSON.stringify({ type: "Connect", sessionId: `shard-${connectionId}`, connectionCount: 0, lastCloseReason: null, clientTs: this.now() })];
      if (this.held.size > 0) {
        frames.push(JSON.stringify({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [...this.held.values()].map((query) => this.addFor(query)) }));
        this.upstream.querySet = 1;
      }
      for (const [id, request] of [...this.pending]) {
        if (request.kind === "Mutation") {
          frames.push(request.frame);
          continue;
        }
        this.pending.delete(id);
        request.session.pendingActions--;
        request.session.send(actionFailure(request.clientRequestId, "The connection to the database was reset while this action ran; it may or may not have completed"), this.now());
      }
      // What was queued for the old session is replaced: its query set changes are in the new set, its
      // mutations are re-sent above, and its actions were failed (an action runs at most once).
      this.outbox = frames;
    })().finally(() => (this.opening = null));
    return this.opening.then(() => {
      this.sending ??= this.drainOutbox().finally(() => (this.sending = null));
    });
  }

  // ---- client turns ----

  private schedule(session: SyncSession): void {
    if (!session.closed) this.scheduler.schedule(session);
  }

  /** One client's Transition from what the shard holds, at the timestamp of the last push applied; whether one was sent. */
  private turn(session: SyncSession): boolean {
    if (session.closed || this.endIfExpired(session)) return false;
    const modifications: EncodedModification[] = session.pendingRemovals.map(queryRemoved);
    session.pendingRemovals = [];
    for (const [queryId, query] of session.queries) {
      const held = this.held.get(query.instanceKey);
      if (!held?.result || query.sentHash === held.hash) continue;
      modifications.push(modificationFor(queryId, held.result, held.resultJournal));
      query.sentHash = held.hash;
    }
    const end: StateVersion = { querySet: session.receivedQuerySet, ts: this.upstream.version.ts, identity: session.receivedIdentity };
    const owed = session.owesTransition || (session.owedTs !== null && end.ts >= session.owedTs);
    const moved = end.querySet !== session.version.querySet || end.identity !== session.version.identity;
    if (modifications.length === 0 && !moved && !owed) return false;
    // Never backwards: a client's ts only moves forward (a resync restarts the internal session, not the clock).
    if (end.ts < session.version.ts) end.ts = session.version.ts;
    if (!session.send(transition(session.version, end, modifications), this.now())) {
      this.drop(session, CLOSE_INTERNAL_ERROR, "InternalServerError", "send failed; closing");
      return false;
    }
    session.version = end;
    session.owesTransition = false;
    if (session.owedTs !== null && end.ts >= session.owedTs) {
      session.owedTs = null;
      this.owing.delete(session);
    }
    this.counters.transitionsSent++;
    return true;
  }
}

function parseVersion(value: unknown): StateVersion {
  if (!isPlainObject(value)) throw new ProtocolError("a Transition version must be an object");
  return { querySet: value.querySet as number, ts: decodeTs(value.ts, "Transition version ts"), identity: value.identity as number };
}
