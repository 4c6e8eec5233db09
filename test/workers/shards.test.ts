/**
 * Sync shards inside workerd (docs/SHARDS.md): a deployment with
 * `syncShards: 3` spreads its sockets over three shard objects; one commit
 * runs each affected query once in the deployment object and reaches every
 * shard; a client's own mutation is in its subscription when it resolves;
 * a shard evicted mid-stream and the deployment object restarted mid-stream
 * both end with every session correct.
 */
import { describe, expect, it } from "vitest";
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { ProtocolClient } from "./protocol-client.ts";
import { bindings, fresh, setKnobs, status, worker } from "./helpers.ts";
import type { ShardApi } from "../../src/deployment/shard-sessions.ts";

type Message = { body: string };
const bodies = (value: unknown) => (value as Message[] | undefined)?.map((m) => m.body) ?? [];

async function send(deployment: string, chatId: string, body: string): Promise<void> {
  const response = await worker.fetch(`http://t/d/${deployment}/api/mutation`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ path: "messages:send", format: "convex_encoded_json", args: [{ chatId, author: "w", body }] }),
  });
  expect(await response.json()).toMatchObject({ status: "success" });
}

async function watchers(deployment: string, count: number, chatId: string): Promise<ProtocolClient[]> {
  const clients = await Promise.all(Array.from({ length: count }, () => ProtocolClient.open(deployment)));
  for (const client of clients) client.add(0, "messages:list", { chatId });
  for (const client of clients) await client.until(() => client.results.has(0), "first result", 10_000);
  return clients;
}

