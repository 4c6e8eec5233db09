import { describe, expect, it } from "vitest";
import { evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { encodeTs } from "../../src/protocol/sync.ts";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import { ProtocolClient } from "./protocol-client.ts";
import { bindings, fresh, status } from "./helpers.ts";
type Message = { body: string; chatId: string };
const bodies = (value: unknown) => (value as Message[]).map((m) => m.body);

describe("live sync over hibernatable WebSockets", () => {
  it("keeps subscriptions working after the object is evicted (sockets hibernate)", async () => {
    const deployment = fresh("evict");
    const watcher = await ProtocolClient.open(deployment);
    const writer = await ProtocolClient.open(deployment);
    watcher.add(0, "messages:list", { chatId: "a" });
    await watcher.until(() => watcher.results.has(0), "first result");
    await writer.mutation("messages:send", { chatId: "a", author: "w", body: "before" });
    await watcher.until(() => bodies(watcher.results.get(0))[0] === "before", "update before eviction");

    await evictDurableObject(bindings.DEPLOYMENTS.getByName(deployment), { webSockets: "hibernate" });
    // Waking rebuilds from storage and attachments: nothing re-runs, nothing is sent.
    const afterWake = await status(deployment);
    expect(afterWake).toMatchObject({ sessions: 2, subscriptions: 1, queryInstances: 1, invalidations: 0, transitionsSent: 0, queryExecutions: 0 });

    await writer.mutation("messages:send", { chatId: "a", author: "w", body: "after" });
    await watcher.until(() => bodies(watcher.results.get(0))[0] === "after", "update after eviction");
    expect(bodies(watcher.results.get(0))).toEqual(["after", "before"]);
    // A write elsewhere after the wake still reaches nobody.
    await writer.mutation("messages:send", { chatId: "b", author: "w", body: "elsewhere" });
    const final = await status(deployment);
    expect(final.invalidations).toBe(1);
    expect(watcher.chainingErrors).toEqual([]);
    expect(writer.chainingErrors).toEqual([]);
    watcher.close();
    writer.close();
  });

  it("applies a re-sent mutation once and answers the original result and ts", async () => {
    const deployment = fresh("idempotent");
    const sessionId = crypto.randomUUID();
    const first = await ProtocolClient.open(deployment, sessionId);
    first.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] });
    first.mutate("messages:send", { chatId: "a", author: "x", body: "once" }, 7);
    await first.until(() => first.mutationResponses.has(7), "first response");
    const original = first.mutationResponses.get(7)!;
    expect(original.success).toBe(true);
    first.close();

    // The reconnecting client re-sends the same (sessionId, requestId).
    const second = await ProtocolClient.open(deployment, sessionId);
    second.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] });
    second.mutate("messages:send", { chatId: "a", author: "x", body: "once" }, 7);
    await second.until(() => second.mutationResponses.has(7), "replayed response");
    const replay = second.mutationResponses.get(7)!;
    expect(replay.result).toBe(original.result);
    expect(replay.ts).toBe(original.ts);
    const s = await status(deployment);
    expect(s).toMatchObject({ commits: 1, documents: 1, mutationExecutions: 1 });
    // Another session with the same request id is a different request.
    const other = await ProtocolClient.open(deployment);
    other.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] });
    await other.mutation("messages:send", { chatId: "a", author: "y", body: "other" });
    expect((await status(deployment)).documents).toBe(2);
    second.close();
    other.close();
  });

  it("chains versions exactly over many modifications, mutations and removals", async () => {
    const deployment = fresh("chain");
    const client = await ProtocolClient.open(deployment);
    const writer = await ProtocolClient.open(deployment);
    writer.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] });
    writer.querySetVersion = 1;
    for (let round = 0; round < 40; round++) {
      client.add(round, "messages:list", { chatId: `c${round % 5}` });
      if (round % 3 === 0) await writer.mutation("messages:send", { chatId: `c${round % 5}`, author: "w", body: `m${round}` });
      if (round % 4 === 3) client.remove(round - 2);
      if (round % 7 === 0) await client.mutation("messages:send", { chatId: `c${(round + 1) % 5}`, author: "c", body: `own${round}` });
    }
    await client.until(() => client.version.querySet === client.querySetVersion, "all query set versions acknowledged");
    expect(client.chainingErrors).toEqual([]);
    expect(writer.chainingErrors).toEqual([]);
    // Every live query ends with the same result as a fresh query at the end.
    for (const [queryId, value] of client.results) {
      const chat = `c${queryId % 5}`;
      const fresh = await deploymentStub(bindings, deployment).run("query", "messages:list", { chatId: chat }, "t");
      expect(value, `query ${queryId}`).toEqual((fresh as { value: unknown }).value);
    }
    client.close();
    writer.close();
  });

  it("re-runs only what a write touched and sends only results that changed", async () => {
    const deployment = fresh("unchanged");
    const api = deploymentStub(bindings, deployment);
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) {
      const sent = await api.run("mutation", "messages:send", { chatId: "a", author: i % 2 ? "bob" : "ann", body: `m${i}` }, "t");
      ids.push((sent as { value: string }).value);
    }
    const watcher = await ProtocolClient.open(deployment);
    watcher.modify([
      { type: "Add", queryId: 0, udfPath: "messages:list", args: [{ chatId: "a" }] },
      { type: "Add", queryId: 1, udfPath: "messages:participants", args: [{ chatId: "a" }] },
    ]);
    await watcher.until(() => watcher.results.has(0) && watcher.results.has(1), "first results");
    expect(watcher.results.get(1)).toEqual(["ann", "bob"]);
    const transitions = () => watcher.messages.filter((m) => m.type === "Transition");
    const barrier = async (body: string) => {
      // A write every watcher query reads, to order the check after the writes before it.
      await api.run("mutation", "messages:send", { chatId: "a", author: "ann", body }, "t");
      await watcher.until(() => bodies(watcher.results.get(0))[0] === body, body);
    };

    // The oldest message is outside both clipped read-sets (newest 20): nothing re-runs.
    let before = await status(deployment);
    let seen = transitions().length;
    await api.run("mutation", "messages:edit", { id: ids[0]!, body: "old, edited" }, "t");
    await barrier("barrier-1");
    let after = await status(deployment);
    expect(after.invalidations - before.invalidations).toBe(2); // the barrier's two re-runs only
    expect(transitions().length - seen).toBe(1);

    // Editing the newest message re-runs both; only list's result changed.
    before = after;
    seen = transitions().length;
    await api.run("mutation", "messages:edit", { id: ids[24]!, body: "edited" }, "t");
    await watcher.until(() => transitions().length > seen, "transition for the edit");
    after = await status(deployment);
    expect(after.invalidations - before.invalidations).toBe(2);
    const edit = transitions().at(-1)!.modifications as { queryId: number }[];
    expect(edit.map((m) => m.queryId)).toEqual([0]);

    // The same edit again writes nothing: no commit, no re-run, no transition.
    before = await status(deployment);
    seen = transitions().length;
    await api.run("mutation", "messages:edit", { id: ids[24]!, body: "edited" }, "t");
    await barrier("barrier-2");
    after = await status(deployment);
    expect(after.commits - before.commits).toBe(1); // the barrier
    expect(after.invalidations - before.invalidations).toBe(2);
    expect(transitions().length - seen).toBe(1);
    expect(watcher.chainingErrors).toEqual([]);
    watcher.close();
  });
});

