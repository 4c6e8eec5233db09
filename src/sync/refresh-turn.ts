/**
 * One session's refresh turn: brings it to the latest timestamp with one
 * Transition (or nothing, if nothing it holds changed). Dirty shared query
 * instances it needs are re-run (once, whoever needs them first), results
 * whose hash differs from what the session last got become modifications,
 * and the Transition starts exactly at the version the client holds.
 *
 * Bounds: queries new to the session spend the re-subscription budget;
 * a Transition holds at most `maxTransitionBytes`; a session may be sent at
 * most `sessionSendBytesPerSecond`. Runs inside the engine's lock (the
 * refresh scheduler's slice), so a turn sees one snapshot.
 */
import { queryFailed, queryRemoved, transition, type EncodedModification, type StateVersion } from "../protocol/sync.ts";
import { modificationFor, type QueryInstances } from "./query-instances.ts";
import type { TurnResult } from "./refresh-scheduler.ts";
import type { SyncSession } from "./session.ts";
import type { SyncCounters } from "./front.ts";
import { TokenBucket } from "./token-bucket.ts";

/** Bytes of a Transition around its modifications (versions, type). */
const TRANSITION_OVERHEAD_BYTES = 256;
/** A `sentHash` no result has: the query's update was held back and must go out in the next turn. */
const TRANSITION_DEFERRED = "deferred";

/** The knobs a turn reads. */
export interface TurnKnobs {
  /** Executions per second for queries new to a session (the replay of a reconnecting client's query set). */
  resubscribeRate: number;
  resubscribeBurst: number;
  /** Largest Transition sent; results that do not fit wait for the next one (below the runtime's 32 MiB message limit). */
  maxTransitionBytes: number;
  /** Bytes of Transitions one session may be sent per second (burst: maxTransitionBytes); past it its updates coalesce. */
  sessionSendBytesPerSecond: number;
}

export interface RefreshTurnDeps {
  instances: QueryInstances;
  knobs: () => TurnKnobs;
  now: () => number;
  counters: SyncCounters;
  /** The deployment's latest timestamp (the one every result of the turn is at). */
  lastTimestamp: () => bigint;
  /** Budget for running queries new to a session (reconnect replays). */
  resubscribe: TokenBucket;
  /** Sends a frame, closing the session if the runtime refuses it; false then. */
  send: (session: SyncSession, frame: string) => boolean;
  schedule: (session: SyncSession) => void;
  /** A Transition went out: the session's versions moved (the server saves them later). */
  sent: (session: SyncSession) => void;
}

export class RefreshTurn {
  private readonly deps: RefreshTurnDeps;
  /**
   * The last modification and frame built: the sessions that hold one query at one version get the
   * same modification, and when their versions agree too (a fan-out), the same frame, encoded once
   * and shared, not once per session (issue 27 item 2).
   */
  private lastModification: { encoded: object; queryId: number; journal: string | null; text: EncodedModification } | null = null;
  private lastFrame: { start: StateVersion; end: StateVersion; modification: EncodedModification; text: string } | null = null;

  constructor(deps: RefreshTurnDeps) {
    this.deps = deps;
  }

