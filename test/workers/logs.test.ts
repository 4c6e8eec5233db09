/**
 * The operator's log (issue 26 item 5): every function run, with its console
 * lines, outcome, duration and request id, in a ring per deployment bounded by
 * its knobs, tailed live at `/api/admin/logs` (NDJSON) with filters, at most
 * `maxLogStreams` tails at once.
 */
import { describe, expect, it } from "vitest";
import { runInDurableObject } from "cloudflare:test";
import { mutationGeneric } from "convex/server";
import { v } from "convex/values";
import { registerModules } from "../../src/engine/index.ts";
import type { Deployment } from "../../src/deployment/deployment.ts";
import { admin, bindings, fresh, setKnobs, status, worker } from "./helpers.ts";

type Line = {
  type: string;
  seq?: number;
  path?: string;
  kind?: string;
  outcome?: string;
  level?: string;
  lines?: string[];
  requestId?: string;
  durationMs?: number;
  error?: string | null;
  count?: number;
  next?: number;
};

const chatty = registerModules({
  chatty: {
    shout: mutationGeneric({
      args: { word: v.string(), fail: v.optional(v.boolean()) },
      handler: async (_ctx, { word, fail }) => {
        console.log("said", word, { loud: true });
        console.warn("careful");
        if (fail) throw new Error(`no ${word}`);
        return word;
      },
    }),
  },
}).get("chatty:shout")!;

/** Runs `chatty:shout` in the deployment's object, as a socket's mutation runs. */
async function shout(deployment: string, word: string, fail = false): Promise<void> {
  await runInDurableObject(bindings.DEPLOYMENTS.getByName(deployment), async (instance: Deployment) => {
    const engine = instance.runtime.engine;
    await engine.exclusive(() => engine.executeMutation(chatty, { word, fail })).catch(() => undefined);
  });
}

const logsUrl = (deployment: string, query = "") => `http://t/d/${deployment}/api/admin/logs${query}`;

async function readAll(deployment: string, query: string): Promise<Line[]> {
  const response = await worker.fetch(logsUrl(deployment, query), { headers: admin });
  expect(response.status).toBe(200);
  expect(response.headers.get("Content-Type")).toContain("application/x-ndjson");
  const text = new TextDecoder().decode(await response.arrayBuffer());
  return text
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Line);
}

/** Reads whole lines from a live tail until `done` holds of what was read. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, done: (lines: Line[]) => boolean): Promise<Line[]> {
  const decoder = new TextDecoder();
  const lines: Line[] = [];
  let rest = "";
  while (!done(lines)) {
    const { value, done: ended } = await reader.read();
    if (ended) break;
    const parts = (rest + decoder.decode(value, { stream: true })).split("\n");
    rest = parts.pop()!;
    lines.push(...parts.map((part) => JSON.parse(part) as Line));
  }
  return lines;
}

describe("the operator's log", () => {
  it("shows a function's console lines, outcome, duration and the Worker's request id", async () => {
    const d = fresh("logs");
    const sent = await worker.fetch(`http://t/d/${d}/api/mutation`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path: "messages:send", args: { chatId: "c", author: "a", body: "hi" } }),
    });
    expect(sent.status).toBe(200);
    await shout(d, "hello");
    await shout(d, "boom", true);
    const runs = (await readAll(d, "?follow=0")).filter((line) => line.type === "run");
    expect(runs).toMatchObject([
      {
        seq: 1,
        path: "messages:send",
        kind: "mutation",
        outcome: "success",
        level: "info",
        lines: [],
        requestId: sent.headers.get("X-Request-Id"),
        error: null,
      },
      { seq: 2, path: "chatty:shout", outcome: "success", level: "warn", lines: ['[LOG] said hello {"loud":true}', "[WARN] careful"] },
      {
        seq: 3,
        path: "chatty:shout",
        outcome: "failure",
        level: "error",
        error: "Uncaught Error: no boom",
        lines: ['[LOG] said boom {"loud":true}', "[WARN] careful"],
      },
    ]);
    for (const run of runs) expect(run.durationMs).toBeGreaterThanOrEqual(0);
    expect(runs[1]!.requestId).toMatch(/^[0-9a-f]{16}$/);
    // Filters: by function (any part of its path) and by level (that level and above).
    expect((await readAll(d, "?follow=0&function=chatty")).filter((l) => l.type === "run").map((l) => l.seq)).toEqual([2, 3]);
    expect((await readAll(d, "?follow=0&level=error")).filter((l) => l.type === "run").map((l) => l.seq)).toEqual([3]);
    expect((await readAll(d, "?follow=0&since=2")).map((l) => l.seq ?? l.type)).toEqual([3, "end"]);
    expect((await worker.fetch(logsUrl(d, "?level=loud"), { headers: admin })).status).toBe(400);
    expect((await worker.fetch(logsUrl(d))).status).toBe(401);
  });

  it("streams new runs as they happen, and frees its place when the reader goes", async () => {
    const d = fresh("logs-live");
    await shout(d, "before");
    const response = await worker.fetch(logsUrl(d, "?function=chatty"), { headers: admin });
    const reader = response.body!.getReader();
    expect(await readUntil(reader, (lines) => lines.length >= 1)).toMatchObject([
      { type: "run", seq: 1, lines: ['[LOG] said before {"loud":true}', "[WARN] careful"] },
    ]);
    expect((await status(d)).limits.logRing.streams).toBe(1);
    await shout(d, "live");
    expect(await readUntil(reader, (lines) => lines.length >= 1)).toMatchObject([
      { type: "run", seq: 2, lines: ['[LOG] said live {"loud":true}', "[WARN] careful"] },
    ]);
    await reader.cancel();
    await shout(d, "after");
    await expect.poll(async () => (await status(d)).limits.logRing.streams).toBe(0);
  });

  it("keeps at most maxLogStreams tails: a new one ends the oldest, which says where to resume", async () => {
    const d = fresh("logs-streams");
    await setKnobs(d, { maxLogStreams: 2 });
    await shout(d, "one");
    const tails = [];
    for (let i = 0; i < 3; i++) {
      const response = await worker.fetch(logsUrl(d), { headers: admin });
      expect(response.status).toBe(200);
      tails.push(response.body!.getReader());
    }
    expect(await readUntil(tails[0]!, (lines) => lines.some((line) => line.type === "end"))).toEqual([
      expect.objectContaining({ type: "run", seq: 1 }),
      { type: "end", next: 1, reason: "replaced" },
    ]);
    expect((await status(d)).limits.logRing).toMatchObject({ streams: 2, streamsLimit: 2 });
    for (const tail of tails.slice(1)) await tail.cancel();
  });

  it("never holds more runs than logRingEntries: the oldest go, a reader from the start is told how many it missed, a lowered knob applies at once", async () => {
    const d = fresh("logs-ring");
    await setKnobs(d, { logRingEntries: 20 });
    for (let i = 0; i < 30; i++) {
      await shout(d, `w${i}`);
      expect((await status(d)).limits.logRing.entries).toBeLessThanOrEqual(20);
    }
    const lines = await readAll(d, "?follow=0&since=0");
    expect(lines[0]).toEqual({ type: "missed", count: 10 });
    expect(lines.filter((l) => l.type === "run").map((l) => l.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 11 + i));
    expect((await status(d)).limits.logRing).toMatchObject({ entries: 20, entriesLimit: 20, evicted: 10 });
    await setKnobs(d, { logRingEntries: 10 });
    expect((await status(d)).limits.logRing).toMatchObject({ entries: 10, entriesLimit: 10, evicted: 20 });
  });
});