describe("sync shards in workerd", () => {
  it("spreads sessions over 3 shards; one commit runs the query once and reaches all of them", async () => {
    const deployment = fresh("shards-spread");
    await setKnobs(deployment, { syncShards: 3 });
    const clients = await watchers(deployment, 30, "hot");
    const before = await status(deployment);
    expect(before.shards).toHaveLength(3);
    expect(before.shards.every((shard) => (shard.sessions ?? 0) > 0)).toBe(true);
    expect(before.sessions).toBe(30);
    await send(deployment, "hot", "to every shard");
    for (const client of clients) await client.until(() => bodies(client.results.get(0))[0] === "to every shard", "the update", 10_000);
    const after = await status(deployment);
    expect(after.queryExecutions - before.queryExecutions).toBe(1);
    for (const client of clients) expect(client.chainingErrors).toEqual([]);
    for (const client of clients) client.close();
  });

  it("a client's own mutation is in its subscription when the mutation resolves", async () => {
    const deployment = fresh("shards-own");
    await setKnobs(deployment, { syncShards: 3 });
    const [writer] = await watchers(deployment, 1, "own");
    const response = await writer!.mutation("messages:send", { chatId: "own", author: "me", body: "mine" });
    expect(response).toMatchObject({ success: true });
    // `mutation` waited for a Transition at or past the commit's ts: by then the write is in the result.
    expect(bodies(writer!.results.get(0))).toEqual(["mine"]);
    writer!.close();
  });

  it("changing syncShards spreads new sockets and moves nobody", async () => {
    const deployment = fresh("shards-change");
    await setKnobs(deployment, { syncShards: 3 });
    const onShards = await watchers(deployment, 6, "c");
    // The Worker isolate that forwards the change asks for the count again at once (others within 10 s).
    await setKnobs(deployment, { syncShards: 1 });
    const onObject = await watchers(deployment, 3, "c");
    const now = await status(deployment);
    expect(now.sessions).toBe(9);
    expect(now.shards.reduce((n, shard) => n + (shard.sessions ?? 0), 0)).toBe(6);
    await send(deployment, "c", "everyone");
    for (const client of [...onShards, ...onObject]) {
      await client.until(() => bodies(client.results.get(0))[0] === "everyone", "the update", 10_000);
      expect(client.closed).toBeNull();
      client.close();
    }
  }, 30_000);

  it("a push lost and a push delivered twice are repaired, with no wrong or repeated update", async () => {
    const deployment = fresh("shards-faults");
    await setKnobs(deployment, { syncShards: 3 });
    const clients = await watchers(deployment, 12, "f");
    for (const client of clients) client.add(1, "messages:list", { chatId: "g" });
    for (const client of clients) await client.until(() => client.results.has(1), "second query", 10_000);
    const shard = (k: number) =>
      bindings.SYNC_SHARDS.getByName(`${deployment}/shard-${k}`) as unknown as { faultNextPush(fault: "lose" | "twice"): Promise<void> };
    // Shard 0 loses the only push that carries chat g's update; the next push (chat f) shows the gap.
    await shard(0).faultNextPush("lose");
    await send(deployment, "g", "g1");
    await send(deployment, "f", "f1");
    // Every shard gets its next push twice; it carries a client's own mutation response.
    for (const k of [0, 1, 2]) await shard(k).faultNextPush("twice");
    const writer = clients[0]!;
    await writer.mutation("messages:send", { chatId: "f", author: "w", body: "f2" });
    expect(writer.messages.filter((m) => m.type === "MutationResponse")).toHaveLength(1);
    for (const client of clients) {
      await client.until(() => bodies(client.results.get(0))[0] === "f2" && bodies(client.results.get(1))[0] === "g1", "both chats current", 10_000);
      expect(bodies(client.results.get(0))).toEqual(["f2", "f1"]);
      expect(bodies(client.results.get(1))).toEqual(["g1"]);
      expect(client.chainingErrors).toEqual([]);
      for (const queryId of [0, 1]) {
        const updates = client.messages
          .filter((m) => m.type === "Transition")
          .flatMap((m) => m.modifications as { queryId: number; type: string; value: unknown }[])
          .filter((m) => m.type === "QueryUpdated" && m.queryId === queryId)
          .map((m) => JSON.stringify(m.value));
        expect(updates.filter((u, i) => i > 0 && u === updates[i - 1])).toEqual([]);
      }
      client.close();
    }
  });

  it("a shard restarted mid-stream: its clients reconnect to any shard and every session ends correct", async () => {
    const deployment = fresh("shards-evict");
    await setKnobs(deployment, { syncShards: 3 });
    const clients = await watchers(deployment, 12, "e");
    await send(deployment, "e", "one");
    // Its sockets are not hibernatable, so the runtime cannot evict it quietly: reset it, as a crash or a deploy would.
    await runInDurableObject(bindings.SYNC_SHARDS.getByName(`${deployment}/shard-0`), (_instance, state) => {
      state.abort("test: the shard restarts");
    }).catch(() => undefined);
    for (const client of clients) await client.until(() => client.closed !== null || client.ws.readyState === WebSocket.OPEN, "the socket settles", 10_000);
    await send(deployment, "e", "two");
    // Clients whose socket closed reconnect (the official client does so by itself) to a shard picked at random.
    const survivors = clients.filter((client) => client.closed === null);
    const reconnected = await watchers(deployment, clients.length - survivors.length, "e");
    await send(deployment, "e", "three");
    for (const client of [...survivors, ...reconnected]) {
      await client.until(() => bodies(client.results.get(0))[0] === "three", "the last update", 10_000);
      expect(bodies(client.results.get(0))).toEqual(["three", "two", "one"]);
      expect(client.chainingErrors).toEqual([]);
      client.close();
    }
  });

  it("the deployment object restarted mid-stream: shards' sessions come back with it and every session ends correct", async () => {
    const deployment = fresh("shards-restart");
    await setKnobs(deployment, { syncShards: 3 });
    const clients = await watchers(deployment, 12, "r");
    // A client's acknowledged mutation, then the deployment object restarts.
    expect(await clients[3]!.mutation("messages:send", { chatId: "r", author: "c", body: "before" })).toMatchObject({ success: true });
    for (const client of clients) await client.until(() => bodies(client.results.get(0))[0] === "before", "before", 10_000);
    await evictDurableObject(bindings.DEPLOYMENTS.getByName(deployment));
    // Through the shard, after the restart: the shard finds its session gone, opens a new one and sends it again.
    expect(await clients[5]!.mutation("messages:send", { chatId: "r", author: "c", body: "after" })).toMatchObject({ success: true });
    // The shards' sessions came back with the object, running nothing: the one run since is the commit's.
    expect((await status(deployment)).queryExecutions).toBe(1);
    for (const client of clients) {
      await client.until(() => bodies(client.results.get(0))[0] === "after", "the update after the restart", 10_000);
      expect(bodies(client.results.get(0))).toEqual(["after", "before"]);
      expect(client.chainingErrors).toEqual([]);
      expect(client.closed).toBeNull();
      client.close();
    }
  });
});

