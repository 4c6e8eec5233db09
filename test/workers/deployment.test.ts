import { describe, expect, it } from "vitest";
import { abortAllDurableObjects, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import type { Deployment } from "../../src/deployment/deployment.ts";
import { bindings, fresh } from "./helpers.ts";

describe("deployment object", () => {
  it("keeps commit timestamps strictly increasing across eviction and hard reset", async () => {
    const name = fresh("ts");
    const namespace = bindings.DEPLOYMENTS;
    const lastTs = () => runInDurableObject(namespace.getByName(name), (instance) => (instance as unknown as Deployment).runtime.store.lastTimestamp());
    const send = (body: string) => deploymentStub(bindings, name).run("mutation", "messages:send", { chatId: "c", author: "a", body }, "test");

    const seen: bigint[] = [];
    for (let round = 0; round < 3; round++) {
      await send(`before-${round}`);
      seen.push(await lastTs());
      await evictDurableObject(namespace.getByName(name));
      await send(`after-evict-${round}`);
      seen.push(await lastTs());
      await abortAllDurableObjects();
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]! > seen[i - 1]!, `ts #${i} ${seen[i]} > ${seen[i - 1]}`).toBe(true);

    // The wall clock alone would also increase; put the stored timestamp a century
    // ahead so only a timestamp reloaded from storage can stay ahead of it.
    const future = 4_102_444_800_000_000_000n; // 2100-01-01 in ns
    await runInDurableObject(namespace.getByName(name), (_i, state) => {
      state.storage.sql.exec("UPDATE meta SET value = ? WHERE key = 'last_ts'", future.toString());
    });
    await evictDurableObject(namespace.getByName(name));
    await send("after-future");
    expect(await lastTs()).toBe(future + 1n);
    await abortAllDurableObjects();
    await send("after-future-reset");
    expect(await lastTs()).toBe(future + 2n);

    const status = await deploymentStub(bindings, name).status();
    expect(status.commits).toBe(8);
    expect(status.documents).toBe(8);
    const listed = await deploymentStub(bindings, name).run("query", "messages:list", { chatId: "c" }, "test");
    expect(listed.status).toBe("success");
    expect((listed as unknown as { value: { body: string }[] }).value.map((m) => m.body)).toEqual([
      "after-future-reset",
      "after-future",
      "after-evict-2",
      "before-2",
      "after-evict-1",
      "before-1",
      "after-evict-0",
      "before-0",
    ]);
  });

  it("a throwing mutation leaves no rows in storage", async () => {
    const name = fresh("throw");
    const stub = deploymentStub(bindings, name);
    await stub.run("mutation", "messages:send", { chatId: "c", author: "a", body: "ok" }, "test");
    const bad = await stub.run("mutation", "messages:send", { chatId: "c", author: "a", body: 42 }, "test");
    expect(bad).toMatchObject({ status: "error", errorMessage: expect.stringMatching(/Path: \.body\nValue: 42/) });
    const rows = await runInDurableObject(bindings.DEPLOYMENTS.getByName(name), (_i, state) => ({
      documents: state.storage.sql.exec("SELECT count(*) AS n FROM documents").one().n,
      entries: state.storage.sql.exec("SELECT count(*) AS n FROM index_entries").one().n,
    }));
    // One document, indexed by by_id, by_creation_time and by_chat.
    expect(rows).toEqual({ documents: 1, entries: 3 });
  });
});
