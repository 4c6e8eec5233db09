import { describe, expect, it } from "vitest";
import { env, exports } from "cloudflare:workers";
import { createExecutionContext } from "cloudflare:test";
import worker from "../../src/worker.ts";
import type { Env } from "../../src/env.ts";

const base = "http://calmsync.test";
let deploymentCounter = 0;
const freshDeployment = () => `http-${Date.now().toString(36)}-${deploymentCounter++}`;

function call(path: string, init?: RequestInit): Promise<Response> {
  return (exports as unknown as { default: Fetcher }).default.fetch(new Request(`${base}${path}`, init));
}

function post(path: string, body: unknown): Promise<Response> {
  return call(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });
}

const fn = (path: string, args: unknown) => ({ path, format: "convex_encoded_json", args: [args] });

describe("HTTP function API", () => {
  it("sends and lists messages in the ConvexHttpClient shapes", async () => {
    const d = `/d/${freshDeployment()}`;
    const sent = await post(`${d}/api/mutation`, fn("messages:send", { chatId: "a", author: "ann", body: "hello" }));
    expect(sent.status).toBe(200);
    const sentBody = (await sent.json()) as { status: string; value: string; logLines: string[] };
    expect(sentBody).toMatchObject({ status: "success", logLines: [] });
    expect(sentBody.value).toMatch(/^[0-9a-z]{26}$/);

    const listed = (await (await post(`${d}/api/query`, fn("messages:list", { chatId: "a" }))).json()) as { value: { _id: string; body: string }[] };
    expect(listed.value).toHaveLength(1);
    expect(listed.value[0]).toMatchObject({ _id: sentBody.value, body: "hello", chatId: "a", author: "ann" });

    const status = (await (await call(`${d}/api/status`)).json()) as Record<string, unknown>;
    expect(status).toMatchObject({ commits: 1, documents: 1, version: "0.1.0" });
    expect(status.queryExecutions).toBe(1);
    expect(typeof status.uptimeMs).toBe("number");
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
      [fn("messages:nope", {}), /Could not find public mutation "messages:nope"/],
      [fn("messages:list", { chatId: "a" }), /Could not find public mutation "messages:list" \(it is a query\)/],
      [fn("messages:send", { chatId: "a", author: "ann" }), /body is required/],
      [fn("messages:send", { chatId: 7, author: "ann", body: "x" }), /chatId must be a string, got number 7/],
      [fn("messages:send", { chatId: { $integer: "AAAA" }, author: "ann", body: "x" }), /\$integer must be 8 bytes/],
    ];
    for (const [body, message] of cases) {
      const response = await post(`${d}/api/mutation`, body);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ status: "error", errorMessage: expect.stringMatching(message), logLines: [] });
    }
    const status = (await (await call(`${d}/api/status`)).json()) as { commits: number; documents: number };
    expect(status).toMatchObject({ commits: 0, documents: 0 });
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

    const status = (await (await call(`${d}/api/status`)).json()) as { commits: number; queryExecutions: number };
    expect(status).toMatchObject({ commits: 0, queryExecutions: 0 });
  });

  it("the default deployment serves /api", async () => {
    const response = await call(`/api/status`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ deployment: "default" });
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
