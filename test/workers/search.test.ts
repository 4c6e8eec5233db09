import { describe, expect, it } from "vitest";
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import { ProtocolClient } from "./protocol-client.ts";
import { admin, bindings, fresh, worker } from "./helpers.ts";

async function send(deployment: string, chatId: string, body: string): Promise<string> {
  const result = await deploymentStub(bindings, deployment).run("mutation", "messages:send", { chatId, author: "a", body }, "t");
  if (result.status !== "success") throw new Error(JSON.stringify(result));
  return result.value as string;
}

async function compact(deployment: string): Promise<{ compacted: number }> {
  const response = await worker.fetch(`http://t/d/${deployment}/api/admin/compact`, { method: "POST", headers: admin });
  expect(response.status).toBe(200);
  return (await response.json()) as { compacted: number };
}

const status = (deployment: string) => deploymentStub(bindings, deployment).status();

const CHATS = Array.from({ length: 8 }, (_, i) => `chat${i}`);
const WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "honey", "iris", "juniper"];

describe("search maintenance is invisible to subscribers", () => {
  it("compactions and evictions invalidate nothing; one relevant write re-runs exactly the affected searches", async () => {
    const deployment = fresh("quiet");
    for (const [c, chat] of CHATS.entries()) {
      for (let i = 0; i < 12; i++) await send(deployment, chat, `${WORDS[(c + i) % WORDS.length]} and ${WORDS[(c * 3 + i) % WORDS.length]} talk ${i}`);
    }
    // Hundreds of subscriptions: 4 sockets x 60 searches over every chat, exact words and prefixes.
    const subscriptions: { client: number; queryId: number; chat: string; query: string }[] = [];
    const clients = await Promise.all([0, 1, 2, 3].map(() => ProtocolClient.open(deployment)));
    for (const [n, client] of clients.entries()) {
      const adds = [];
      for (let q = 0; q < 60; q++) {
        const chat = CHATS[(n * 7 + q) % CHATS.length]!;
        const word = WORDS[(n + q * 3) % WORDS.length]!;
        const query = q % 3 === 0 ? word.slice(0, 3) : `${word} ${WORDS[(q + 1) % WORDS.length]}`;
        subscriptions.push({ client: n, queryId: q, chat, query });
        adds.push({ type: "Add", queryId: q, udfPath: "messages:search", args: [{ chatId: chat, query }] });
      }
      client.modify(adds);
    }
    for (const client of clients) await client.until(() => client.results.size === 60, "every first result");
    const transitionsSeen = () => clients.map((c) => c.messages.filter((m) => m.type === "Transition").length);
    const baselineTransitions = transitionsSeen();
    const baseline = await status(deployment);
    expect(baseline.subscriptions).toBe(240);

    let compactions = 0;
    for (let round = 0; round < 4; round++) {
      // Writes into watched partitions with words nobody searches for: logs grow, nothing matches.
      for (const chat of CHATS) await send(deployment, chat, `zzfiller${round} qqunrelated`);
      compactions += (await compact(deployment)).compacted;
      const now = await status(deployment);
      if (round === 0) {
        expect(now.invalidations - baseline.invalidations).toBe(0);
        expect(now.queryExecutions - baseline.queryExecutions).toBe(0);
        expect(now.transitionsSent - baseline.transitionsSent).toBe(0);
      } else {
        // Counters restart with each wake; since the last eviction nothing may have re-run.
        expect(now).toMatchObject({ invalidations: 0, queryExecutions: 0, transitionsSent: 0 });
      }
      await evictDurableObject(bindings.DEPLOYMENTS.getByName(deployment), { webSockets: "hibernate" });
    }
    expect(compactions).toBe(CHATS.length * 4);
    // Each socket's barrier Transition is the only one since the baseline.
    for (const client of clients) await client.barrier();
    expect(transitionsSeen()).toEqual(baselineTransitions.map((n) => n + 1));
    const afterMaintenance = await status(deployment);
    // Since the last wake: nothing re-ran; the only Transitions are the four barriers'.
    expect(afterMaintenance).toMatchObject({ invalidations: 0, queryExecutions: 0, transitionsSent: clients.length, subscriptions: 240 });

    // An irrelevant write re-runs nothing.
    await send(deployment, "chat3", "qqunrelated zzfiller");
    expect((await status(deployment)).invalidations).toBe(0);

    // A relevant write re-runs exactly the searches over chat3 whose terms or prefix it contains.
    const body = "grape harvest";
    const terms = ["grape", "harvest"];
    const affected = new Set(
      subscriptions
        .filter((s) => s.chat === "chat3")
        .filter((s) => {
          const words = s.query.split(" ");
          const last = words.at(-1)!;
          return words.slice(0, -1).some((w) => terms.includes(w)) || terms.some((t) => t.startsWith(last));
        })
        .map((s) => `${s.chat}|${s.query}`),
    );
    expect(affected.size).toBeGreaterThan(0);
    await send(deployment, "chat3", body);
    const clientsToUpdate = new Set(subscriptions.filter((s) => affected.has(`${s.chat}|${s.query}`)).map((s) => s.client));
    for (const n of clientsToUpdate) {
      const client = clients[n]!;
      await client.until(
        () =>
          subscriptions
            .filter((s) => s.client === n && affected.has(`${s.chat}|${s.query}`))
            .every((s) => (client.results.get(s.queryId) as { body: string }[]).some((m) => m.body === body)),
        "updated search results",
      );
    }
    const final = await status(deployment);
    expect(final.invalidations).toBe(affected.size); // one shared run per distinct (function, args)
    for (const client of clients) {
      expect(client.chainingErrors).toEqual([]);
      client.close();
    }
  });
});

