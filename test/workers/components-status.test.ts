/**
 * Issue 25 item 4: the operator sees the app's component instances in
 * `/api/admin/status`: each one's path, the npm package it comes from, its
 * tables with their documents and bytes, and its jobs waiting to run. The
 * example app (convex/convex.config.ts) installs the rate limiter, the
 * sharded counter and a workpool, each with what they install themselves.
 */
import { describe, expect, it } from "vitest";
import { runInDurableObject } from "cloudflare:test";
import { SchedulingBudget, scheduleJob } from "../../src/engine/scheduling.ts";
import type { Deployment } from "../../src/deployment/deployment.ts";
import type { ComponentStatus } from "../../src/deployment/component-status.ts";
import { admin, bindings, fresh, setKnobs, worker } from "./helpers.ts";

const fn = (path: string, args: unknown) => JSON.stringify({ path, format: "convex_encoded_json", args: [args] });

async function mutation(deployment: string, path: string, args: unknown): Promise<unknown> {
  const response = await worker.fetch(`http://t/d/${deployment}/api/mutation`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: fn(path, args),
  });
  const body = (await response.json()) as { status: string; value: unknown; errorMessage?: string };
  expect(body.errorMessage).toBeUndefined();
  return body.value;
}

async function adminStatus(deployment: string): Promise<{ components: ComponentStatus[]; tables: Record<string, unknown> }> {
  const response = await worker.fetch(`http://t/d/${deployment}/api/admin/status`, { headers: admin });
  expect(response.status).toBe(200);
  return (await response.json()) as { components: ComponentStatus[]; tables: Record<string, unknown> };
}

describe("component instances in status", () => {
  it("lists each instance with its package, its tables' documents and bytes, and its pending jobs", async () => {
    const d = fresh("components-status");
    // The rate limiter stores one bucket per key: two keys, two documents of its `rateLimits`.
    await mutation(d, "limited:send", { chatId: "c", author: "ann", body: "one" });
    await mutation(d, "limited:send", { chatId: "c", author: "ann", body: "two" });
    await mutation(d, "limited:send", { chatId: "c", author: "bob", body: "three" });
    // A job of the workpool's own, an hour ahead: pending for the whole test (written as its `ctx.scheduler` would).
    const stored = await runInDurableObject(bindings.DEPLOYMENTS.getByName(d), async (instance: Deployment, state: DurableObjectState) => {
      const engine = instance.runtime.engine;
      const pool = engine.components.at("digestPool")!;
      await engine.exclusive(async () =>
        engine.executeSystemWrite((tx) =>
          scheduleJob(
            tx,
            { components: engine.components, caller: pool },
            new SchedulingBudget(tx.limits),
            { name: "loop:main" },
            Date.now() / 1000 + 3600,
            {},
          ),
        ),
      );
      // What the documents table itself holds for the rate limiter's table, to check status's counts against.
      const rateLimits = engine.components.at("rateLimiter")!.namespace.storageName("rateLimits");
      return state.storage.sql
        .exec<{ n: number; bytes: number }>("SELECT count(*) AS n, sum(bytes) AS bytes FROM documents WHERE table_name = ?", rateLimits)
        .one();
    });
    expect(stored.n).toBe(2);

    const status = await adminStatus(d);
    const byPath = new Map(status.components.map((component) => [component.path, component]));
    expect([...byPath.keys()].sort()).toEqual(["digestPool", "digestPool/batchWorker", "rateLimiter", "rateLimiter/batchWorker", "shardedCounter"]);
    const limiter = byPath.get("rateLimiter")!;
    expect(limiter.package).toBe("@convex-dev/rate-limiter@0.4.0");
    expect(byPath.get("digestPool")!.package).toBe("@convex-dev/workpool@0.5.0");
    expect(byPath.get("shardedCounter")!.package).toBe("@convex-dev/sharded-counter@0.2.1");
    expect(byPath.get("digestPool/batchWorker")!.package).toMatch(/^@convex-dev\/batch-worker@/);
    // Tables by the names the component's code uses, counted and sized as stored, with their indexes.
    const rateLimits = limiter.tables.find((table) => table.name === "rateLimits")!;
    expect(rateLimits).toMatchObject({ documents: 2, bytes: stored.bytes, more: false });
    expect(rateLimits.bytes).toBeGreaterThan(0);
    expect(rateLimits.indexes).toContain("name");
    expect(limiter.tables.map((table) => table.name)).toContain("_scheduled_functions");
    // Nothing was counted yet: the counter's tables are listed, empty.
    expect(byPath.get("shardedCounter")!.tables.every((table) => table.documents === 0 && table.bytes === 0)).toBe(true);
    // Jobs waiting: the workpool's, none elsewhere.
    expect(byPath.get("digestPool")!.scheduledPending).toBe(1);
    expect(limiter.scheduledPending).toBe(0);
    // The app's own tables stay the app's: no component's stored name among them.
    expect(Object.keys(status.tables)).toContain("messages");
    expect(Object.keys(status.tables).filter((name) => /^_c[0-9a-f]{8}_/.test(name))).toEqual([]);
  });

  it("counts a table up to statusTableRowsCounted documents, then says there are more", async () => {
    const d = fresh("components-status-limit");
    await setKnobs(d, { statusTableRowsCounted: 1_000 });
    // 1,001 documents in the counter's `counters`, written as its own mutations would write them.
    await runInDurableObject(bindings.DEPLOYMENTS.getByName(d), async (instance: Deployment) => {
      const engine = instance.runtime.engine;
      const counters = engine.components.at("shardedCounter")!.namespace.storageName("counters");
      await engine.exclusive(async () =>
        engine.executeSystemWrite((tx) => {
          for (let shard = 0; shard < 1_001; shard++) tx.insert(counters, { name: "n", value: 1, shard });
        }),
      );
    });
    const counted = async () => (await adminStatus(d)).components.find((c) => c.path === "shardedCounter")!.tables.find((t) => t.name === "counters")!;
    expect(await counted()).toMatchObject({ documents: 1_000, more: true });
    await setKnobs(d, { statusTableRowsCounted: 2_000 });
    expect(await counted()).toMatchObject({ documents: 1_001, more: false });
  });
});
