/**
 * Socket plumbing: a hibernatable WebSocket seen as live sync's `Connection`,
 * and the session attachment it carries across hibernation.
 */
import type { Connection, SessionAttachment, SyncSession } from "../sync/session.ts";
import type { SyncFront } from "../sync/front.ts";
import type { Refusal } from "../sync/session-gate.ts";
import { BARE_SOCKET_HEADER, CLOSE_NOT_SENT } from "../knobs/wire.ts";
import { isLocalConfiguration, type Env } from "../env.ts";

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

function attachmentOf(ws: WebSocket): SessionAttachment | null {
  const attachment = ws.deserializeAttachment() as SessionAttachment | null;
  return attachment?.v === 1 ? attachment : null;
}

/** Our id for a new connection (logs, storage keys): short, random; `prefix` names whose it is (a shard's peer session). */
export function newConnectionId(prefix = ""): string {
  return `${prefix}${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** Whether a request asks for a WebSocket: the one check the Worker's sync route and both objects make. */
export function isWebSocketUpgrade(request: Request): boolean {
  return request.headers.get("Upgrade")?.toLowerCase() === "websocket";
}

/** The answer to a request on a socket endpoint that is not an upgrade. */
export const UPGRADE_REQUIRED = { status: 426, code: "UpgradeRequired", message: "The sync endpoint speaks WebSocket only" } as const;

export function upgradeRequiredResponse(): Response {
  return Response.json({ code: UPGRADE_REQUIRED.code, message: UPGRADE_REQUIRED.message }, { status: UPGRADE_REQUIRED.status });
}

/** A refused upgrade (past the waiting room): 429 with the retry hint, which the official client backs off on. */
export function refusalResponse(refusal: Refusal, where = ""): Response {
  return Response.json(
    { code: refusal.code, message: `${refusal.message}${where}`, retryAfterMs: refusal.retryAfterMs },
    { status: 429, headers: { "Retry-After": String(Math.ceil(refusal.retryAfterMs / 1000)) } },
  );
}

/**
 * Socket -> session for a front's hibernatable sockets, so a message does not
 * deserialize its socket's attachment; after a wake the session is found by
 * the attachment's connection id (once).
 */
export class SocketSessions {
  private readonly sessions = new WeakMap<WebSocket, SyncSession>();
  /** Local benchmarks only (`acceptBareSocket`): sockets whose frames the object drops unread. Null until one is opened. */
  private bare: WeakSet<WebSocket> | null = null;

  set(ws: WebSocket, session: SyncSession): void {
    this.sessions.set(ws, session);
  }

  /** The socket's session; undefined for a socket that has none (a bare one, or one whose session ended before a wake). */
  of(ws: WebSocket, front: SyncFront): SyncSession | undefined {
    if (this.bare !== null && this.bare.has(ws)) return undefined;
    let session = this.sessions.get(ws);
    if (!session) {
      const attachment = attachmentOf(ws);
      session = attachment ? front.session(attachment.connectionId) : undefined;
      if (session) this.sessions.set(ws, session);
    }
    return session;
  }

  markBare(ws: WebSocket): void {
    (this.bare ??= new WeakSet()).add(ws);
  }
}

/**
 * Local configuration only (benchmarks' limit rows): a socket upgrade that
 * carries `BARE_SOCKET_HEADER` is accepted as a hibernatable socket with no
 * session, whose frames the object drops before any work of ours, so a flood
 * on it costs what the runtime's delivery costs and nothing more. Null: not
 * such a request (elsewhere the header is ignored).
 */
export function acceptBareSocket(ctx: DurableObjectState, env: Env, request: Request, sockets: SocketSessions): Response | null {
  if (!isLocalConfiguration(env) || !request.headers.has(BARE_SOCKET_HEADER)) return null;
  const { 0: client, 1: server } = new WebSocketPair();
  ctx.acceptWebSocket(server);
  sockets.markBare(server);
  return new Response(null, { status: 101, webSocket: client });
}

/** The sessions of the sockets still open after a wake, for `SyncFront.restore`. */
export function openSockets(ctx: DurableObjectState): { connection: Connection; attachment: SessionAttachment }[] {
  const open: { connection: Connection; attachment: SessionAttachment }[] = [];
  for (const ws of ctx.getWebSockets()) {
    const attachment = attachmentOf(ws);
    if (attachment) open.push({ connection: socketConnection(ws), attachment });
  }
  return open;
}

/**
 * Answers a client's close handshake (a peer left waiting reports 1006 after
 * a timeout). 1005 means "no code": answer without one; 1006/1015 are never
 * sent on the wire.
 */
export function answerClose(ws: WebSocket, code: number, reason: string): void {
  try {
    if (code === CLOSE_NOT_SENT.noStatus) ws.close();
    else if (code !== CLOSE_NOT_SENT.abnormal && code !== CLOSE_NOT_SENT.tlsFailure) ws.close(code, reason);
  } catch {
    // Already closed.
  }
}