describe("timestamps and liveness", () => {
  it("moves its clock past a client's maxObservedTimestamp and refuses absurd ones", async () => {
    const deployment = fresh("observed");
    const api = deploymentStub(bindings, deployment);
    await api.run("mutation", "messages:send", { chatId: "a", author: "x", body: "1" }, "t");
    // A client that saw a timestamp 10 s past ours (e.g. before our storage was reset).
    const ahead = BigInt(Date.now() + 10_000) * 1_000_000n;
    const client = await ProtocolClient.openRaw(deployment);
    client.send({
      type: "Connect",
      sessionId: crypto.randomUUID(),
      connectionCount: 1,
      lastCloseReason: null,
      maxObservedTimestamp: encodeTs(ahead),
      clientTs: 0,
    });
    client.add(0, "messages:list", { chatId: "a" });
    await client.until(() => client.results.has(0), "first result");
    expect(client.ts >= ahead).toBe(true);
    const sent = await client.mutation("messages:send", { chatId: "a", author: "x", body: "2" });
    expect(sent.success).toBe(true);
    expect(client.ts > ahead).toBe(true);
    expect((await status(deployment)).invalidations).toBe(1); // the clock move invalidated nothing; the send did

    const absurd = await ProtocolClient.openRaw(deployment);
    absurd.send({
      type: "Connect",
      sessionId: crypto.randomUUID(),
      connectionCount: 1,
      lastCloseReason: null,
      maxObservedTimestamp: encodeTs(2n ** 63n),
      clientTs: 0,
    });
    await absurd.until(() => absurd.closed !== null, "close");
    expect(absurd.closed).toMatchObject({ code: 1011, reason: expect.stringMatching(/^InternalServerError/) });
    expect(absurd.messages.some((m) => m.type === "FatalError")).toBe(false);
    client.close();
  });

  it("pings idle sessions from the alarm, also after hibernation", async () => {
    const deployment = fresh("ping");
    const client = await ProtocolClient.open(deployment);
    client.add(0, "messages:list", { chatId: "a" });
    await client.until(() => client.results.has(0), "first result");
    const stub = bindings.DEPLOYMENTS.getByName(deployment);
    // Just served: not idle yet, so the alarm sends nothing.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await client.barrier();
    expect(client.messages.filter((m) => m.type === "Ping")).toHaveLength(0);
    // After a wake nothing is known about idleness: the next alarm pings.
    await evictDurableObject(stub, { webSockets: "hibernate" });
    await runDurableObjectAlarm(stub);
    await client.until(() => client.messages.some((m) => m.type === "Ping"), "a Ping");
    client.close();
  });
});

