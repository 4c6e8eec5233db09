/**
 * Session admission: a token bucket of new sessions per second
 * (`sessionAdmitRate`, `sessionAdmitBurst`) and a cap (`maxSessions`). A
 * socket that finds no room or no token waits in the waiting room
 * (src/sync/waiting-room.ts), let in by `tryAdmit` as tokens and room allow;
 * only past `maxWaitingSessions` is it refused before being accepted.
 *
 * A refusal carries a retry hint spread over the time the server can actually
 * serve: each refused client is promised the next free admission slot (one
 * every 1/rate seconds after those already promised), plus jitter within its
 * slot. A wave of 10,000 reconnects thus comes back as a ramp at the admission
 * rate instead of a second wave.
 */
import { TokenBucket } from "./token-bucket.ts";
import { retryHint } from "../knobs/wire.ts";
import { comeBackMs } from "../knobs/fixed.ts";

export interface AdmissionKnobs {
  sessionAdmitRate: number;
  sessionAdmitBurst: number;
  maxSessions: number;
}

export type AdmissionDecision = { admit: true } | { admit: false; code: "SessionRateLimited" | "TooManySessions"; retryAfterMs: number; message: string };

/** Counts per second over the last minute, for "per second" metrics. */
class RateWindow {
  private readonly buckets = new Map<number, number>();

  add(now: number): void {
    const second = Math.floor(now / 1000);
    this.buckets.set(second, (this.buckets.get(second) ?? 0) + 1);
    if (this.buckets.size > 60) for (const key of this.buckets.keys()) if (key < second - 60) this.buckets.delete(key);
  }

  /** Average per second over the last `seconds` complete seconds. */
  perSecond(now: number, seconds = 10): number {
    const current = Math.floor(now / 1000);
    let total = 0;
    for (let s = current - seconds; s < current; s++) total += this.buckets.get(s) ?? 0;
    return total / seconds;
  }
}

export class Admission {
  private readonly knobs: () => AdmissionKnobs;
  private readonly bucket: TokenBucket;
  private readonly random: () => number;
  /** The last admission slot promised to a refused client (ms). */
  private promisedUntil = 0;
  private readonly admittedWindow = new RateWindow();
  private readonly refusedWindow = new RateWindow();
  admitted = 0;
  refused = 0;

  constructor(knobs: () => AdmissionKnobs, now: number, random: () => number = Math.random) {
    this.knobs = knobs;
    this.random = random;
    this.bucket = new TokenBucket(
      () => knobs().sessionAdmitRate,
      () => knobs().sessionAdmitBurst,
      now,
    );
  }

  /** Admits one session if there is room and a token (counted as admitted); false otherwise, counting nothing. */
  tryAdmit(currentSessions: number, now: number): boolean {
    if (currentSessions >= this.knobs().maxSessions || !this.bucket.take(now)) return false;
    this.admitted++;
    this.admittedWindow.add(now);
    return true;
  }

  /** Milliseconds until the bucket has a token again (0 if it has one now). */
  waitMs(now: number): number {
    return this.bucket.waitMs(now);
  }

  /** A refusal with a retry hint (counted as refused): at `maxSessions`, or the bucket is empty. */
  refusal(currentSessions: number, now: number): AdmissionDecision & { admit: false } {
    const { sessionAdmitRate, maxSessions } = this.knobs();
    if (currentSessions >= maxSessions) {
      // Capacity frees only as sessions leave; spread the retries.
      return this.refuse(now, "TooManySessions", comeBackMs(this.random), `This deployment is at its limit of ${maxSessions} sessions (knob maxSessions)`);
    }
    const slotMs = 1000 / sessionAdmitRate;
    const slot = Math.max(now + this.bucket.waitMs(now), this.promisedUntil) + slotMs;
    this.promisedUntil = slot;
    const retryAfterMs = Math.ceil(slot - now + this.random() * slotMs);
    return this.refuse(
      now,
      "SessionRateLimited",
      retryAfterMs,
      `Too many new sessions (knob sessionAdmitRate: ${sessionAdmitRate}/s); ${retryHint(retryAfterMs)}`,
    );
  }

  private refuse(now: number, code: "SessionRateLimited" | "TooManySessions", retryAfterMs: number, message: string): AdmissionDecision & { admit: false } {
    this.refused++;
    this.refusedWindow.add(now);
    return { admit: false, code, retryAfterMs, message };
  }

  metrics(now: number) {
    return {
      admitted: this.admitted,
      refused: this.refused,
      admittedPerSecond: this.admittedWindow.perSecond(now),
      refusedPerSecond: this.refusedWindow.perSecond(now),
    };
  }
}

/** The close reason for shedding an existing session: the official client backs off from 3 s on this prefix. */
export function shedReason(retryAfterMs: number, why = "deployment over capacity"): string {
  return `SubscriptionsWorkerFullError: ${why}; ${retryHint(retryAfterMs)}`;
}
