/**
 * Actions and scheduled actions in the Durable Object: an action runs outside
 * the function lock (a slow one delays no mutation and no Transition), calls
 * queries and mutations each in its own transaction, answers over the socket
 * (`ActionResponse`) and over HTTP (`/api/action`); a scheduled action writes
 * a reply in chunks that a subscriber sees grow.
 */
import { describe, expect, it } from "vitest";
import { runDurableObjectAlarm } from "cloudflare:test";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import { ProtocolClient } from "./protocol-client.ts";
import { bindings, fresh, worker } from "./helpers.ts";

type Message = { _id: string; body: string; author: string };

describe("actions", () => {
  it("a slow action delays neither another client's mutation nor its Transition, then answers", async () => {
    const deployment = fresh("slow-action");
    const asker = await ProtocolClient.open(deployment);
    const writer = await ProtocolClient.open(deployment);
    writer.add(0, "messages:list", { chatId: "busy" });
    await writer.until(() => writer.results.has(0), "first result");
    asker.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] });
    const started = Date.now();
    asker.send({ type: "Action", requestId: 0, udfPath: "assistant:suggest", args: [{ chatId: "busy", prompt: "hello", delayMs: 1_500 }] });
    const actionResponse = () =>
      asker.messages.find((m) => m.type === "ActionResponse") as { success: boolean; result: { text: string; seen: number } } | undefined;

    await writer.mutation("messages:send", { chatId: "busy", author: "w", body: "while it thinks" });
    await writer.until(() => (writer.results.get(0) as Message[]).length === 1, "the Transition");
    const wrote = Date.now() - started;
    expect(actionResponse(), "the action is still running").toBeUndefined();
    expect(wrote).toBeLessThan(1_000);

    await asker.until(() => actionResponse() !== undefined, "ActionResponse", 10_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
    // It read the chat after the write: its runQuery is a transaction of its own at the latest state.
    expect(actionResponse()).toMatchObject({ success: true, result: { text: expect.any(String), seen: 1 } });
    asker.close();
    writer.close();
  });

  it("answers over HTTP at /api/action, and fails like a mutation", async () => {
    const deployment = fresh("http-action");
    const call = async (args: unknown) =>
      (
        await worker.fetch(`http://calmsync/d/${deployment}/api/action`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ path: "assistant:suggest", format: "convex_encoded_json", args: [args] }),
        })
      ).json();
    expect(await call({ chatId: "c", prompt: "hi", delayMs: 0 })).toMatchObject({ status: "success", value: { text: expect.any(String), seen: 0 } });
    expect(await call({ chatId: "c" })).toMatchObject({ status: "error", errorMessage: expect.stringMatching(/missing the required field `prompt`/) });
  });

  it("a scheduled action streams a reply in chunks that a subscriber sees grow", async () => {
    const deployment = fresh("stream");
    const api = deploymentStub(bindings, deployment);
    const watcher = await ProtocolClient.open(deployment);
    watcher.add(0, "messages:list", { chatId: "room" });
    await watcher.until(() => watcher.results.has(0), "first result");
    const seen: string[] = [];
    const record = () => {
      const reply = (watcher.results.get(0) as Message[]).find((m) => m.author === "assistant");
      if (reply && seen.at(-1) !== reply.body) seen.push(reply.body);
    };
    const timer = setInterval(record, 5);
    const asked = (await api.run("mutation", "assistant:ask", { chatId: "room", author: "ann", body: "what now?", words: 12, delayMs: 50 }, "t")) as {
      status: string;
    };
    expect(asked.status).toBe("success");
    await runDurableObjectAlarm(bindings.DEPLOYMENTS.getByName(deployment)); // the reply runs from the alarm (if it has not fired yet)
    await watcher.until(
      () => ((watcher.results.get(0) as Message[]).find((m) => m.author === "assistant")?.body.split(" ").length ?? 0) === 12,
      "the whole reply",
      10_000,
    );
    record();
    clearInterval(timer);
    // It grew: the empty placeholder, then 3, 6, 9 and 12 words (a fast reader may see a chunk merged with the next).
    expect(seen[0]).toBe("");
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(seen.at(-1)!.split(" ")).toHaveLength(12);
    for (let i = 2; i < seen.length; i++) expect(seen[i]!.startsWith(seen[i - 1]!)).toBe(true);
    watcher.close();
  });
});

describe("HTTP actions (convex/http.ts)", () => {
  it("serves the router's routes under /http and /d/<name>/http, with the path the router sees", async () => {
    const deployment = fresh("http-routes");
    const base = `http://calmsync/d/${deployment}/http`;
    const posted = await worker.fetch(`${base}/messages`, { method: "POST", body: JSON.stringify({ chatId: "hooks", author: "bot", body: "from a webhook" }) });
    expect(posted.status).toBe(201);
    expect(await posted.json()).toEqual({ id: expect.stringMatching(/messages$/) });
    const feed = await worker.fetch(`${base}/messages?chatId=hooks`);
    expect(await feed.json()).toEqual([{ author: "bot", body: "from a webhook", at: expect.any(Number) }]);
    expect((await worker.fetch(`${base}/messages`)).status).toBe(400);
    const missing = await worker.fetch(`${base}/nowhere`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe("No HttpAction routed for /nowhere");
    // An unknown deployment is 404 here as on /api, before any object is reached.
    const unknown = await worker.fetch(`http://calmsync/d/nope-${crypto.randomUUID().slice(0, 6)}/http/messages?chatId=x`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: "DeploymentNotFound" });
  });
});
