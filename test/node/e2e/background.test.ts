/**
 * Background sessions with calmsync's client transport and the official
 * client: half the pages hidden; under a stream of commits (with tight
 * refresh slices, so sessions queue: pressure) the hidden ones are refreshed
 * about once per `backgroundRefreshMs` while the visible ones stay fresh,
 * and every page ends with the latest result.
 */
import { describe, expect, it } from "vitest";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import WebSocket from "ws";
import { calmsyncWebSocket, type VisibilitySource } from "../../../src/client/index.ts";
import { devServerForFile } from "./dev-server.ts";
import { adminStatus, createDeployment, setKnobs } from "../../../scripts/lib/admin.ts";
import { until } from "../../../scripts/lib/until.ts";

const PAGES = 100;
/** Commits back to back (two writers) for this long: faster than tight slices drain 100 sessions, so sessions stay queued. */
const STREAM_MS = 4_000;

const server = devServerForFile();

describe("background sessions (wrangler dev, official client + calmsync/client)", () => {
  it("hidden pages are refreshed about once per backgroundRefreshMs under a stream of commits; visible ones stay fresh", async () => {
    const url = await createDeployment(server.url, "background");
    await setKnobs(url, { refreshSliceQueryRuns: 1, refreshSliceTransitions: 1, backgroundRefreshMs: 2_000 });
    const updates = new Array<number>(PAGES).fill(0);
    const latest: string[] = new Array(PAGES).fill("");
    const clients = Array.from({ length: PAGES }, (_, i) => {
      const hidden = i % 2 === 1;
      const visibility: VisibilitySource = { hidden: () => hidden, subscribe: () => () => undefined };
      const client = new ConvexClient(url, {
        skipConvexDeploymentUrlCheck: true,
        logger: false,
        webSocketConstructor: calmsyncWebSocket({ WebSocket: WebSocket as never, backgroundAfterMs: 100, visibility }) as never,
      });
      client.onUpdate(anyApi.messages!.list!, { chatId: "bg" }, (messages: { body: string }[]) => {
        updates[i]!++;
        latest[i] = messages[0]?.body ?? "";
      });
      return client;
    });
    const writer = new ConvexHttpClient(url, { skipConvexDeploymentUrlCheck: true });
    try {
      await until(() => updates.every((n) => n > 0), "every first result");
      await until(
        async () => (await adminStatus<{ limits: { sessions: { background: number } } }>(url)).limits.sessions.background === PAGES / 2,
        "the hidden pages to report",
      );
      updates.fill(0);
      let commits = 0;
      const end = Date.now() + STREAM_MS;
      const stream = async () => {
        while (Date.now() < end) await writer.mutation(anyApi.messages!.send!, { chatId: "bg", author: "w", body: `m${commits++}` });
      };
      await Promise.all([stream(), stream()]);
      // The newest message is the one with the highest number (both writers share the counter).
      const newest = `m${commits - 1}`;
      // Everyone ends with the latest state, the hidden pages included.
      await until(() => latest.every((body) => body === newest), "every page's latest result", 10_000);
      const visible = updates.filter((_, i) => i % 2 === 0);
      const hidden = updates.filter((_, i) => i % 2 === 1);
      const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
      console.log(
        `updates per page over ${commits} commits in ${STREAM_MS / 1000} s: visible ${visible.join(",")} (mean ${mean(visible).toFixed(1)}); hidden ${hidden.join(",")} (mean ${mean(hidden).toFixed(1)})`,
      );
      // Hidden: about one refresh per 2 s of the stream, plus the catch-up at the end.
      expect(Math.max(...hidden)).toBeLessThanOrEqual(STREAM_MS / 2_000 + 3);
      expect(mean(visible)).toBeGreaterThan(3 * mean(hidden));
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  }, 60_000);
});
