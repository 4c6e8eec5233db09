import { describe, expect, it } from "vitest";
import type { FunctionRun } from "../engine/engine.ts";
import { entryBytes, LogRing, type LogRingLimits } from "./log-ring.ts";
import { logStream, parseLogStreamRequest } from "./log-stream.ts";

function run(i: number, lines: string[] = [`[LOG] run ${i}`], overrides: Partial<FunctionRun> = {}): FunctionRun {
  return {
    ts: 1_000 + i,
    requestId: `r${i}`,
    path: i % 2 ? "messages:send" : "messages:list",
    kind: i % 2 ? "mutation" : "query",
    outcome: "success",
    error: null,
    durationMs: 1,
    lines,
    ...overrides,
  };
}

/** A deterministic pseudo-random sequence (tests must not depend on Math.random). */
function random(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32;
}

describe("the log ring", () => {
  it("never holds more entries or bytes than its knobs, whatever is added and however the knobs move", () => {
    const next = random(7);
    const limits: LogRingLimits = { entries: 50, bytes: 131_072 };
    const ring = new LogRing(() => limits);
    for (let i = 0; i < 5_000; i++) {
      // Now and then a knob moves, as an operator would move it (applied at the next add, or at once by trim()).
      if (i % 500 === 250) {
        limits.entries = 10 + Math.floor(next() * 200);
        limits.bytes = 131_072 + Math.floor(next() * 400_000);
        ring.trim();
      }
      const lines = Array.from({ length: Math.floor(next() * 8) }, () => `[LOG] ${"x".repeat(Math.floor(next() * 4_000))}`);
      ring.add(run(i, lines));
      expect(ring.size).toBeLessThanOrEqual(limits.entries);
      expect(ring.bytes).toBeLessThanOrEqual(limits.bytes);
      expect(ring.size).toBeGreaterThan(0);
    }
    // What it reports is what it holds.
    const held = ring.after(0, {}, Infinity).entries;
    expect(held).toHaveLength(ring.size);
    expect(held.reduce((sum, entry) => sum + entryBytes(entry), 0)).toBe(ring.bytes);
    expect(ring.evicted + ring.size).toBe(5_000);
  });

  it("keeps a run that prints more than the whole ring holds, without its lines", () => {
    const ring = new LogRing(() => ({ entries: 10, bytes: 131_072 }));
    ring.add(
      run(
        1,
        Array.from({ length: 200 }, () => `[LOG] ${"y".repeat(1_000)}`),
      ),
    );
    expect(ring.size).toBe(1);
    expect(ring.bytes).toBeLessThanOrEqual(131_072);
    expect(ring.after(0, {}, 10).entries[0]!.lines).toEqual(["[WARN] 200 lines dropped: more than the log ring holds (knob logRingBytes)"]);
  });

  it("numbers entries, grades them by their lines, filters by function and level, and says what a late reader missed", () => {
    const ring = new LogRing(() => ({ entries: 3, bytes: 1_000_000 }));
    ring.add(run(1, []));
    ring.add(run(2, ["[LOG] a", "[WARN] b"]));
    ring.add(run(3, ["[DEBUG] c"], { outcome: "failure", error: "Uncaught Error: no" }));
    ring.add(run(4, ["[ERROR] d"]));
    ring.add(run(5, ["[INFO] e"]));
    expect(ring.after(0, {}, 10)).toMatchObject({
      missed: 2,
      next: 5,
      entries: [
        { seq: 3, level: "error" },
        { seq: 4, level: "error" },
        { seq: 5, level: "info" },
      ],
    });
    expect(ring.after(3, {}, 10).entries.map((e) => e.seq)).toEqual([4, 5]);
    expect(ring.after(2, { function: "send" }, 10).entries.map((e) => e.seq)).toEqual([3, 5]);
    expect(ring.after(2, { level: "warn" }, 10).entries.map((e) => e.seq)).toEqual([3, 4]);
    expect(ring.after(2, {}, 1)).toMatchObject({ next: 3, entries: [{ seq: 3 }] });
    expect(ring.after(5, {}, 10)).toEqual({ entries: [], next: 5, missed: 0 });
  });
});

