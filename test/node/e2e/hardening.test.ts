import { describe, expect, it } from "vitest";
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import WebSocket from "ws";
import { devServerForFile } from "./dev-server.ts";
import { queuedBytes } from "../../../scripts/bench/slow-consumer.ts";
import { until } from "../../../scripts/lib/until.ts";

const server = devServerForFile();

describe("the official client survives what one request can do (wrangler dev)", () => {
  it("an oversized mutation fails that mutation only: no fatal error, no uncaught exception, the client goes on", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on("uncaughtException", onUncaught);
    process.on("unhandledRejection", onUncaught);
    const client = new ConvexClient(server.url, {
      skipConvexDeploymentUrlCheck: true,
      webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
      logger: false,
    });
    try {
      let latest: { body: string }[] | undefined;
      client.onUpdate(anyApi.messages!.list!, { chatId: "oversized" }, (messages: { body: string }[]) => (latest = messages));
      await until(() => latest !== undefined, "the first result");
      // Over the 1 MiB frame limit: before, the server answered with a FatalError and the
      // client threw an uncaught "[CONVEX FATAL ERROR]" (a Node app exits).
      await expect(client.mutation(anyApi.messages!.send!, { chatId: "oversized", author: "a", body: "x".repeat(1_100_000) })).rejects.toThrow(
        /Mutation request is too large: Frame of \d+ bytes is larger than the 1048576-byte limit \(knob maxFrameBytes\)/,
      );
      await client.mutation(anyApi.messages!.send!, { chatId: "oversized", author: "a", body: "after" });
      await until(() => latest?.[0]?.body === "after", "the next update");
      expect(client.connectionState().connectionCount).toBe(1);
      expect(uncaught).toEqual([]);
    } finally {
      await client.close();
      process.off("uncaughtException", onUncaught);
      process.off("unhandledRejection", onUncaught);
    }
  });
});

describe("a client that stops reading (wrangler dev)", () => {
  it("is sent at most its send budget, however often its 2 MB result changes", async () => {
    // The finding: a paused socket was sent a Transition per edit (5,006 frames queued, never closed).
    const rate = 1_048_576;
    const burst = 16_777_216; // maxTransitionBytes
    const r = await queuedBytes(server.url, "paused", rate, 40);
    // Burst, plus the rate for the time the edits took, plus the one Transition that overdrew it.
    expect(r.bytes).toBeLessThanOrEqual(burst + rate * r.seconds + 2 * r.resultBytes);
    expect(r.transitions).toBeLessThan(40);
    expect(r.putOff).toBeGreaterThan(0);
  });
});
