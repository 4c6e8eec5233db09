import { describe, expect, it } from "vitest";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import WebSocket from "ws";
import { anyApi } from "convex/server";
import { devServerForFile } from "./dev-server.ts";
import { adminStatus, createDeployment } from "../../../scripts/lib/admin.ts";
import { until } from "../../../scripts/lib/until.ts";

const server = devServerForFile();

describe("ConvexHttpClient against wrangler dev", () => {
  it("sends then lists messages", async () => {
    const client = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
    const ids: string[] = [];
    for (const body of ["first", "second", "third"]) {
      ids.push(await client.mutation(anyApi.messages!.send!, { chatId: "e2e", author: "ann", body }));
    }
    const listed = await client.query(anyApi.messages!.list!, { chatId: "e2e" });
    expect(listed.map((m: { body: string }) => m.body)).toEqual(["third", "second", "first"]);
    expect(listed.map((m: { _id: string }) => m._id)).toEqual([...ids].reverse());
  });

  it("surfaces function errors as thrown errors carrying the message", async () => {
    const client = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
    await expect(client.query(anyApi.messages!.nope!, {})).rejects.toThrow(/Could not find public function for 'messages:nope'/);
    await expect(client.mutation(anyApi.messages!.send!, { chatId: "e2e", author: "ann" })).rejects.toThrow(/missing the required field `body`/);
  });

  it("runs actions (ConvexHttpClient.action and ConvexClient.action), and a scheduled reply grows live for a subscriber", async () => {
    const http = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
    expect(await http.action(anyApi.assistant!.suggest!, { chatId: "act", prompt: "hi", delayMs: 0 })).toMatchObject({ text: expect.any(String), seen: 0 });
    const live = new ConvexClient(server.url, {
      skipConvexDeploymentUrlCheck: true,
      webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
      logger: false,
    });
    try {
      expect(await live.action(anyApi.assistant!.suggest!, { chatId: "act", prompt: "hi", delayMs: 100 })).toMatchObject({ seen: 0 });
      const bodies: string[] = [];
      live.onUpdate(anyApi.messages!.list!, { chatId: "act" }, (messages: { author: string; body: string }[]) => {
        const reply = messages.find((m) => m.author === "assistant");
        if (reply && bodies.at(-1) !== reply.body) bodies.push(reply.body);
      });
      await live.mutation(anyApi.assistant!.ask!, { chatId: "act", author: "ann", body: "tell me", words: 9, delayMs: 100 });
      await until(() => bodies.at(-1)?.split(" ").length === 9, "the whole reply", 15_000);
      expect(bodies.length).toBeGreaterThanOrEqual(3); // empty, then growing chunks
    } finally {
      await live.close();
    }
  });

  it("serves named deployments under /d/<name>", async () => {
    const other = new ConvexHttpClient(await createDeployment(server.url, "other-chat"), { skipConvexDeploymentUrlCheck: true });
    await other.mutation(anyApi.messages!.send!, { chatId: "e2e", author: "bob", body: "elsewhere" });
    const listed = await other.query(anyApi.messages!.list!, { chatId: "e2e" });
    expect(listed.map((m: { body: string }) => m.body)).toEqual(["elsewhere"]);
  });

  it("reports status and guards admin routes", async () => {
    expect(await (await fetch(`${server.url}/api/status`)).json()).toEqual({ ok: true, deployment: "default", version: expect.any(String) });
    expect((await fetch(`${server.url}/d/never-created/api/status`)).status).toBe(404);
    expect((await fetch(`${server.url}/api/admin/status`)).status).toBe(401);
    const status = await adminStatus(server.url);
    expect(status.commits).toBeGreaterThanOrEqual(3);
    expect(status.documents).toBeGreaterThanOrEqual(3);
  });
});
