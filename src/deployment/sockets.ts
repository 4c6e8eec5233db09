/**
 * Socket plumbing: a hibernatable WebSocket seen as live sync's `Connection`,
 * and the session attachment it carries across hibernation.
 */
import type { Connection, SessionAttachment } from "../sync/session.ts";
import type { Refusal } from "../sync/session-gate.ts";

/** `hibernatable`: the session's versions ride on the socket (a sync shard's sockets do not hibernate, docs/SHARDS.md). */
export function socketConnection(ws: WebSocket, { hibernatable = true } = {}): Connection {
  return {
    send(frame) {
      try {
        ws.send(frame);
        return true;
      } catch {
        // Closed under us, or the frame is over the runtime's message limit: the caller closes the session.
        return false;
      }
    },
    close(code, reason) {
      try {
        ws.close(code, reason);
      } catch {
        // Already closing.
      }
    },
    saveAttachment(attachment) {
      if (hibernatable) ws.serializeAttachment(attachment);
    },
  };
}

export function attachmentOf(ws: WebSocket): SessionAttachment | null {
  const attachment = ws.deserializeAttachment() as SessionAttachment | null;
  return attachment?.v === 1 ? attachment : null;
}

/** Our id for a new connection (logs, storage keys): short, random. */
export function newConnectionId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

/** A refused upgrade (past the waiting room): 429 with the retry hint, which the official client backs off on. */
export function refusalResponse(refusal: Refusal, where = ""): Response {
  return Response.json(
    { code: refusal.code, message: `${refusal.message}${where}`, retryAfterMs: refusal.retryAfterMs },
    { status: 429, headers: { "Retry-After": String(Math.ceil(refusal.retryAfterMs / 1000)) } },
  );
}
