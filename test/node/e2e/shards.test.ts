/**
 * Sync shards end to end (docs/SHARDS.md): `wrangler dev`, `syncShards` set
 * to 3 through the knob API, unmodified official clients. Sockets spread
 * over the shards, a commit runs its query once and reaches everyone, a
 * writer's awaited mutation is already in its own subscription, and signing
 * in works through a shard.
 */
import { describe, expect, it } from "vitest";
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import { devServerForFile } from "./dev-server.ts";
import { adminStatus, createDeployment, setKnobs } from "../../../scripts/lib/admin.ts";
import { until } from "../../../scripts/lib/until.ts";

const server = devServerForFile();
type Status = { sessions: number; queryExecutions: number; shards: { id: string; sessions: number | null; subscriptions: number }[] };
const bodies = (messages: { body: string }[] | undefined) => messages?.map((m) => m.body);

describe("sync shards against wrangler dev", () => {
  it("spreads official clients over 3 shards; one commit runs once and reaches all; an awaited mutation is in its writer's subscription", async () => {
    const url = await createDeployment(server.url, "shards-e2e");
    await setKnobs(url, { syncShards: 3 });
    const clients = Array.from({ length: 12 }, () => new ConvexClient(url, { skipConvexDeploymentUrlCheck: true, logger: false }));
    const latest: ({ body: string }[] | undefined)[] = clients.map(() => undefined);
    try {
      clients.forEach((client, i) => client.onUpdate(anyApi.messages!.list!, { chatId: "s" }, (messages: { body: string }[]) => (latest[i] = messages)));
      await until(() => latest.every((v) => v !== undefined), "every first result");
      const before = await adminStatus<Status>(url);
      expect(before.shards).toHaveLength(3);
      expect(before.shards.every((shard) => (shard.sessions ?? 0) > 0)).toBe(true);
      expect(before.sessions).toBe(12);
      await clients[0]!.mutation(anyApi.messages!.send!, { chatId: "s", author: "w", body: "hello shards" });
      // Resolved only once a Transition at or past its commit reached the writer: the message is there.
      expect(bodies(latest[0])).toEqual(["hello shards"]);
      await until(() => latest.every((v) => bodies(v)?.[0] === "hello shards"), "every client's update");
      const after = await adminStatus<Status>(url);
      expect(after.queryExecutions - before.queryExecutions).toBe(1);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });

  it("signs in through a shard (the token is checked by the deployment object)", async () => {
    const url = await createDeployment(server.url, "shards-auth");
    await setKnobs(url, { syncShards: 3 });
    const client = new ConvexClient(url, { skipConvexDeploymentUrlCheck: true, logger: false });
    const changes: boolean[] = [];
    client.setAuth(
      async () => {
        const response = await fetch(`${url}/api/auth/dev-token`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ name: "shira" }),
        });
        return ((await response.json()) as { token: string }).token;
      },
      (isAuthenticated) => changes.push(isAuthenticated),
    );
    try {
      let viewer: { name: string } | null | undefined;
      client.onUpdate(anyApi.users!.viewer!, {}, (value: typeof viewer) => (viewer = value));
      await until(() => viewer?.name === "shira" && changes.includes(true), "signed in as shira");
      await client.mutation(anyApi.messages!.send!, { chatId: "sa", author: "x", body: "signed" });
      expect(await client.query(anyApi.messages!.list!, { chatId: "sa" })).toMatchObject([{ author: "shira" }]);
    } finally {
      await client.close();
    }
  });
});
