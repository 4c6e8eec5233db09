/**
 * Scheduled functions in the Durable Object: due jobs run from the alarm,
 * once, also when the object was evicted while they were pending; canceled
 * ones never run; a subscriber sees what they write live. (Scheduling inside
 * the mutation's transaction, due order and failures are engine contract
 * cases, run here on SQLite by engine-sqlite.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import { ProtocolClient } from "./protocol-client.ts";
import { bindings, fresh } from "./helpers.ts";

type Message = { body: string; author: string };

describe("scheduled functions", () => {
  it("a job pending while the object is evicted runs once after the restart, and its subscriber sees it", async () => {
    const deployment = fresh("scheduled");
    const api = deploymentStub(bindings, deployment);
    const watcher = await ProtocolClient.open(deployment);
    watcher.add(0, "messages:list", { chatId: "later" });
    await watcher.until(() => watcher.results.has(0), "first result");
    const scheduled = (await api.run("mutation", "messages:sendLater", { chatId: "later", author: "ann", body: "from the past", delayMs: 0 }, "t")) as {
      status: string;
      value: string;
    };
    expect(scheduled.status).toBe("success");
    expect(scheduled.value).toMatch(/_scheduled_functions$/);

    const stub = bindings.DEPLOYMENTS.getByName(deployment);
    await evictDurableObject(stub, { webSockets: "hibernate" });
    await runDurableObjectAlarm(stub); // may find the alarm already fired: either way the job ran once
    await watcher.until(() => ((watcher.results.get(0) as Message[]) ?? []).length === 1, "the scheduled message");
    // Alarms again, and after another eviction: nothing runs twice.
    await runDurableObjectAlarm(stub);
    await evictDurableObject(stub, { webSockets: "hibernate" });
    await runDurableObjectAlarm(stub);
    const list = (await api.run("query", "messages:list", { chatId: "later" }, "t")) as unknown as { value: Message[] };
    expect(list.value.map((m) => m.body)).toEqual(["from the past"]);
    watcher.close();
  });

  it("a canceled job never runs, and clients cannot call the internal target", async () => {
    const deployment = fresh("cancel");
    const api = deploymentStub(bindings, deployment);
    const job = (await api.run("mutation", "messages:sendLater", { chatId: "c", author: "ann", body: "never", delayMs: 60_000 }, "t")) as { value: string };
    await api.run("mutation", "messages:cancelLater", { id: job.value }, "t");
    const direct = (await api.run("mutation", "messages:deliver", { chatId: "c", author: "ann", body: "direct" }, "t")) as {
      status: string;
      errorMessage: string;
    };
    expect(direct).toMatchObject({ status: "error", errorMessage: expect.stringMatching(/Could not find public function for 'messages:deliver'/) });
    const stub = bindings.DEPLOYMENTS.getByName(deployment);
    await runDurableObjectAlarm(stub);
    const list = (await api.run("query", "messages:list", { chatId: "c" }, "t")) as unknown as { value: Message[] };
    expect(list.value).toEqual([]);
  });
});
