import { describe, expect, it } from "vitest";
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { devServerForFile } from "./dev-server.ts";
import { adminStatus, createDeployment } from "../../../scripts/lib/admin.ts";

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
