import { describe, expect, it } from "vitest";
import { evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { ProtocolClient } from "./protocol-client.ts";
import { bindings, fresh, setKnobs, status, worker } from "./helpers.ts";
import { deploymentStub } from "../../src/deployment/deployment.ts";

/** A client watching chat "a" (query 0); resolves once its socket is open (admitted or waiting). */
async function watcher(deployment: string): Promise<ProtocolClient> {
  const client = await ProtocolClient.open(deployment);
  client.add(0, "messages:list", { chatId: "a" });
  return client;
}

describe("a waiting room instead of a slammed door", () => {
  it("holds sessions past maxSessions (no result, mutations wait) and lets them in, in arrival order, as room frees", async () => {
    const deployment = fresh("waiting");
    await setKnobs(deployment, { maxSessions: 2 });
    const admitted = [await watcher(deployment), await watcher(deployment)];
    for (const client of admitted) await client.until(() => client.results.has(0), "an admitted session's result");
    const waiting = [await watcher(deployment), await watcher(deployment)];
    const held = waiting[1]!.mutate("messages:send", { chatId: "a", author: "w", body: "sent while waiting" });
    // Served sessions go on meanwhile; the waiting ones got nothing but the open socket.
    await admitted[0]!.barrier();
    expect((await status(deployment)).limits).toMatchObject({ sessions: { current: 2, limit: 2 }, waiting: { current: 2 } });
    for (const client of waiting) {
      expect(client.messages.filter((m) => m.type !== "Ping")).toEqual([]);
      expect(client.closed).toBeNull();
    }

    // Room for one more: the first to arrive goes in.
    await setKnobs(deployment, { maxSessions: 3 });
    await waiting[0]!.until(() => waiting[0]!.results.has(0), "the first waiting session's result");
    expect(waiting[1]!.messages.filter((m) => m.type !== "Ping")).toEqual([]);
    // A close frees room too.
    admitted[0]!.close();
    await waiting[1]!.until(() => waiting[1]!.mutationResponses.has(held), "the held mutation's response");
    expect(waiting[1]!.mutationResponses.get(held)).toMatchObject({ success: true });
    await waiting[1]!.until(() => (waiting[1]!.results.get(0) as { body: string }[] | undefined)?.[0]?.body === "sent while waiting", "its own write");
    for (const client of [...admitted, ...waiting]) expect(client.chainingErrors).toEqual([]);
    expect((await status(deployment)).limits.waiting.current).toBe(0);
    for (const client of [...admitted, ...waiting]) client.close();
  });

  it("refuses with 429 beyond maxWaitingSessions", async () => {
    const deployment = fresh("waiting-full");
    await setKnobs(deployment, { maxSessions: 1, maxWaitingSessions: 1 });
    const clients = [await watcher(deployment), await watcher(deployment)];
    const refused = await worker.fetch(`http://t/d/${deployment}/api/1.49.0/sync`, { headers: { Upgrade: "websocket" } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("Retry-After")).toMatch(/^\d+$/);
    expect(await refused.json()).toMatchObject({ code: "TooManySessions" });
    for (const client of clients) client.close();
  });

  it("tells a session that waited too long to come back later, with the overload close and a retry hint", async () => {
    const deployment = fresh("waiting-timeout");
    await setKnobs(deployment, { maxSessions: 1, waitingTimeoutMs: 1_000 });
    const first = await watcher(deployment);
    const late = await watcher(deployment);
    // The wait passes on the object's clock (no sleep), then its alarm (the waiting room's turn) runs now.
    await runDurableObjectAlarm(bindings.DEPLOYMENTS.getByName(deployment));
    expect(late.closed).toBeNull();
    await deploymentStub(bindings, deployment).advanceClock(1_100);
    await runDurableObjectAlarm(bindings.DEPLOYMENTS.getByName(deployment));
    await late.until(() => late.closed !== null, "the close");
    expect(late.closed).toMatchObject({
      code: 1013,
      reason: expect.stringMatching(/^SubscriptionsWorkerFullError: waited 1000 ms for room; retry in \d+ ms$/),
    });
    expect(first.closed).toBeNull();
    first.close();
  });

  it("after a wake with nobody asking first, raising the cap serves every waiting session in arrival order, its held mutation applied once", async () => {
    const deployment = fresh("waiting-wake");
    await setKnobs(deployment, { maxSessions: 1 });
    const first = await watcher(deployment);
    await first.until(() => first.results.has(0), "first result");
    const waiting = [await watcher(deployment), await watcher(deployment), await watcher(deployment)];
    const held = waiting[1]!.mutate("messages:send", { chatId: "a", author: "w", body: "held across the wake" });
    // Let the mutation frame reach the object before it hibernates (a round trip on another socket).
    await first.barrier();
    await evictDurableObject(bindings.DEPLOYMENTS.getByName(deployment), { webSockets: "hibernate" });
    // The wake is the knob change itself: nothing else has loaded the sessions' query sets first.
    await setKnobs(deployment, { maxSessions: 2 });
    await waiting[0]!.until(() => waiting[0]!.results.has(0), "the oldest waiting session's result");
    expect(waiting[1]!.results.has(0)).toBe(false);
    expect(waiting[1]!.mutationResponses.has(held)).toBe(false);
    await evictDurableObject(bindings.DEPLOYMENTS.getByName(deployment), { webSockets: "hibernate" });
    await setKnobs(deployment, { maxSessions: 4 });
    for (const client of waiting) await client.until(() => client.results.has(0), "every waiting session's result");
    await waiting[1]!.until(() => waiting[1]!.mutationResponses.has(held), "the held mutation's response");
    expect(waiting[1]!.mutationResponses.get(held)).toMatchObject({ success: true });
    for (const client of [first, ...waiting]) {
      await client.until(() => ((client.results.get(0) as { body: string }[] | undefined) ?? []).length > 0, "the held message");
      expect((client.results.get(0) as { body: string }[]).filter((m) => m.body === "held across the wake")).toHaveLength(1);
      expect(client.chainingErrors).toEqual([]);
      expect(client.closed).toBeNull();
      client.close();
    }
  });

  it("keeps waiting sessions, in order, across hibernation: nothing lost, nobody admitted twice", async () => {
    const deployment = fresh("waiting-evict");
    await setKnobs(deployment, { maxSessions: 1 });
    const first = await watcher(deployment);
    await first.until(() => first.results.has(0), "first result");
    const waiting = [await watcher(deployment), await watcher(deployment), await watcher(deployment)];
    await evictDurableObject(bindings.DEPLOYMENTS.getByName(deployment), { webSockets: "hibernate" });
    expect((await status(deployment)).limits).toMatchObject({ sessions: { current: 1 }, waiting: { current: 3 } });
    await setKnobs(deployment, { maxSessions: 3 });
    await waiting[0]!.until(() => waiting[0]!.results.has(0), "the oldest waiting session's result");
    await waiting[1]!.until(() => waiting[1]!.results.has(0), "the next one's result");
    expect(waiting[2]!.results.has(0)).toBe(false);
    expect((await status(deployment)).limits).toMatchObject({ sessions: { current: 3 }, waiting: { current: 1 } });
    await setKnobs(deployment, { maxSessions: 4 });
    await waiting[2]!.until(() => waiting[2]!.results.has(0), "the last one's result");
    for (const client of [first, ...waiting]) {
      expect(client.messages.filter((m) => m.type === "Transition").length).toBe(1);
      expect(client.chainingErrors).toEqual([]);
      client.close();
    }
  });
});