describe("bad input on a socket", () => {
  const cases: [string, (c: ProtocolClient) => void, RegExp][] = [
    ["a frame that is not JSON", (c) => c.send("{nope"), /not valid JSON/],
    ["an unknown message type", (c) => c.send({ type: "Teleport" }), /Unknown message type "Teleport"/],
    [
      "a version that does not chain",
      (c) => c.send({ type: "ModifyQuerySet", baseVersion: 5, newVersion: 6, modifications: [] }),
      /baseVersion 5 does not match/,
    ],
    ["an oversized frame", (c) => c.send({ type: "Event", eventType: "x", event: "y".repeat(1_100_000) }), /larger than the 1048576-byte limit/],
    ["a binary frame", (c) => c.ws.send(new Uint8Array([1, 2, 3])), /Binary frames/],
  ];

  for (const [name, misbehave, message] of cases) {
    it(`${name}: FatalError and close for that socket only`, async () => {
      const deployment = fresh("bad");
      const good = await ProtocolClient.open(deployment);
      good.add(0, "messages:list", { chatId: "a" });
      await good.until(() => good.results.has(0), "good client's first result");
      const bad = await ProtocolClient.open(deployment);
      misbehave(bad);
      await bad.until(() => bad.closed !== null, "the bad socket to close");
      const fatal = bad.messages.find((m) => m.type === "FatalError");
      expect(fatal?.error).toMatch(message);
      expect(bad.closed?.code).toBe(1008);

      // The other session goes on.
      const writer = await ProtocolClient.open(deployment);
      writer.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] });
      await writer.mutation("messages:send", { chatId: "a", author: "w", body: "still here" });
      await good.until(() => bodies(good.results.get(0))[0] === "still here", "good client's update");
      expect(good.closed).toBeNull();
      expect((await status(deployment)).protocolErrors).toBe(1);
      good.close();
      writer.close();
    });
  }

  it("answers unknown actions and a refused token with clear failures, not fatal errors", async () => {
    const deployment = fresh("unsupported");
    const client = await ProtocolClient.open(deployment);
    client.send({ type: "Action", requestId: 1, udfPath: "messages:doThing", args: [{}] });
    await client.until(() => client.messages.some((m) => m.type === "ActionResponse"), "action response");
    expect(client.messages.find((m) => m.type === "ActionResponse")).toMatchObject({
      success: false,
      result: expect.stringMatching(/Could not find public function for 'messages:doThing'/),
    });
    client.send({ type: "Authenticate", tokenType: "None", baseVersion: 0 });
    client.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] });
    await client.until(() => client.version.identity === 1 && client.version.querySet === 1, "identity confirmed");
    client.send({ type: "Authenticate", tokenType: "User", value: "jwt", baseVersion: 1 });
    await client.until(() => client.closed !== null, "close after AuthError");
    expect(client.messages.find((m) => m.type === "AuthError")).toMatchObject({
      error: expect.stringMatching(/not a JWT/),
      baseVersion: 1,
      authUpdateAttempted: true,
    });
    expect(client.messages.some((m) => m.type === "FatalError")).toBe(false);
  });
});
