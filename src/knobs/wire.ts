/**
 * What the server and the client add-on (`src/client`) must agree on: close
 * codes and the retry hint an overload close carries. One copy, imported by
 * both, so neither can drift from the other.
 */

/** Close codes the server sends (the official client reconnects on all of them; 1013 with a backoff hint). */
export const CLOSE = {
  normal: 1000,
  /** Policy violation: a protocol error. */
  protocolError: 1008,
  internalError: 1011,
  /** Try again later: the waiting room timed out, or the deployment sheds sessions. */
  tryAgainLater: 1013,
} as const;

/** Codes a peer reports but that are never sent on the wire (RFC 6455 7.4.1): "no code", "abnormal", "TLS failure". */
export const CLOSE_NOT_SENT = { noStatus: 1005, abnormal: 1006, tlsFailure: 1015 } as const;

/** The retry hint ending an overload close reason or refusal message: the client waits that long before its next socket. */
export function retryHint(retryAfterMs: number): string {
  return `retry in ${retryAfterMs} ms`;
}

/** Reads `retryHint`'s milliseconds back from a reason. */
export const RETRY_HINT = /retry in (\d+) ms/;

/** Local configuration only (benchmarks): the request header that names the sync shard (its index) a socket goes to, instead of one at random. */
export const SHARD_PIN_HEADER = "x-calmsync-shard";

/** Local configuration only (benchmarks' limit rows): the request header that asks for a bare socket, whose frames the object drops unread. */
export const BARE_SOCKET_HEADER = "x-calmsync-bare-socket";
