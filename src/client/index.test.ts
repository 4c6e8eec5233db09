import { afterEach, describe, expect, it, vi } from "vitest";
import { calmsyncWebSocket, type VisibilitySource } from "./index.ts";

/** A stand-in socket that records what the wrapper does with it. */
class FakeSocket {
  static opened: FakeSocket[] = [];
  readyState = 0;
  sent: string[] = [];
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: unknown) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly url: string;
  constructor(url: string) {
    this.url = url;
    FakeSocket.opened.push(this);
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  send(data: string) {
    this.sent.push(data);
  }
  close() {
    this.readyState = 3;
  }
  serverClose(code: number, reason: string) {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

function visibility(hidden: boolean) {
  const listeners = new Set<() => void>();
  const source: VisibilitySource & { set(h: boolean): void } = {
    hidden: () => hidden,
    subscribe: (listener) => (listeners.add(listener), () => listeners.delete(listener)),
    set: (h) => ((hidden = h), listeners.forEach((l) => l())),
  };
  return source;
}

afterEach(() => {
  vi.useRealTimers();
  FakeSocket.opened = [];
});

describe("calmsyncWebSocket (fake clock, fake socket)", () => {
  it("tells the server after backgroundAfterMs hidden, and again when visible, only after the client's own first frame", () => {
    vi.useFakeTimers();
    const page = visibility(true);
    const Socket = calmsyncWebSocket({ WebSocket: FakeSocket as never, backgroundAfterMs: 1_000, visibility: page });
    const ws = new Socket("ws://x/api/1/sync") as unknown as { send(d: string): void; onopen: (() => void) | null };
    const inner = FakeSocket.opened[0]!;
    inner.open();
    vi.advanceTimersByTime(5_000);
    expect(inner.sent).toEqual([]); // nothing before Connect
    ws.send('{"type":"Connect"}');
    vi.advanceTimersByTime(999);
    expect(inner.sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(JSON.parse(inner.sent[1]!)).toEqual({ type: "Event", eventType: "calmsync.visibility", event: { background: true } });
    page.set(false);
    expect(JSON.parse(inner.sent[2]!)).toEqual({ type: "Event", eventType: "calmsync.visibility", event: { background: false } });
    // Hidden briefly: no event.
    page.set(true);
    vi.advanceTimersByTime(500);
    page.set(false);
    vi.advanceTimersByTime(5_000);
    expect(inner.sent).toHaveLength(3);
  });

  it("honours the retry hint of a 1013 close as the floor of the next attempt", () => {
    vi.useFakeTimers();
    const Socket = calmsyncWebSocket({ WebSocket: FakeSocket as never, visibility: visibility(false) });
    new Socket("ws://hinted/api/1/sync");
    FakeSocket.opened[0]!.serverClose(1013, "SubscriptionsWorkerFullError: deployment over capacity; retry in 4000 ms");
    // The official client reconnects after its own backoff (say 1 s): the real socket waits for the hint.
    vi.advanceTimersByTime(1_000);
    const retry = new Socket("ws://hinted/api/1/sync") as unknown as { readyState: number };
    expect(FakeSocket.opened).toHaveLength(1);
    expect(retry.readyState).toBe(0);
    vi.advanceTimersByTime(2_999);
    expect(FakeSocket.opened).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.opened).toHaveLength(2);
    // Other closes set no floor.
    FakeSocket.opened[1]!.serverClose(1011, "InternalServerError; retry in 9000 ms");
    new Socket("ws://hinted/api/1/sync");
    expect(FakeSocket.opened).toHaveLength(3);
  });
});