  /**
   * One session's turn: brings it to the latest timestamp with one Transition
   * (or nothing, if nothing it holds changed). Queries new to the session
   * spend the re-subscription budget; without enough, the turn is deferred.
   * A Transition holds at most `maxTransitionBytes`: a result that does not
   * fit is reported failed in this one and sent in the next turn.
   */
  async run(session: SyncSession): Promise<TurnResult> {
    if (this.putOffForSendBudget(session)) return { runs: 0, sent: false };
    let fresh = 0;
    for (const query of session.queries.values()) {
      const instance = this.deps.instances.get(query.instanceKey)!;
      if (query.sentHash === null && (instance.dirty || instance.encoded === null)) fresh++;
    }
    if (fresh > 0) {
      const need = Math.min(fresh, this.deps.knobs().resubscribeBurst);
      if (!this.deps.resubscribe.take(this.deps.now(), need))
        return { runs: 0, sent: false, deferMs: Math.max(1, this.deps.resubscribe.waitMs(this.deps.now(), need)) };
    }
    const maxBytes = this.deps.knobs().maxTransitionBytes;
    let runs = 0;
    let deferred = false;
    const ts = this.deps.lastTimestamp();
    const modifications: EncodedModification[] = session.pendingRemovals.map(queryRemoved);
    session.pendingRemovals = [];
    let bytes = TRANSITION_OVERHEAD_BYTES + modifications.reduce((sum, m) => sum + m.length, 0);
    for (const [queryId, query] of session.queries) {
      let instance = this.deps.instances.get(query.instanceKey)!;
      let encoded = instance.encoded;
      // Twice at most: a shared run that read the identity moves a signed-in session to its own instance.
      while (instance.dirty || (encoded === null && query.sentHash !== instance.resultHash)) {
        const run = await this.deps.instances.run(instance);
        if (run.invalidation) this.deps.counters.invalidations++;
        encoded = run.encoded;
        runs++;
        for (const moved of run.movedSessions) if (moved !== session) this.deps.schedule(moved);
        if (query.instanceKey === instance.key) break;
        instance = this.deps.instances.get(query.instanceKey)!;
        encoded = instance.encoded;
      }
      if (query.sentHash === instance.resultHash) continue;
      this.deps.instances.results.get(instance);
      let modification = this.modificationFor(queryId, encoded!, instance.journal);
      query.sentHash = instance.resultHash;
      if (bytes + modification.length > maxBytes) {
        const alone = TRANSITION_OVERHEAD_BYTES + modification.length <= maxBytes;
        modification = queryFailed(
          queryId,
          alone
            ? `This update did not fit into one Transition of ${maxBytes} bytes (knob maxTransitionBytes) with the session's other updates; it follows in the next one`
            : `The result is larger than a Transition may be: ${modification.length} bytes, limit ${maxBytes} (knob maxTransitionBytes)`,
          undefined,
          instance.journal,
        );
        // Fits alone: send it in the next turn. Too large even alone: it stays failed until it changes.
        if (alone) {
          query.sentHash = TRANSITION_DEFERRED;
          deferred = true;
        }
      }
      bytes += modification.length + 1;
      modifications.push(modification);
    }
    const end: StateVersion = { querySet: session.receivedQuerySet, ts, identity: session.receivedIdentity };
    const versionMoved = end.querySet !== session.version.querySet || end.identity !== session.version.identity;
    if (modifications.length === 0 && !versionMoved && !session.owesTransition) return { runs, sent: false };
    const frame = this.frame(session.version, end, modifications);
    // A refused send closes the session and leaves its version where the client has it.
    if (!this.deps.send(session, frame)) return { runs, sent: false };
    session.sendBudget!.spend(this.deps.now(), frame.length);
    session.version = end;
    session.owesTransition = false;
    this.deps.counters.transitionsSent++;
    if (deferred) this.deps.schedule(session);
    this.deps.sent(session);
    return { runs, sent: true };
  }

  /** `modificationFor`, shared with the previous session's when it is the same query result, query id and journal. */
  private modificationFor(queryId: number, encoded: Parameters<typeof modificationFor>[1], journal: string | null): EncodedModification {
    const last = this.lastModification;
    if (last !== null && last.encoded === encoded && last.queryId === queryId && last.journal === journal) return last.text;
    const text = modificationFor(queryId, encoded, journal);
    this.lastModification = { encoded, queryId, journal, text };
    return text;
  }

  /** `transition(...)`, shared with the previous session's when versions and its one modification are the same. */
  private frame(start: StateVersion, end: StateVersion, modifications: EncodedModification[]): string {
    if (modifications.length !== 1) return transition(start, end, modifications);
    const modification = modifications[0]!;
    const last = this.lastFrame;
    if (last !== null && last.modification === modification && sameVersion(last.start, start) && sameVersion(last.end, end)) return last.text;
    const text = transition(start, end, modifications);
    this.lastFrame = { start, end, modification, text };
    return text;
  }

  /**
   * The runtime does not tell how much a socket holds unsent (workerd has no
   * `bufferedAmount`), so a client that stops reading cannot be seen. What
   * bounds it: each turn sends at most one Transition with the latest state
   * (never a backlog per commit), and each session may be sent at most
   * `sessionSendBytesPerSecond` (burst `maxTransitionBytes`). A session in
   * debt is put off until its budget recovers; its updates coalesce meanwhile.
   * Returns whether the turn was put off.
   */
  private putOffForSendBudget(session: SyncSession): boolean {
    const now = this.deps.now();
    session.sendBudget ??= new TokenBucket(
      () => this.deps.knobs().sessionSendBytesPerSecond,
      () => this.deps.knobs().maxTransitionBytes,
      now,
    );
    const waitMs = session.sendBudget.waitMs(now, 0);
    if (waitMs === 0) return false;
    if (session.sendRetry === null) {
      this.deps.counters.sendsPutOff++;
      session.sendRetry = setTimeout(() => {
        session.sendRetry = null;
        this.deps.schedule(session);
      }, waitMs);
    }
    return true;
  }
}

function sameVersion(a: StateVersion, b: StateVersion): boolean {
  return a.querySet === b.querySet && a.ts === b.ts && a.identity === b.identity;
}