describe("a sync shard's waiting room", () => {
  /** A client straight on shard `k` watching chat "a" (query 0). */
  async function onShard(deployment: string, k: number): Promise<ProtocolClient> {
    const client = await ProtocolClient.open(deployment, crypto.randomUUID(), bindings.SYNC_SHARDS.getByName(`${deployment}/shard-${k}`) as unknown as Fetcher);
    client.add(0, "messages:list", { chatId: "a" });
    return client;
  }

  it("survives the shard's hibernation: after the cap is raised every waiting session gets its first Transition in arrival order, its held mutation applied once", async () => {
    const deployment = fresh("shard-waiting");
    // Two shards share maxSessions 2: one session each.
    await setKnobs(deployment, { syncShards: 2, maxSessions: 2 });
    const shard = bindings.SYNC_SHARDS.getByName(`${deployment}/shard-0`);
    const stats = () => (shard as unknown as ShardApi).stats();
    const first = await onShard(deployment, 0);
    await first.until(() => first.results.has(0), "first result");
    const waiting = [await onShard(deployment, 0), await onShard(deployment, 0), await onShard(deployment, 0)];
    const held = waiting[1]!.mutate("messages:send", { chatId: "a", author: "w", body: "held across the shard's sleep" });
    await first.barrier();
    for (const client of waiting) expect(client.messages.filter((m) => m.type !== "Ping")).toEqual([]);
    expect(await stats()).toMatchObject({ sessions: 1, waiting: 3 });

    await evictDurableObject(shard, { webSockets: "hibernate" });
    // maxSessions 4: this shard's share is 2, so the oldest waiting session goes in, and only it.
    await setKnobs(deployment, { maxSessions: 4 });
    await waiting[0]!.until(() => waiting[0]!.results.has(0), "the oldest waiting session's result");
    expect(waiting[1]!.results.has(0)).toBe(false);
    expect(waiting[1]!.mutationResponses.has(held)).toBe(false);

    await evictDurableObject(shard, { webSockets: "hibernate" });
    await setKnobs(deployment, { maxSessions: 8 });
    for (const client of waiting) await client.until(() => client.results.has(0), "every waiting session's result");
    await waiting[1]!.until(() => waiting[1]!.mutationResponses.has(held), "the held mutation's response");
    expect(waiting[1]!.mutationResponses.get(held)).toMatchObject({ success: true });
    for (const client of [first, ...waiting]) {
      await client.until(() => bodies(client.results.get(0)).length > 0, "the held message");
      expect(bodies(client.results.get(0)).filter((body) => body === "held across the shard's sleep")).toHaveLength(1);
      expect(client.chainingErrors).toEqual([]);
      expect(client.closed).toBeNull();
    }
    expect(await stats()).toMatchObject({ sessions: 4, waiting: 0 });
    for (const client of [first, ...waiting]) client.close();
  });
});

describe("a flood on a shard (issue 27 item 5)", () => {
  it("one client pipelining 200 mutations delays another client on the same shard by a few of them, not all: each takes its own turn in the deployment object", async () => {
    const deployment = fresh("shard-flood");
    await setKnobs(deployment, { syncShards: 2 });
    const shard = bindings.SYNC_SHARDS.getByName(`${deployment}/shard-0`) as unknown as Fetcher;
    const quiet = await ProtocolClient.open(deployment, crypto.randomUUID(), shard);
    expect(await quiet.mutation("messages:send", { chatId: "quiet", author: "quiet", body: "warm" })).toMatchObject({ success: true });
    const flooder = await ProtocolClient.open(deployment, crypto.randomUUID(), shard);
    // Within the default burst (sessionFrameBurst 200 with Connect): every one is relayed up at once.
    const flood = Array.from({ length: 199 }, (_, i) => flooder.mutate("messages:send", { chatId: "flood", author: "flood", body: `flood-${i}` }));
    await flooder.until(() => flooder.mutationResponses.size > 0, "the flood's first answer", 10_000);
    const id = quiet.mutate("messages:send", { chatId: "quiet", author: "quiet", body: "during the flood" });
    await quiet.until(() => quiet.mutationResponses.has(id), "the quiet mutation's answer", 30_000);
    const floodAnsweredBefore = flooder.mutationResponses.size;
    expect(quiet.mutationResponses.get(id)).toMatchObject({ success: true });
    // Round-robin: a few flood mutations ran before it (those already running or relayed with it), not the 199.
    expect(floodAnsweredBefore).toBeLessThan(50);
    await flooder.until(() => flood.every((i) => flooder.mutationResponses.has(i)), "every flood mutation answered", 30_000);
    expect(flooder.closed).toBeNull();
    quiet.close();
    flooder.close();
  });
});
