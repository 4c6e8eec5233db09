/**
 * Bytes of clients' frames an object holds before it has handled them:
 * mutations waiting for their turn of the lock (or held while their session
 * waits for room), actions running, and frames queued behind a message still
 * being handled (a token being checked). Counts of requests alone do not
 * bound memory (a thousand mutations of a megabyte each, or frames queued
 * without limit behind a slow sign-in), so bytes are counted per session and
 * for the whole object, and a request past either budget is refused instead
 * of buffered: one socket must not take the isolate past its 128 MB, which
 * would reset the object and drop every session.
 */
import type { SyncSession } from "./session.ts";

/** The budgets (knobs); a shard's peer session has no budget of its own (the shard holds each client to it), only the object's. */
export interface PendingBytesKnobs {
  maxPendingBytesPerSession: number;
  maxPendingBytes: number;
}

/** Which budget a request would pass: its session's, or the object's. */
export type PendingRefusal =
  { budget: "session"; knob: "maxPendingBytesPerSession"; limit: number } | { budget: "object"; knob: "maxPendingBytes"; limit: number };

export class PendingBytes {
  /** Bytes held for all sessions now. */
  total = 0;
  /** The most ever held at once (status). */
  peak = 0;
  /** Requests refused past a budget (status). */
  refused = 0;

  /**
   * Takes `bytes` for `session` if both budgets allow, else takes nothing and
   * says which budget it would pass. `force` takes them regardless (what a
   * wake restores was accepted before).
   */
  take(session: SyncSession, bytes: number, knobs: PendingBytesKnobs, force = false): PendingRefusal | null {
    if (!force) {
      if (session.isClient && session.pendingBytes + bytes > knobs.maxPendingBytesPerSession) {
        this.refused++;
        return { budget: "session", knob: "maxPendingBytesPerSession", limit: knobs.maxPendingBytesPerSession };
      }
      if (this.total + bytes > knobs.maxPendingBytes) {
        this.refused++;
        return { budget: "object", knob: "maxPendingBytes", limit: knobs.maxPendingBytes };
      }
    }
    session.pendingBytes += bytes;
    this.total += bytes;
    if (this.total > this.peak) this.peak = this.total;
    return null;
  }

  /** Gives back what `take` took, once its request is handled. Nothing for a closed session: `forget` gave back all it held. */
  give(session: SyncSession, bytes: number): void {
    if (session.closed) return;
    session.pendingBytes -= bytes;
    this.total -= bytes;
  }

  /** The session is gone: all it held is given back at once (its requests' own `give` then does nothing). */
  forget(session: SyncSession): void {
    this.total -= session.pendingBytes;
    session.pendingBytes = 0;
  }
}

/** What a frame costs to hold: its length (a string's code units, a binary frame's bytes), as `maxFrameBytes` measures about. */
export function frameSize(frame: string | ArrayBuffer): number {
  return typeof frame === "string" ? frame.length : frame.byteLength;
}

/** The refusal's words for a request's failure and logs. */
export function pendingRefusalText(refusal: PendingRefusal, what: string): string {
  return refusal.budget === "session"
    ? `This connection has more than ${refusal.limit} bytes of requests waiting; ${what} refused until earlier ones finish (knob ${refusal.knob})`
    : `The deployment is overloaded: more than ${refusal.limit} bytes of requests are waiting; ${what} refused, try again shortly (knob ${refusal.knob})`;
}
