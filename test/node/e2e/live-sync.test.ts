import { describe, expect, it } from "vitest";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { devServerForFile } from "./dev-server.ts";
import { adminStatus, createDeployment } from "../../../scripts/lib/admin.ts";
import { untilValue } from "../../../scripts/lib/until.ts";

type Message = { _id: string; body: string; chatId: string };

const server = devServerForFile();

type Status = { commits: number; invalidations: number; queryExecutions: number; transitionsSent: number; sessions: number; subscriptions: number };

const status = (url: string) => adminStatus<Status>(url);

describe("ConvexClient live sync against wrangler dev", () => {
  it("pushes a new message to a subscriber and leaves other chats' subscriptions alone", async () => {
    const url = await createDeployment(server.url, "live-e2e");
    const reader = new ConvexClient(url, { skipConvexDeploymentUrlCheck: true });
    const writer = new ConvexClient(url, { skipConvexDeploymentUrlCheck: true });
    const http = new ConvexHttpClient(url, { skipConvexDeploymentUrlCheck: true });
    try {
      let latest: Message[] | undefined;
      let updates = 0;
      const unsubscribe = reader.onUpdate(anyApi.messages!.list!, { chatId: "A" }, (messages: Message[]) => {
        latest = messages;
        updates++;
      });
      await untilValue(
        () => latest,
        (v) => v !== undefined,
        "the first result",
      );
      expect(latest).toEqual([]);

      // A message from the other client arrives in the subscription.
      await writer.mutation(anyApi.messages!.send!, { chatId: "A", author: "bob", body: "hello A" });
      await untilValue(
        () => latest,
        (v) => v?.[0]?.body === "hello A",
        "the pushed message",
      );
      const statusAfterPush = await status(url);
      expect(statusAfterPush.sessions).toBe(2);
      expect(statusAfterPush.subscriptions).toBe(1);

      // A write to chat B must neither re-run nor notify chat A's subscription. A barrier
      // write to chat A afterwards is ordered after it; counting across both proves it.
      const before = await status(url);
      const updatesBefore = updates;
      await http.mutation(anyApi.messages!.send!, { chatId: "B", author: "carol", body: "hello B" });
      await http.mutation(anyApi.messages!.send!, { chatId: "A", author: "carol", body: "barrier" });
      await untilValue(
        () => latest,
        (v) => v?.[0]?.body === "barrier",
        "the barrier message",
      );
      const after = await status(url);
      expect(after.commits - before.commits).toBe(2);
      expect(after.invalidations - before.invalidations).toBe(1); // the barrier only
      expect(after.queryExecutions - before.queryExecutions).toBe(1);
      expect(after.transitionsSent - before.transitionsSent).toBe(1);
      expect(updates - updatesBefore).toBe(1);
      unsubscribe();
    } finally {
      await reader.close();
      await writer.close();
    }
  });

  it("resolves a socket mutation only after its transition, with the result", async () => {
    const url = await createDeployment(server.url, "live-e2e-mutation");
    const client = new ConvexClient(url, { skipConvexDeploymentUrlCheck: true });
    try {
      const id = await client.mutation(anyApi.messages!.send!, { chatId: "M", author: "ann", body: "over the socket" });
      expect(id).toMatch(/^[0-9a-z]{26}messages$/);
      const listed = await client.query(anyApi.messages!.list!, { chatId: "M" });
      expect(listed.map((m: Message) => m._id)).toEqual([id]);
      await expect(client.mutation(anyApi.messages!.send!, { chatId: "M", author: "ann" })).rejects.toThrow(/missing the required field `body`/);
    } finally {
      await client.close();
    }
  });
});
