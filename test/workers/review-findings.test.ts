/**
 * Findings of the static security review of 2026-12-03 (issue "Reliability
 * round 3", numbered as there), each checked where it was found; each test
 * fails on the code before its fix. Finding 6 (claims overwriting the
 * identity) is in src/engine/auth/auth.test.ts.
 */
import { describe, expect, it } from "vitest";
import { createExecutionContext, runDurableObjectAlarm, waitOnExecutionContext } from "cloudflare:test";
import app from "../../src/worker.ts";
import type { Env } from "../../src/env.ts";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import { directoryStub } from "../../src/deployment/directory.ts";
import { admin, bindings, fresh, setKnobs, status, worker } from "./helpers.ts";
import { ProtocolClient } from "./protocol-client.ts";

describe("the review's findings", () => {
  it("1. clients filling every action slot stop no scheduled action, the alarm never waits on one, and an action past actionTimeoutMs is stopped", async () => {
    const deployment = fresh("action-slots");
    // The deadline is workerd's real timer (nothing to advance from here): 1 s keeps the test short.
    await setKnobs(deployment, { maxConcurrentActions: 2, actionTimeoutMs: 1_000 });
    const api = deploymentStub(bindings, deployment);
    const call = async (path: string, args: unknown) =>
      (await (
        await worker.fetch(`http://t/d/${deployment}/api/action`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ path, format: "convex_encoded_json", args: [args] }),
        })
      ).json()) as {
        status: string;
        errorMessage?: string;
      };
    const started = Date.now();
    const slow = [
      call("assistant:suggest", { chatId: "c", prompt: "a", delayMs: 5_000 }),
      call("assistant:suggest", { chatId: "c", prompt: "b", delayMs: 5_000 }),
    ];
    await new Promise((resolve) => setTimeout(resolve, 50)); // let both take their slots
    expect(await call("assistant:suggest", { chatId: "c", prompt: "c", delayMs: 0 })).toMatchObject({
      status: "error",
      errorMessage: expect.stringMatching(/knob maxConcurrentActions/),
    });
    const reply = async () =>
      ((await api.run("query", "messages:list", { chatId: "room" }, "t")) as unknown as { value: { author: string; body: string }[] }).value.find(
        (m) => m.author === "assistant",
      )?.body;
    // A scheduled action still runs: jobs have slots of their own.
    await api.run("mutation", "assistant:ask", { chatId: "room", author: "ann", body: "quick", words: 3, delayMs: 0 }, "t");
    await runDurableObjectAlarm(bindings.DEPLOYMENTS.getByName(deployment));
    for (let i = 0; i < 100 && (await reply())?.split(" ").length !== 3; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect((await reply())?.split(" ")).toHaveLength(3);
    // A slow scheduled action does not hold the alarm: it returns while the action waits.
    await api.run("mutation", "assistant:ask", { chatId: "slow", author: "ann", body: "slow", words: 3, delayMs: 4_000 }, "t");
    const alarmStarted = Date.now();
    await runDurableObjectAlarm(bindings.DEPLOYMENTS.getByName(deployment));
    expect(Date.now() - alarmStarted).toBeLessThan(500);
    const statusStarted = Date.now();
    await status(deployment);
    expect(Date.now() - statusStarted).toBeLessThan(1_000);
    // The two client actions are stopped at the deadline, long before their 5 s.
    for (const outcome of await Promise.all(slow))
      expect(outcome).toMatchObject({
        status: "error",
        errorMessage: expect.stringMatching(/assistant:suggest ran for more than 1000 ms and was stopped \(knob actionTimeoutMs\)/),
      });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await call("assistant:suggest", { chatId: "c", prompt: "d", delayMs: 0 })).toMatchObject({ status: "success" });
    // The example bounds what anyone may ask of it.
    expect(await call("assistant:suggest", { chatId: "c", prompt: "e", delayMs: 1e9 })).toMatchObject({
      status: "error",
      errorMessage: expect.stringMatching(/delayMs must be between 0 and 5000/),
    });
  });

  it("2. memory is bounded in bytes and instances, not only in requests: a socket past maxQueryInstances is closed with 1013 and the others go on; status shows each bound", async () => {
    const deployment = fresh("byte-bounds");
    await setKnobs(deployment, { maxQueryInstances: 100, maxFrameBytes: 16_384, maxPendingBytesPerSession: 16_384, maxPendingBytes: 32_768 });
    const steady = await ProtocolClient.open(deployment);
    steady.add(0, "messages:list", { chatId: "steady" });
    await steady.until(() => steady.version.querySet === 1, "steady's first transition");
    const greedy = await ProtocolClient.open(deployment);
    greedy.modify(Array.from({ length: 100 }, (_, i) => ({ type: "Add", queryId: i, udfPath: "messages:list", args: [{ chatId: `g${i}` }] })));
    await greedy.until(() => greedy.closed !== null, "greedy closed");
    expect(greedy.closed).toEqual({ code: 1013, reason: expect.stringMatching(/too many queries held here/) });
    expect(await steady.mutation("messages:send", { chatId: "steady", author: "s", body: "x".repeat(3_000) })).toMatchObject({ success: true });
    const { limits } = await status(deployment);
    expect(limits.queryInstances).toEqual({ current: 1, limit: 100 });
    expect(limits.pendingBytes).toMatchObject({ bytes: 0, limit: 32_768, perSessionLimit: 16_384 });
    // The rules between the knobs are kept: a session's budget below the largest frame is refused.
    const refused = await worker.fetch(`http://t/d/${deployment}/api/admin/knobs`, {
      method: "PATCH",
      headers: { ...admin, "Content-Type": "application/json" },
      body: JSON.stringify({ maxPendingBytesPerSession: 8_192 }),
    });
    expect(refused.status).toBe(400);
    steady.close();
  });

  it("3. an HTTP action's body is limited (declared or streamed), and read before the action takes a slot", async () => {
    const deployment = fresh("http-body");
    await setKnobs(deployment, { maxHttpActionBodyBytes: 65_536, maxConcurrentActions: 1 });
    const post = (body: BodyInit, headers: Record<string, string> = {}) =>
      worker.fetch(`http://t/d/${deployment}/http/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...headers },
        body,
        duplex: "half",
      } as RequestInit);
    const message = (n: number) => JSON.stringify({ chatId: "hook", author: "ann", body: "x".repeat(n) });
    const declared = await post(message(100_000));
    expect(declared.status).toBe(413);
    expect(await declared.json()).toMatchObject({
      code: "RequestTooLarge",
      message: expect.stringMatching(/larger than 65536 bytes \(knob maxHttpActionBodyBytes\)/),
    });
    // No Content-Length: counted as it streams.
    const chunks = [message(100_000)];
    const streamed = await post(
      new ReadableStream({ pull: (controller) => (chunks.length ? controller.enqueue(new TextEncoder().encode(chunks.shift())) : controller.close()) }),
    );
    expect(streamed.status).toBe(413);
    // A slow upload holds no slot: with one slot, another action runs while its body is still arriving.
    let finish!: () => void;
    const slowBody = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"chatId": "hook", "author": "slow", '));
        finish = () => {
          controller.enqueue(new TextEncoder().encode('"body": "at last"}'));
          controller.close();
        };
      },
    });
    const slow = post(slowBody);
    await new Promise((resolve) => setTimeout(resolve, 50)); // let the slow request reach the object
    const quick = await post(message(10));
    expect(quick.status).toBe(201);
    finish();
    expect((await slow).status).toBe(201);
  });

  it("5. a mutation's retry record is bound to its caller: another caller with the same session id neither reads it nor blocks its request ids", async () => {
    const deployment = fresh("retry-owner");
    const tokenResponse = await worker.fetch(`http://127.0.0.1/d/${deployment}/api/auth/dev-token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "alice" }),
    });
    const { token } = (await tokenResponse.json()) as { token: string };
    const sessionId = crypto.randomUUID();
    const open = async (signIn: boolean) => {
      const client = await ProtocolClient.open(deployment, sessionId);
      if (signIn) client.send({ type: "Authenticate", tokenType: "User", value: token, baseVersion: 0 });
      client.modify([]);
      await client.until(() => client.version.querySet === 1, "first transition");
      return client;
    };
    const response = async (client: ProtocolClient, requestId: number) => {
      await client.until(() => client.mutationResponses.has(requestId), `response ${requestId}`);
      return client.mutationResponses.get(requestId)! as unknown as { success: boolean; result: unknown; ts?: unknown };
    };
    const args = { chatId: "a", author: "alice", body: "mine" };
    const alice = await open(true);
    alice.mutate("messages:send", args, 7);
    const original = await response(alice, 7);
    expect(original.success).toBe(true);
    alice.close();
    // Someone who learned the session id repeats request 7 anonymously: it runs as a new call, and the recorded answer is not theirs to read.
    const mallory = await open(false);
    mallory.mutate("messages:send", args, 7);
    const theirs = await response(mallory, 7);
    expect(theirs.success).toBe(true);
    expect(theirs.result).not.toEqual(original.result);
    // They pre-record request 8 with another call...
    mallory.mutate("messages:send", { chatId: "a", author: "mallory", body: "squat" }, 8);
    await response(mallory, 8);
    mallory.close();
    // ...and alice's own request 8 still runs, and her true retry of 7 still gets her original answer.
    const back = await open(true);
    back.mutate("messages:send", { chatId: "a", author: "alice", body: "second" }, 8);
    expect(await response(back, 8)).toMatchObject({ success: true });
    back.mutate("messages:send", args, 7);
    expect(await response(back, 7)).toMatchObject({ success: true, result: original.result, ts: original.ts });
    back.close();
  });

  it("idempotent HTTP mutations: a repeat with the same Idempotency-Key writes once and gets the first answer; another call under the key, or another caller, does not", async () => {
    const deployment = fresh("idempotent");
    const post = async (args: unknown, key: string | null, authorization?: string) =>
      (await (
        await worker.fetch(`http://t/d/${deployment}/api/mutation`, {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            ...(key === null ? {} : { "Idempotency-Key": key }),
            ...(authorization ? { Authorization: authorization } : {}),
          },
          body: JSON.stringify({ path: "messages:send", format: "convex_encoded_json", args: [args] }),
        })
      ).json()) as { status: string; value?: unknown; errorMessage?: string };
    const args = { chatId: "once", author: "ann", body: "hello" };
    const first = await post(args, "key-1");
    expect(first).toMatchObject({ status: "success", value: expect.any(String) });
    // Retries after a lost response, two of them at once: one write, the same id.
    const repeats = await Promise.all([post(args, "key-1"), post(args, "key-1")]);
    for (const repeat of repeats) expect(repeat).toEqual({ status: "success", value: first.value, logLines: [] });
    // The same key for another call is refused; no key, or a new one, runs.
    expect(await post({ ...args, body: "other" }, "key-1")).toMatchObject({
      status: "error",
      errorMessage: expect.stringMatching(/already used for a different mutation/),
    });
    expect((await post(args, null)).value).not.toEqual(first.value);
    expect((await post(args, "x".repeat(256))).errorMessage).toMatch(/Idempotency-Key must be 1 to 255 characters/);
    // Another caller (signed in) using the same key gets a run of its own, not ann's answer.
    const tokenResponse = await worker.fetch(`http://127.0.0.1/d/${deployment}/api/auth/dev-token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "bob" }),
    });
    const { token } = (await tokenResponse.json()) as { token: string };
    expect((await post(args, "key-1", `Bearer ${token}`)).value).not.toEqual(first.value);
    const messages = (await (
      await worker.fetch(`http://t/d/${deployment}/api/query`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ path: "messages:list", args: [{ chatId: "once" }] }),
      })
    ).json()) as { value: unknown[] };
    expect(messages.value).toHaveLength(3);
  });

  it("7. a client cannot pass its socket upgrade off as an HTTP action from the Worker", async () => {
    const deployment = fresh("internal-header");
    const response = await worker.fetch(`http://t/d/${deployment}/api/1.49.0/sync`, { headers: { Upgrade: "websocket", "x-calmsync-http-action": "1" } });
    // Before the fix the object ran the app's HTTP router on it (a 404 "No HttpAction routed").
    expect(response.status).toBe(101);
    response.webSocket!.accept();
    response.webSocket!.close(1000, "done");
  });

  it("8. the dev issuer mints only for its own origin and JSON bodies: a page elsewhere cannot get a token", async () => {
    const deployment = fresh("dev-token-origin");
    const mint = (headers: Record<string, string>, body = JSON.stringify({ name: "victim" })) =>
      worker.fetch(`http://127.0.0.1:8787/d/${deployment}/api/auth/dev-token`, { method: "POST", headers, body });
    // A form post from another site (no preflight) and a JSON post from another site (preflight answered by CORS *).
    const form = await mint({ "Content-Type": "text/plain", Origin: "https://evil.example" });
    expect(form.status).toBe(403);
    const crossSite = await mint({ "Content-Type": "application/json", Origin: "https://evil.example" });
    expect(crossSite.status).toBe(403);
    expect(await crossSite.json()).toMatchObject({
      code: "DevIssuerRefused",
      message: expect.stringMatching(/only pages of its own origin \(http:\/\/127\.0\.0\.1:8787\)/),
    });
    // Not JSON, even without an Origin: 415.
    expect((await mint({ "Content-Type": "text/plain" })).status).toBe(415);
    // The chat page itself (same origin) and tools without an Origin still sign in.
    expect((await mint({ "Content-Type": "application/json", Origin: "http://127.0.0.1:8787" })).status).toBe(200);
    expect((await mint({ "Content-Type": "application/json" })).status).toBe(200);
  });

  describe("11. cost amplification", () => {
    /** The Worker itself under `env` (vars changed, or a binding watched), as a request from outside would reach it. */
    const fetchWith = async (env: Env, url: string, init?: RequestInit) => {
      const ctx = createExecutionContext();
      const response = await app.fetch(new Request(url, init), env, ctx);
      await waitOnExecutionContext(ctx);
      return response;
    };

    it("a stranger naming 1,000 unknown deployments addresses no deployment object; the directory records none", async () => {
      let addressed = 0;
      // Every way of reaching an object goes through a method of the namespace: count them all.
      const DEPLOYMENTS = new Proxy(bindings.DEPLOYMENTS, {
        get(target, property) {
          const value = Reflect.get(target, property) as unknown;
          if (typeof value !== "function") return value;
          return (...args: unknown[]) => {
            addressed++;
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      const env = { ...bindings, DEPLOYMENTS };
      const before = await directoryStub(bindings).count();
      const stranger = crypto.randomUUID().slice(0, 8);
      for (let batch = 0; batch < 10; batch++) {
        const responses = await Promise.all(
          Array.from({ length: 100 }, (_, i) => fetchWith(env, `http://t/d/stranger-${stranger}-${batch * 100 + i}/api/status`)),
        );
        for (const response of responses) expect(response.status).toBe(404);
      }
      // Before the fix each name was asked of its own object (1,000 objects started, each loading the app).
      expect(addressed).toBe(0);
      expect(await directoryStub(bindings).count()).toBe(before);
      // Declared and created deployments still answer.
      expect((await fetchWith(env, `http://t/d/${fresh("declared")}/api/status`)).status).toBe(200);
      const created = `made-${stranger}`;
      expect((await fetchWith(env, `http://t/d/${created}/api/admin/deployment`, { method: "POST", headers: admin })).status).toBe(201);
      expect((await fetchWith(env, `http://t/d/${created}/api/status`)).status).toBe(200);
    });

    it("a wildcard in DECLARED_DEPLOYMENTS makes at most WILDCARD_DEPLOYMENT_LIMIT deployments on first use; past it the admin key creates them", async () => {
      const prefix = `test-cap${crypto.randomUUID().slice(0, 6)}-`;
      // The first matching wildcard counts (listed before test-*, which the objects themselves see as declared).
      const env = { ...bindings, DECLARED_DEPLOYMENTS: `default,${prefix}*,test-*`, WILDCARD_DEPLOYMENT_LIMIT: "3" };
      const statusOf = async (name: string) => (await fetchWith(env, `http://t/d/${prefix}${name}/api/status`)).status;
      for (const name of ["a", "b", "c"]) expect(await statusOf(name)).toBe(200);
      const refused = await fetchWith(env, `http://t/d/${prefix}d/api/status`);
      expect(refused.status).toBe(404);
      expect(await refused.json()).toMatchObject({
        code: "DeploymentNotFound",
        message: expect.stringMatching(
          new RegExp(`"${prefix}\\*" in DECLARED_DEPLOYMENTS has made its 3 deployments on first use \\(var WILDCARD_DEPLOYMENT_LIMIT\\)`),
        ),
      });
      // Names already made keep working; an operator makes more.
      expect(await statusOf("a")).toBe(200);
      // (201, or 200 where the object, which sees only test-*, had already started it as declared.)
      expect((await fetchWith(env, `http://t/d/${prefix}d/api/admin/deployment`, { method: "POST", headers: admin })).ok).toBe(true);
      expect(await statusOf("d")).toBe(200);
      expect(await directoryStub(bindings).count(`${prefix}*`)).toBe(3);
    });

    it("parallel HTTP calls from one client share one turn of the function lock: a socket's mutation is not queued behind all of them", async () => {
      const deployment = fresh("http-owner");
      const socket = await ProtocolClient.open(deployment);
      socket.modify([]);
      await socket.until(() => socket.version.querySet === 1, "first transition");
      // Each call writes 400 documents: long enough that they are still queued when the socket's mutation arrives.
      const chatIds = Array.from({ length: 400 }, (_, i) => `c${i}`);
      const calls = 80;
      let done = 0;
      const http = Array.from({ length: calls }, () =>
        worker
          .fetch(`http://t/d/${deployment}/api/mutation`, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ path: "messages:broadcast", args: [{ chatIds, author: "bulk", body: "x" }] }),
          })
          .then(async (response) => {
            expect(response.status).toBe(200);
            await response.body?.cancel();
            done++;
          }),
      );
      // Once the first call is answered the rest have reached the object and queue (a fixed wait was too long once
      // commits got faster: most calls had finished).
      while (done < 1) await new Promise((resolve) => setTimeout(resolve, 1));
      const queuedBefore = calls - done;
      const id = socket.mutate("messages:send", { chatId: "live", author: "ann", body: "hi" });
      await socket.until(() => socket.mutationResponses.has(id), "the socket's mutation", 30_000);
      const waitedBehind = done - (calls - queuedBefore);
      await Promise.all(http);
      socket.close();
      // The calls were still queued when the frame was sent. Before the fix each call was an owner of its own with one
      // task, so the lock saw no backlog, never yielded, and ran all 80 back to back: not even the timer got in.
      expect(queuedBefore).toBeGreaterThan(40);
      // One turn per round each, the frame read at the lock's next hop (every functionsPerYield = 8 tasks): a batch or
      // two of HTTP calls ran before the socket's mutation (answers reach this test late under load), not the whole queue.
      expect(waitedBehind).toBeLessThan(queuedBefore / 2);
    });

    it("each client's HTTP calls and new sockets are limited (429 with Retry-After); other clients and signed-in callers have buckets of their own", async () => {
      const deployment = fresh("per-client");
      await setKnobs(deployment, { clientCallRate: 1, clientCallBurst: 3, clientSessionRate: 1, clientSessionBurst: 2 });
      const call = (headers: Record<string, string> = {}) =>
        worker.fetch(`http://t/d/${deployment}/api/query`, {
          method: "POST",
          headers: { "Content-Type": "application/json", ...headers },
          body: JSON.stringify({ path: "messages:list", args: [{ chatId: "x" }] }),
        });
      const from = (address: string) => ({ "CF-Connecting-IP": address });
      for (let i = 0; i < 3; i++) expect((await call(from("203.0.113.7"))).status).toBe(200);
      const limited = await call(from("203.0.113.7"));
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
      expect(await limited.json()).toMatchObject({ code: "ClientRateLimited", message: expect.stringMatching(/knobs clientCallRate\/clientCallBurst/) });
      expect((await call(from("198.51.100.9"))).status).toBe(200);
      // A refused token costs its address a call too: a flood of bad tokens is not a way around the limit.
      const badToken = { ...from("192.0.2.44"), Authorization: "Bearer not-a-token" };
      for (let i = 0; i < 3; i++) expect((await call(badToken)).status).toBe(401);
      expect((await call(badToken)).status).toBe(429);
      // Signed in, the caller is its identity, not the address it shares.
      const tokenResponse = await worker.fetch(`http://127.0.0.1/d/${deployment}/api/auth/dev-token`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: "carol" }),
      });
      const { token } = (await tokenResponse.json()) as { token: string };
      expect((await call({ ...from("203.0.113.7"), Authorization: `Bearer ${token}` })).status).toBe(200);
      // New sockets: two at once from one address, then 429 for it and not for another.
      const upgrade = (address: string) => worker.fetch(`http://t/d/${deployment}/api/1.49.0/sync`, { headers: { Upgrade: "websocket", ...from(address) } });
      const sockets = [await upgrade("203.0.113.7"), await upgrade("203.0.113.7")];
      for (const response of sockets) expect(response.status).toBe(101);
      const refusedSocket = await upgrade("203.0.113.7");
      expect(refusedSocket.status).toBe(429);
      expect(refusedSocket.headers.get("Retry-After")).not.toBeNull();
      expect(await refusedSocket.json()).toMatchObject({
        code: "ClientRateLimited",
        message: expect.stringMatching(/knobs clientSessionRate\/clientSessionBurst/),
      });
      const other = await upgrade("198.51.100.9");
      expect(other.status).toBe(101);
      for (const response of [...sockets, other]) {
        response.webSocket!.accept();
        response.webSocket!.close(1000, "done");
      }
    });
  });
});
