/**
 * The door to a front, the same wherever sessions live (the deployment
 * object, a sync shard): whether a new socket is admitted now, waits in the
 * waiting room, or (past `maxWaitingSessions`) is refused with a retry hint;
 * the waiting room's turns (time-outs, admissions in arrival order as room
 * and the admission bucket allow, when to look again); and shedding the
 * newest sessions when `maxSessions` is lowered below the sessions held.
 */
import { Admission, shedReason, type AdmissionKnobs } from "./admission.ts";
import { ClientBuckets } from "./client-limits.ts";
import type { SyncFront } from "./front.ts";
import { CLOSE, retryHint } from "../knobs/wire.ts";
import { comeBackMs, WAITING_ROOM_MIN_TURN_MS } from "../knobs/fixed.ts";

export interface GateKnobs extends AdmissionKnobs {
  maxWaitingSessions: number;
  waitingTimeoutMs: number;
  clientSessionRate: number;
  clientSessionBurst: number;
}

/** A refused upgrade or call: the 429 body and its Retry-After. */
export interface Refusal {
  code: "SessionRateLimited" | "TooManySessions" | "ClientRateLimited";
  message: string;
  retryAfterMs: number;
}

export interface SessionGateOptions {
  front: SyncFront;
  knobs: () => GateKnobs;
  now: () => number;
  /** Asks for the waiting room's next turn at `at` (the object's alarm). */
  wake: (at: number) => void;
  random?: () => number;
  log?: (line: string) => void;
}

export class SessionGate {
  readonly admission: Admission;
  /** New sessions per client address (`clientSessionRate`): one address cannot spend everyone's admissions. */
  readonly perClient: ClientBuckets;
  private readonly options: SessionGateOptions;
  private readonly random: () => number;

  constructor(options: SessionGateOptions) {
    this.options = options;
    this.random = options.random ?? Math.random;
    this.admission = new Admission(options.knobs, options.now(), this.random);
    this.perClient = new ClientBuckets({
      rate: () => options.knobs().clientSessionRate,
      burst: () => options.knobs().clientSessionBurst,
      what: "new sessions",
      knobs: "clientSessionRate/clientSessionBurst",
    });
  }

  /**
   * A new socket from `client` (its address): admitted (`waiting: false`),
   * put in the waiting room (`waiting: true`), or refused. A client past its
   * own rate is refused before it takes a place in the room or a token; a
   * client refused because the room is full keeps its own token.
   */
  accept(client: string): { waiting: boolean } | { refusal: Refusal } {
    const { front } = this.options;
    const now = this.options.now();
    const overClient = this.perClient.take(client, now);
    if (overClient) return { refusal: overClient };
    // In arrival order: while anyone waits, a newcomer waits behind them even if a token is free.
    const waiting = front.waitingCount > 0 || !this.admission.tryAdmit(front.sessionCount, now);
    if (waiting && front.waitingCount >= this.options.knobs().maxWaitingSessions) {
      // Refused for the deployment's reasons, not the client's: its own rate keeps the token.
      this.perClient.giveBack(client);
      const { code, message, retryAfterMs } = this.admission.refusal(front.sessionCount, now);
      return { refusal: { code, message, retryAfterMs } };
    }
    return { waiting };
  }

  /**
   * The waiting room's turn: tells sessions that waited `waitingTimeoutMs` to
   * come back later, lets the others in, in arrival order, while there is room
   * and the admission bucket allows, and returns when to look again: when the
   * bucket refills if there is room (at most every WAITING_ROOM_MIN_TURN_MS, so a wave is let in
   * in batches), else when the oldest would time out (a close also calls this).
   */
  serve(): number | null {
    const { front } = this.options;
    const k = this.options.knobs();
    front.expireWaiting(k.waitingTimeoutMs, () => shedReason(comeBackMs(this.random), `waited ${k.waitingTimeoutMs} ms for room`));
    front.admitWaiting(() => this.admission.tryAdmit(front.sessionCount, this.options.now()));
    const since = front.oldestWaitingSince();
    if (since === null) return null;
    const now = this.options.now();
    const expiry = since + k.waitingTimeoutMs;
    return front.sessionCount < k.maxSessions ? Math.min(expiry, now + Math.max(WAITING_ROOM_MIN_TURN_MS, this.admission.waitMs(now))) : expiry;
  }

  /** Serves the waiting room now and asks for its next turn. */
  pump(): void {
    const next = this.serve();
    if (next !== null) this.options.wake(next);
  }

  /**
   * The last resort: when sessions exceed `maxSessions` (lowered at runtime),
   * close the newest ones with 1013 and a jittered retry hint whose prefix the
   * official client treats as overload.
   */
  shedExcess(): void {
    const { front } = this.options;
    const maxSessions = this.options.knobs().maxSessions;
    const excess = front.sessionCount - maxSessions;
    if (excess <= 0) return;
    for (const session of front.newestSessions(excess)) {
      const retryAfterMs = comeBackMs(this.random);
      front.drop(session, CLOSE.tryAgainLater, shedReason(retryAfterMs), `shed over maxSessions=${maxSessions}; ${retryHint(retryAfterMs)}`);
    }
  }
}

/**
 * Shard `index`'s part of the deployment's admission limits when `shards`
 * share them: the shares add up to the whole exactly (the first `whole %
 * shards` shards take one more), so the deployment's cap holds however the
 * sockets spread.
 */
export function gateShare(knobs: GateKnobs, index: number, shards: number): GateKnobs {
  const part = (whole: number) => Math.floor(whole / shards) + (index < whole % shards ? 1 : 0);
  return {
    maxSessions: part(knobs.maxSessions),
    // Rates may round up (at least one a second each): only the cap must add up exactly.
    sessionAdmitRate: Math.max(part(knobs.sessionAdmitRate), 1),
    sessionAdmitBurst: Math.max(part(knobs.sessionAdmitBurst), 1),
    maxWaitingSessions: part(knobs.maxWaitingSessions),
    waitingTimeoutMs: knobs.waitingTimeoutMs,
    // A client's sockets spread over the shards at random like everyone's: each shard takes its share of its rate.
    clientSessionRate: Math.max(part(knobs.clientSessionRate), 1),
    clientSessionBurst: Math.max(part(knobs.clientSessionBurst), 1),
  };
}
