import { describe, expect, it } from "vitest";
import { env, exports } from "cloudflare:workers";
import { createExecutionContext, runInDurableObject } from "cloudflare:test";
import worker from "../../src/worker.ts";
import type { Env } from "../../src/env.ts";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import { QUERY_CACHE_CLOCK_MAX_AGE_MS } from "../../src/knobs/fixed.ts";

const base = "http://calmsync.test";
let deploymentCounter = 0;
const freshDeployment = () => `test-http-${Date.now().toString(36)}-${deploymentCounter++}`;

function call(path: string, init?: RequestInit): Promise<Response> {
  return (exports as unknown as { default: Fetcher }).default.fetch(new Request(`${base}${path}`, init));
}

function post(path: string, body: unknown, headers: Record<string, string> = { "Content-Type": "application/json" }): Promise<Response> {
  return call(path, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
}

const ADMIN = { Authorization: "Bearer test-admin-key" };

async function adminStatus(d: string): Promise<Record<string, unknown>> {
  const response = await call(`${d}/api/admin/status`, { headers: ADMIN });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

const fn = (path: string, args: unknown) => ({ path, format: "convex_encoded_json", args: [args] });

describe("HTTP function API", () => {
  it("sends and lists messages in the ConvexHttpClient shapes", async () => {
    const d = `/d/${freshDeployment()}`;
    const sent = await post(`${d}/api/mutation`, fn("messages:send", { chatId: "a", author: "ann", body: "hello" }));
    expect(sent.status).toBe(200);
    const sentBody = (await sent.json()) as { status: string; value: string; logLines: string[] };
    expect(sentBody).toMatchObject({ status: "success", logLines: [] });
    expect(sentBody.value).toMatch(/^[0-9a-z]{26}messages$/);

    const listed = (await (await post(`${d}/api/query`, fn("messages:list", { chatId: "a" }))).json()) as { value: { _id: string; body: string }[] };
    expect(listed.value).toHaveLength(1);
    expect(listed.value[0]).toMatchObject({ _id: sentBody.value, body: "hello", chatId: "a", author: "ann" });

    const status = await adminStatus(d);
    expect(status).toMatchObject({ commits: 1, documents: 1, version: "0.1.0" });
    expect(status.queryExecutions).toBe(1);
    expect(typeof status.uptimeMs).toBe("number");
  });

  it("answers a repeat /api/query from the query cache without a run, until a commit writes into what it read", async () => {
    const d = `/d/${freshDeployment()}`;
    await post(`${d}/api/mutation`, fn("messages:send", { chatId: "a", author: "ann", body: "one" }));
    const list = async () => ((await (await post(`${d}/api/query`, fn("messages:list", { chatId: "a" }))).json()) as { value: { body: string }[] }).value;
    const runs = async () => (await adminStatus(d)).queryExecutions;
    expect((await list()).map((m) => m.body)).toEqual(["one"]);
    expect((await list()).map((m) => m.body)).toEqual(["one"]);
    expect(await runs()).toBe(1);
    expect((await adminStatus(d)).limits).toMatchObject({ queryResultCache: { hits: 1 } });
    // Another chat's commit is outside its read-set; this chat's is inside.
    await post(`${d}/api/mutation`, fn("messages:send", { chatId: "b", author: "ann", body: "elsewhere" }));
    await list();
    expect(await runs()).toBe(1);
    await post(`${d}/api/mutation`, fn("messages:send", { chatId: "a", author: "ann", body: "two" }));
    expect((await list()).map((m) => m.body)).toEqual(["two", "one"]);
    expect(await runs()).toBe(2);
  });

  it("keeps answering a query that calls a component's query from the cache past the clock-read age: the engine's own clock reads are not the query's", async () => {
    const name = freshDeployment();
    const d = `/d/${name}`;
    // digests:progress reads the sharded-counter component (ctx.runQuery inside the run).
    const progress = async () => ((await (await post(`${d}/api/query`, fn("digests:progress", { chatId: "a" }))).json()) as { status: string }).status;
    expect(await progress()).toBe("success");
    // One call: the app's query and the component's query it calls.
    expect((await adminStatus(d)).queryExecutions).toBe(2);
    await deploymentStub(env as Env, name).advanceClock(QUERY_CACHE_CLOCK_MAX_AGE_MS + 1_000);
    expect(await progress()).toBe("success");
    expect((await adminStatus(d)).queryExecutions).toBe(2);
  });

  it("keeps deployments apart", async () => {
    const a = `/d/${freshDeployment()}`;
    const b = `/d/${freshDeployment()}`;
    await post(`${a}/api/mutation`, fn("messages:send", { chatId: "x", author: "ann", body: "only in a" }));
    const inB = (await (await post(`${b}/api/query`, fn("messages:list", { chatId: "x" }))).json()) as { value: unknown[] };
    expect(inB.value).toEqual([]);
  });

  it("answers function-level errors in the error shape and writes nothing", async () => {
    const d = `/d/${freshDeployment()}`;
    const cases: [unknown, RegExp][] = [
      [fn("messages:nope", {}), /Could not find public function for 'messages:nope'/],
      [fn("messages:list", { chatId: "a" }), /Could not find public function for 'messages:list'.*\(a mutation was asked for \(it is a query\)\)/],
      [fn("messages:send", { chatId: "a", author: "ann" }), /missing the required field `body`/],
      [fn("messages:send", { chatId: 7, author: "ann", body: "x" }), /Path: \.chatId\nValue: 7\nValidator: v\.string\(\)/],
      [fn("messages:send", { chatId: { $integer: "AAAA" }, author: "ann", body: "x" }), /\$integer must be 8 bytes/],
    ];
    for (const [body, message] of cases) {
      const response = await post(`${d}/api/mutation`, body);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ status: "error", errorMessage: expect.stringMatching(message), logLines: [] });
    }
    expect(await adminStatus(d)).toMatchObject({ commits: 0, documents: 0 });
  });

  it("refuses malformed requests with 4xx before running anything", async () => {
    const d = `/d/${freshDeployment()}`;
    const notJson = await post(`${d}/api/mutation`, "{nope");
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ code: "BadJsonBody" });

    const wrongFormat = await post(`${d}/api/query`, { path: "messages:list", format: "json", args: [{ chatId: "a" }] });
    expect(wrongFormat.status).toBe(400);
    expect(await wrongFormat.json()).toMatchObject({ code: "UnsupportedFormat", message: expect.stringContaining('"json"') });

    const noPath = await post(`${d}/api/query`, { format: "convex_encoded_json", args: [{}] });
    expect(noPath.status).toBe(400);

    const twoArgs = await post(`${d}/api/query`, { path: "messages:list", args: [{}, {}] });
    expect(twoArgs.status).toBe(400);

    const huge = await post(`${d}/api/mutation`, fn("messages:send", { chatId: "a", author: "ann", body: "x".repeat(1_100_000) }));
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ code: "RequestTooLarge" });

    const badName = await call(`/d/Bad_Name/api/status`);
    expect(badName.status).toBe(400);

    // Nested past Convex's 64 levels: a 400 from the Worker, not a stack overflow (it was a 500).
    let deep: unknown = "bottom";
    for (let i = 0; i < 5_000; i++) deep = { d: deep };
    const tooDeep = await post(`${d}/api/mutation`, fn("messages:send", { chatId: "a", author: "ann", body: "x", extra: deep }));
    expect(tooDeep.status).toBe(400);
    expect(await tooDeep.json()).toMatchObject({ code: "ValueTooDeep", message: expect.stringContaining("64 levels") });

    // Function calls take JSON only: a form or text post (what a page on another origin can send
    // without a preflight) is refused before anything runs.
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
      const response = await post(`${d}/api/mutation`, fn("messages:send", { chatId: "a", author: "ann", body: "csrf" }), { "Content-Type": type });
      expect(response.status, type).toBe(415);
      expect(await response.json()).toMatchObject({ code: "UnsupportedMediaType" });
    }
    const noType = await call(`${d}/api/mutation`, { method: "POST", body: JSON.stringify(fn("messages:send", { chatId: "a", author: "ann", body: "x" })) });
    expect(noType.status).toBe(415);

    expect(await adminStatus(d)).toMatchObject({ commits: 0, queryExecutions: 0 });
  });

  it("answers browser apps on other origins with CORS (preflight and response)", async () => {
    const d = `/d/${freshDeployment()}`;
    const preflight = await call(`${d}/api/mutation`, {
      method: "OPTIONS",
      headers: { Origin: "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("Access-Control-Allow-Origin")).toBe("*");
    expect(preflight.headers.get("Access-Control-Allow-Methods")).toContain("POST");
    expect(preflight.headers.get("Access-Control-Allow-Headers")?.toLowerCase()).toContain("content-type");
    const response = await call(`${d}/api/query`, {
      method: "POST",
      headers: { Origin: "https://app.example", "Content-Type": "application/json" },
      body: JSON.stringify(fn("messages:list", { chatId: "a" })),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe("*");
  });

  it("allows only the configured origins when CORS_ORIGINS is set", async () => {
    const restricted = { ...(env as Env), CORS_ORIGINS: "https://good.example" } as Env;
    const from = async (origin: string) =>
      worker.fetch(
        new Request(`${base}/api/query`, {
          method: "POST",
          headers: { Origin: origin, "Content-Type": "application/json" },
          body: JSON.stringify(fn("messages:list", { chatId: "a" })),
        }),
        restricted,
        createExecutionContext(),
      );
    expect((await from("https://good.example")).headers.get("Access-Control-Allow-Origin")).toBe("https://good.example");
    expect((await from("https://evil.example")).headers.get("Access-Control-Allow-Origin")).toBeNull();
  });

  it("tells strangers only health on /api/status", async () => {
    const d = `/d/${freshDeployment()}`;
    await post(`${d}/api/mutation`, fn("messages:send", { chatId: "a", author: "ann", body: "hello" }));
    const response = await call(`${d}/api/status`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toEqual({ ok: true, deployment: d.slice(3), version: "0.1.0" });
    expect(await adminStatus(d)).toMatchObject({ commits: 1, limits: { sessions: { limit: expect.any(Number) } } });
  });

  it("the default deployment serves /api", async () => {
    const response = await call(`/api/status`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ deployment: "default" });
  });
});

describe("deployments exist only when declared or created", () => {
  it("answers 404 for an unknown name on every route and creates no storage", async () => {
    const names = Array.from({ length: 20 }, (_, i) => `stranger-${crypto.randomUUID().slice(0, 8)}-${i}`);
    for (const name of names) {
      const responses = [
        await call(`/d/${name}/api/status`),
        await post(`/d/${name}/api/query`, fn("messages:list", { chatId: "a" })),
        await post(`/d/${name}/api/mutation`, fn("messages:send", { chatId: "a", author: "ann", body: "x" })),
        await call(`/d/${name}/api/1.49.0/sync`, { headers: { Upgrade: "websocket" } }),
        await call(`/d/${name}/api/admin/status`, { headers: ADMIN }),
      ];
      for (const response of responses) {
        expect(response.status).toBe(404);
        expect(await response.json()).toMatchObject({ code: "DeploymentNotFound" });
      }
    }
    // None of the 20 names wrote anything: no table, no alarm (an object that writes nothing stores nothing).
    for (const name of names) {
      const written = await runInDurableObject((env as Env).DEPLOYMENTS.getByName(name), async (_instance, state) => ({
        tables: state.storage.sql
          .exec<{ name: string }>("SELECT name FROM sqlite_master")
          .toArray()
          .map((row) => row.name),
        alarm: await state.storage.getAlarm(),
      }));
      expect(written, name).toEqual({ tables: [], alarm: null });
    }
  });

  it("an operator creates one with the admin key; then it serves", async () => {
    const name = `created-${crypto.randomUUID().slice(0, 8)}`;
    expect((await call(`/d/${name}/api/admin/deployment`, { method: "POST" })).status).toBe(401);
    const created = await call(`/d/${name}/api/admin/deployment`, { method: "POST", headers: ADMIN });
    expect(created.status).toBe(201);
    expect(await created.json()).toEqual({ deployment: name, created: true });
    const again = await call(`/d/${name}/api/admin/deployment`, { method: "POST", headers: ADMIN });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ deployment: name, created: false });
    const sent = await post(`/d/${name}/api/mutation`, fn("messages:send", { chatId: "a", author: "ann", body: "hi" }));
    expect(await sent.json()).toMatchObject({ status: "success" });
    expect((await call(`/d/${name}/api/status`)).status).toBe(200);
  });
});

describe("admin routes", () => {
  it("require the bearer admin key", async () => {
    expect((await call(`/api/admin/status`)).status).toBe(401);
    expect((await call(`/api/admin/status`, { headers: { Authorization: "Bearer wrong" } })).status).toBe(401);
    const ok = await call(`/api/admin/status`, { headers: { Authorization: "Bearer test-admin-key" } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ deployment: "default", tables: { messages: { indexes: ["by_id", "by_creation_time", "by_chat"] } } });
  });

  it("answer 403 with instructions when no admin key is configured", async () => {
    const { ADMIN_KEY: _unset, ...withoutKey } = env as Env;
    const response = await worker.fetch(
      new Request(`${base}/api/admin/status`, { headers: { Authorization: "Bearer anything" } }),
      withoutKey as Env,
      createExecutionContext(),
    );
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ code: "AdminKeyNotConfigured", message: expect.stringContaining("wrangler secret put ADMIN_KEY") });
  });
});