describe("search persistence", () => {
  it("comes back after eviction from snapshot + log, and keeps rows under the chunk limit", async () => {
    const deployment = fresh("persist");
    const stub = bindings.DEPLOYMENTS.getByName(deployment);
    const patch = await worker.fetch(`http://t/d/${deployment}/api/admin/knobs`, {
      method: "PATCH",
      headers: { ...admin, "Content-Type": "application/json" },
      body: JSON.stringify({ searchSnapshotChunkBytes: 65_536 }),
    });
    expect(patch.status).toBe(200);
    // Distinct terms make the snapshot large: several 64 KiB chunks.
    const distinct = (i: number) => Array.from({ length: 10 }, (_, k) => `term${i}x${k}`).join(" ");
    for (let i = 0; i < 300; i++) await send(deployment, "big", `message ${i} about ${WORDS[i % WORDS.length]} ${distinct(i)}`);
    await compact(deployment);
    for (let i = 0; i < 5; i++) await send(deployment, "big", `after the snapshot honey ${i}`);
    const search = async () => deploymentStub(bindings, deployment).run("query", "messages:search", { chatId: "big", query: "honey" }, "t");
    const before = await search();
    await evictDurableObject(stub);
    const after = await search();
    expect(after).toEqual(before);
    expect((after as unknown as { value: { body: string }[] }).value.filter((m) => m.body.startsWith("after the snapshot"))).toHaveLength(5);
    const rows = await runInDurableObject(stub, (_i, state) => ({
      chunks: state.storage.sql
        .exec<{ n: number; largest: number }>("SELECT count(*) AS n, max(length(CAST(data AS BLOB))) AS largest FROM search_chunks")
        .one(),
      log: state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM search_log").one().n,
    }));
    expect(rows.chunks.n).toBeGreaterThan(1);
    expect(rows.chunks.largest).toBeLessThanOrEqual(65_536);
    expect(rows.log).toBe(5);
    expect(await status(deployment)).toMatchObject({ searchPartitionsLoaded: 1, searchPartitionRebuilds: 0 });
  });

  it("compacts from the alarm once a log passes its threshold, and that is not a commit", async () => {
    const deployment = fresh("alarm");
    const stub = bindings.DEPLOYMENTS.getByName(deployment);
    await worker.fetch(`http://t/d/${deployment}/api/admin/knobs`, {
      method: "PATCH",
      headers: { ...admin, "Content-Type": "application/json" },
      body: JSON.stringify({ searchCompactLogEntries: 5 }),
    });
    const watcher = await ProtocolClient.open(deployment);
    watcher.add(0, "messages:search", { chatId: "c", query: "hello" });
    await watcher.until(() => watcher.results.has(0), "first result");
    for (let i = 0; i < 6; i++) await send(deployment, "c", `filler ${i}`);
    const before = await status(deployment);
    expect(before.compactions).toBe(0);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const after = await status(deployment);
    expect(after.compactions).toBe(1);
    expect(after.commits).toBe(before.commits);
    expect(after.invalidations).toBe(before.invalidations);
    expect(after.transitionsSent).toBe(before.transitionsSent);
    watcher.close();
  });
});

describe("indexes added to existing data", () => {
  it("are backfilled from the documents on start: index queries and searches find older documents", async () => {
    const deployment = fresh("backfill");
    const stub = bindings.DEPLOYMENTS.getByName(deployment);
    await send(deployment, "new", "written with every index in place");
    // Simulate data from before the by_chat and search_body indexes existed: a document
    // with no index entries and no search log, and no record of those index definitions.
    await runInDurableObject(stub, (_i, state) => {
      const legacy = { _id: "0legacy0legacy0legacy0lega", _creationTime: 1_700_000_000_000, chatId: "old", author: "z", body: "legacy hello from the past" };
      state.storage.sql.exec("INSERT INTO documents (id, table_name, json) VALUES (?, 'messages', ?)", legacy._id, JSON.stringify(legacy));
      const recorded = JSON.parse(state.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'index_definitions'").one().value);
      delete recorded["messages.by_chat"];
      delete recorded["messages.search_body"];
      delete recorded["messages.by_id"];
      state.storage.sql.exec("UPDATE meta SET value = ? WHERE key = 'index_definitions'", JSON.stringify(recorded));
    });
    const before = await deploymentStub(bindings, deployment).run("query", "messages:list", { chatId: "old" }, "t");
    expect(before).toMatchObject({ status: "success", value: [] });

    await evictDurableObject(stub);
    const api = deploymentStub(bindings, deployment);
    const listed = await api.run("query", "messages:list", { chatId: "old" }, "t");
    expect((listed as unknown as { value: { body: string }[] }).value.map((m) => m.body)).toEqual(["legacy hello from the past"]);
    const found = await api.run("query", "messages:search", { chatId: "old", query: "legacy" }, "t");
    expect((found as unknown as { value: { body: string }[] }).value.map((m) => m.body)).toEqual(["legacy hello from the past"]);
    const got = await api.run("query", "messages:search", { chatId: "new", query: "written" }, "t");
    expect(got).toMatchObject({ status: "success", value: [{ body: "written with every index in place" }] }); // the rest is untouched
  });
});
