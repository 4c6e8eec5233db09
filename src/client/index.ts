/**
 * `calmsync/client`: a transport for the official Convex clients, passed as
 * `webSocketConstructor` to `ConvexClient` or `ConvexReactClient`:
 *
 * ```ts
 * import { calmsyncWebSocket } from "calmsync/client";
 * const client = new ConvexReactClient(url, { webSocketConstructor: calmsyncWebSocket() });
 * // In Node: calmsyncWebSocket({ WebSocket: (await import("ws")).default })
 * ```
 *
 * It does two things the official client does not:
 * - tells the server, with a protocol `Event` frame, when the page has been
 *   hidden for `backgroundAfterMs` and when it is visible again, so a busy
 *   deployment refreshes background tabs less often (never with stale
 *   state: a background session still gets its latest results, later);
 * - honours the retry hint in a 1013 close reason (`...; retry in N ms`) as
 *   the floor of its next attempt, which the official client cannot read.
 *
 * Everything else is the socket it wraps. Clients without it are simply
 * foreground.
 */
import { CLOSE, RETRY_HINT } from "../knobs/wire.ts";

/** Whether the page is hidden, and a way to hear when that changes. */
export interface VisibilitySource {
  hidden(): boolean;
  /** Calls `listener` on every change; returns a function that stops it. */
  subscribe(listener: () => void): () => void;
}

export interface CalmsyncWebSocketOptions {
  /** The WebSocket class to wrap (default: the global one; in Node, e.g. the `ws` package). */
  WebSocket?: WebSocketClass;
  /** How long the page must stay hidden before the session counts as background (default 30 s). */
  backgroundAfterMs?: number;
  /** Where visibility comes from (default: the page's `document.visibilityState`; always visible without a document). */
  visibility?: VisibilitySource;
}

type WebSocketClass = new (url: string, protocols?: string | string[]) => WebSocket;

/** The protocol event calmsync's server reads (src/protocol/sync.ts). */
const VISIBILITY_EVENT = "calmsync.visibility";

/** Per URL: no new socket before this time (from the last 1013 close's retry hint). */
const notBefore = new Map<string, number>();

function pageVisibility(): VisibilitySource {
  const doc = (
    globalThis as {
      document?: {
        visibilityState?: string;
        addEventListener(type: string, listener: () => void): void;
        removeEventListener(type: string, listener: () => void): void;
      };
    }
  ).document;
  if (!doc) return { hidden: () => false, subscribe: () => () => undefined };
  return {
    hidden: () => doc.visibilityState === "hidden",
    subscribe: (listener) => {
      doc.addEventListener("visibilitychange", listener);
      return () => doc.removeEventListener("visibilitychange", listener);
    },
  };
}

export function calmsyncWebSocket(options: CalmsyncWebSocketOptions = {}): WebSocketClass {
  const found = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
  if (!found) throw new Error("calmsyncWebSocket: no WebSocket here; pass one, e.g. { WebSocket: require('ws') }");
  const Base: WebSocketClass = found;
  const backgroundAfterMs = options.backgroundAfterMs ?? 30_000;
  const visibility = options.visibility ?? pageVisibility();

  class CalmsyncWebSocket {
    static readonly CONNECTING = 0;
    static readonly OPEN = 1;
    static readonly CLOSING = 2;
    static readonly CLOSED = 3;
    readonly CONNECTING = 0;
    readonly OPEN = 1;
    readonly CLOSING = 2;
    readonly CLOSED = 3;
    onopen: ((event: Event) => void) | null = null;
    onmessage: ((event: MessageEvent) => void) | null = null;
    onclose: ((event: CloseEvent) => void) | null = null;
    onerror: ((event: Event) => void) | null = null;
    readonly url: string;
    private inner: WebSocket | null = null;
    private state = 0;
    private delay: ReturnType<typeof setTimeout> | null = null;
    /** The client's first frame (Connect) went out: the server will read our events from now on. */
    private connected = false;
    private background = false;
    private hiddenTimer: ReturnType<typeof setTimeout> | null = null;
    private stopListening: (() => void) | null = null;

    constructor(url: string, protocols?: string | string[]) {
      this.url = url;
      const waitMs = (notBefore.get(url) ?? 0) - Date.now();
      if (waitMs > 0) this.delay = setTimeout(() => this.open(protocols), waitMs);
      else this.open(protocols);
    }

    get readyState(): number {
      return this.inner && this.state !== 3 ? this.inner.readyState : this.state;
    }

    private open(protocols?: string | string[]): void {
      this.delay = null;
      const ws = new Base(this.url, protocols);
      this.inner = ws;
      ws.onopen = (event) => this.onopen?.(event);
      ws.onmessage = (event) => this.onmessage?.(event);
      ws.onerror = (event) => this.onerror?.(event);
      ws.onclose = (event) => {
        this.state = 3;
        this.stopVisibility();
        const hint = event.code === CLOSE.tryAgainLater ? RETRY_HINT.exec(event.reason) : null;
        if (hint) notBefore.set(this.url, Date.now() + Number(hint[1]));
        this.onclose?.(event);
      };
    }

    send(data: string): void {
      this.inner!.send(data);
      if (!this.connected) {
        this.connected = true;
        this.startVisibility();
      }
    }

    close(code?: number, reason?: string): void {
      if (this.inner) return this.inner.close(code, reason);
      // Closed while still waiting out a retry hint: no socket was ever opened.
      if (this.delay !== null) clearTimeout(this.delay);
      this.state = 3;
      queueMicrotask(() => this.onclose?.({ code: CLOSE.normal, reason: "", wasClean: true } as CloseEvent));
    }

    private startVisibility(): void {
      const update = () => this.visibilityChanged();
      this.stopListening = visibility.subscribe(update);
      update();
    }

    private stopVisibility(): void {
      this.stopListening?.();
      this.stopListening = null;
      if (this.hiddenTimer !== null) clearTimeout(this.hiddenTimer);
      this.hiddenTimer = null;
    }

    private visibilityChanged(): void {
      if (visibility.hidden()) {
        this.hiddenTimer ??= setTimeout(() => this.report(true), backgroundAfterMs);
        return;
      }
      if (this.hiddenTimer !== null) clearTimeout(this.hiddenTimer);
      this.hiddenTimer = null;
      if (this.background) this.report(false);
    }

    private report(background: boolean): void {
      this.hiddenTimer = null;
      this.background = background;
      if (this.inner?.readyState === 1) this.inner.send(JSON.stringify({ type: "Event", eventType: VISIBILITY_EVENT, event: { background } }));
    }
  }
  return CalmsyncWebSocket as unknown as WebSocketClass;
}
