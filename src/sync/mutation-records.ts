/**
 * Mutations that must write once however often they are sent: a socket's
 * retry after a reconnect (keyed by session and request id) and an HTTP
 * mutation with an `Idempotency-Key`. The record of the first run is written
 * in that run's own commit; a repeat with the same function and arguments
 * gets its answer without running, and the same key reused for another call
 * is refused. Keys are bound to the caller's identity (see `recordKey`).
 */
import type { SyncStorage, StoredMutationResult } from "./storage.ts";
import { shortDigest } from "./hash.ts";

export interface RecordKey {
  sessionId: string;
  requestId: number;
}

/**
 * Where a record lives: the client's key and, for a signed-in caller, its
 * token identifier, encoded as a JSON array so no chosen key can spell
 * another caller's. Someone who learns a session id or idempotency key can
 * then neither read a signed-in user's recorded results nor pre-record keys
 * that make that user's calls fail as already used.
 */
export function recordKey(scope: "socket" | "http", key: RecordKey, tokenIdentifier: string | null): RecordKey {
  const sessionId = JSON.stringify(scope === "socket" ? [key.sessionId, tokenIdentifier] : [scope, key.sessionId, tokenIdentifier]);
  return { sessionId, requestId: key.requestId };
}

/** What a call's function and arguments hash to: a repeat must match it. */
export function mutationFingerprint(udfPath: string, argsJson: unknown): Promise<string> {
  return shortDigest(`${udfPath}\n${JSON.stringify(argsJson)}`);
}

/** The earlier run a call repeats (`reuse`), a key used before for another call (`conflict`), or null: run it. */
export function earlierRun(
  storage: Pick<SyncStorage, "findMutationResult">,
  key: RecordKey,
  fingerprint: string,
): { kind: "reuse"; record: StoredMutationResult } | { kind: "conflict" } | null {
  const previous = storage.findMutationResult(key.sessionId, key.requestId);
  if (!previous) return null;
  if (previous.fingerprint !== "" && previous.fingerprint !== fingerprint) return { kind: "conflict" };
  return { kind: "reuse", record: previous };
}