async function readLines(reader: ReadableStreamDefaultReader<Uint8Array>, count: number): Promise<Record<string, unknown>[]> {
  const decoder = new TextDecoder();
  let text = "";
  const lines: Record<string, unknown>[] = [];
  while (lines.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    const parts = text.split("\n");
    text = parts.pop()!;
    lines.push(...parts.map((part) => JSON.parse(part) as Record<string, unknown>));
  }
  return lines;
}

describe("a tail of the log ring", () => {
  it("sends the backlog, then new runs as they come, until its time is up, then where to resume", async () => {
    const ring = new LogRing(() => ({ entries: 100, bytes: 1_000_000 }));
    ring.add(run(1));
    ring.add(run(2));
    let timeUp = () => {};
    let ended = 0;
    const stream = logStream(
      ring,
      { since: null, filter: { function: "send" }, follow: true },
      { maxMs: 60_000, onEnd: () => ended++, after: (_ms, fn) => ((timeUp = fn), () => undefined) },
    );
    const reader = stream.body.getReader();
    expect(await readLines(reader, 1)).toMatchObject([{ type: "run", seq: 1, path: "messages:send", lines: ["[LOG] run 1"] }]);
    ring.add(run(3));
    ring.add(run(4));
    expect(await readLines(reader, 1)).toMatchObject([{ type: "run", seq: 3 }]);
    timeUp();
    expect(await readLines(reader, 2)).toEqual([{ type: "end", next: 4, reason: "time" }]);
    expect(ended).toBe(1);
    expect(ring.subscribers).toBe(0);
  });

  it("without follow ends once caught up; a reader that fell behind the ring is told how many it missed", async () => {
    const ring = new LogRing(() => ({ entries: 2, bytes: 1_000_000 }));
    for (let i = 1; i <= 5; i++) ring.add(run(i));
    const lines = await readLines(logStream(ring, { since: 0, filter: {}, follow: false }, { maxMs: 60_000 }).body.getReader(), 10);
    expect(lines).toEqual([
      { type: "missed", count: 3 },
      expect.objectContaining({ type: "run", seq: 4 }),
      expect.objectContaining({ type: "run", seq: 5 }),
      { type: "end", next: 5, reason: "caught-up" },
    ]);
  });

  it("stops listening when its reader cancels", async () => {
    const ring = new LogRing(() => ({ entries: 10, bytes: 1_000_000 }));
    let canceledTimer = false;
    const reader = logStream(ring, { since: null, filter: {}, follow: true }, { maxMs: 60_000, after: () => () => (canceledTimer = true) }).body.getReader();
    const pending = reader.read();
    await reader.cancel();
    await pending;
    expect(ring.subscribers).toBe(0);
    expect(canceledTimer).toBe(true);
    ring.add(run(1));
  });

  it("ends when closed, saying why, even if no one is reading it", async () => {
    const ring = new LogRing(() => ({ entries: 10, bytes: 1_000_000 }));
    ring.add(run(1));
    let ended = 0;
    const idle = logStream(ring, { since: null, filter: {}, follow: true }, { maxMs: 60_000, onEnd: () => ended++ });
    idle.close("replaced");
    expect(ended).toBe(1);
    expect(ring.subscribers).toBe(0);
    const read = logStream(ring, { since: null, filter: {}, follow: true }, { maxMs: 60_000 });
    const reader = read.body.getReader();
    expect(await readLines(reader, 1)).toMatchObject([{ type: "run", seq: 1 }]);
    read.close("replaced");
    expect(await readLines(reader, 2)).toEqual([{ type: "end", next: 1, reason: "replaced" }]);
  });

  it("reads its query: since, function, level, follow; refuses a bad one", () => {
    expect(parseLogStreamRequest(new URLSearchParams("since=12&function=messages:&level=warn&follow=0"))).toEqual({
      since: 12,
      filter: { function: "messages:", level: "warn" },
      follow: false,
    });
    expect(parseLogStreamRequest(new URLSearchParams(""))).toEqual({ since: null, filter: {}, follow: true });
    expect(parseLogStreamRequest(new URLSearchParams("level=loud"))).toMatchObject({ error: expect.stringContaining("level") });
    expect(parseLogStreamRequest(new URLSearchParams("since=x"))).toMatchObject({ error: expect.stringContaining("since") });
  });
});
