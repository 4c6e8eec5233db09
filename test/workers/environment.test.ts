/**
 * A deployment's environment variables (issue 26 item 2): set through the
 * admin API, read by `process.env` in the next run without a restart, before
 * the Worker's vars (vitest.config.ts gives the test Worker
 * CALMSYNC_TEST_GREETING, as wrangler vars or .dev.vars would), one
 * deployment's never seen by another in the same isolate; removing one falls
 * back; values never in status or the other operator reads; an audit of who
 * and when without the value.
 */
import { describe, expect, it } from "vitest";
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { actionGeneric, anyApi, internalQueryGeneric } from "convex/server";
import { v } from "convex/values";
import { registerModules } from "../../src/engine/index.ts";
import type { Deployment } from "../../src/deployment/deployment.ts";
import { admin, bindings, fresh, setKnobs, worker } from "./helpers.ts";

/** Functions that read `process.env`: an action, and the query it calls (so both levels of a run are covered). */
const registry = registerModules({
  env: {
    read: internalQueryGeneric({ args: { name: v.string() }, handler: async (_ctx, { name }) => process.env[name] ?? null }),
    readInAction: actionGeneric({
      args: { name: v.string() },
      handler: async (ctx, { name }): Promise<{ action: string | null; query: string | null; listed: boolean }> => ({
        action: process.env[name] ?? null,
        query: (await ctx.runQuery(anyApi.env!.read!, { name })) as string | null,
        listed: Object.keys(process.env).includes(name),
      }),
    }),
  },
});

/** Runs `env:readInAction` in the deployment's object, as any call would run it. */
async function readEnv(deployment: string, name: string): Promise<{ action: string | null; query: string | null; listed: boolean }> {
  return runInDurableObject(bindings.DEPLOYMENTS.getByName(deployment), async (instance: Deployment) => {
    const engine = instance.runtime.engine;
    // The query it calls is resolved from the app's registry (the root component's): lend it this test's functions for the call.
    const root = engine.components.root as { functions: typeof registry };
    const appFunctions = root.functions;
    root.functions = registry;
    try {
      return (await engine.executeAction(registry.get("env:readInAction")!, { name })).value as {
        action: string | null;
        query: string | null;
        listed: boolean;
      };
    } finally {
      root.functions = appFunctions;
    }
  });
}

const envUrl = (deployment: string, name = "") => `http://t/d/${deployment}/api/admin/env${name ? `/${name}` : ""}`;

function setVariable(deployment: string, name: string, value: unknown, actor = "ann@laptop"): Promise<Response> {
  return worker.fetch(envUrl(deployment, name), {
    method: "PUT",
    headers: { ...admin, "Content-Type": "application/json", "Calmsync-Actor": actor },
    body: JSON.stringify({ value }),
  });
}

const removeVariable = (deployment: string, name: string, actor = "bob@ci") =>
  worker.fetch(envUrl(deployment, name), { method: "DELETE", headers: { ...admin, "Calmsync-Actor": actor } });

describe("environment variables", () => {
  it("process.env reads the deployment's variable from the next run on, before the Worker's var; removing it falls back", async () => {
    const d = fresh("env");
    const other = fresh("env-other");
    expect(await readEnv(d, "CALMSYNC_TEST_GREETING")).toEqual({ action: "from wrangler vars", query: "from wrangler vars", listed: true });
    expect(await readEnv(d, "OPENAI_API_KEY")).toEqual({ action: null, query: null, listed: false });
    // calmsync's own settings are not the app's: the admin key is a Worker var here, yet unset for functions.
    expect(bindings.ADMIN_KEY).toBeTruthy();
    expect(await readEnv(d, "ADMIN_KEY")).toEqual({ action: null, query: null, listed: false });

    expect((await setVariable(d, "CALMSYNC_TEST_GREETING", "from the deployment")).status).toBe(200);
    expect((await setVariable(d, "OPENAI_API_KEY", "sk-first")).status).toBe(200);
    expect(await readEnv(d, "CALMSYNC_TEST_GREETING")).toEqual({ action: "from the deployment", query: "from the deployment", listed: true });
    expect(await readEnv(d, "OPENAI_API_KEY")).toEqual({ action: "sk-first", query: "sk-first", listed: true });
    // Another deployment in the same isolate sees none of it.
    expect(await readEnv(other, "CALMSYNC_TEST_GREETING")).toMatchObject({ action: "from wrangler vars" });
    expect(await readEnv(other, "OPENAI_API_KEY")).toMatchObject({ action: null, listed: false });

    // An update is seen by the next run, no restart.
    expect((await setVariable(d, "OPENAI_API_KEY", "sk-second")).status).toBe(200);
    expect(await readEnv(d, "OPENAI_API_KEY")).toMatchObject({ action: "sk-second", query: "sk-second" });

    expect((await removeVariable(d, "CALMSYNC_TEST_GREETING")).status).toBe(200);
    expect(await readEnv(d, "CALMSYNC_TEST_GREETING")).toMatchObject({ action: "from wrangler vars", query: "from wrangler vars" });
    expect((await removeVariable(d, "CALMSYNC_TEST_GREETING")).status).toBe(404);

    // Kept in the deployment's storage: a restarted object still has it.
    await evictDurableObject(bindings.DEPLOYMENTS.getByName(d));
    expect(await readEnv(d, "OPENAI_API_KEY")).toMatchObject({ action: "sk-second" });
  });

  it("shows a value only to a GET of its name: not in status, knobs, metrics, the list, the logs or the audit, which says who and when", async () => {
    const d = fresh("env-secret");
    const secret = `s3cret-${crypto.randomUUID()}`;
    expect((await setVariable(d, "STRIPE_KEY", secret, "ann@laptop")).status).toBe(200);
    await readEnv(d, "STRIPE_KEY");
    expect((await removeVariable(d, "STRIPE_KEY", "bob@ci")).status).toBe(200);
    expect((await setVariable(d, "STRIPE_KEY", secret, "carol@laptop")).status).toBe(200);

    const one = await worker.fetch(envUrl(d, "STRIPE_KEY"), { headers: admin });
    expect(await one.json()).toEqual({ name: "STRIPE_KEY", value: secret });
    expect((await worker.fetch(envUrl(d, "NOT_SET"), { headers: admin })).status).toBe(404);

    const list = (await (await worker.fetch(envUrl(d), { headers: admin })).json()) as {
      variables: unknown[];
      history: { name: string; action: string; actor: string; at: number }[];
    };
    expect(list.variables).toEqual([{ name: "STRIPE_KEY", updatedAt: expect.any(Number) }]);
    expect(list.history.map(({ name, action, actor }) => ({ name, action, actor }))).toEqual([
      { name: "STRIPE_KEY", action: "set", actor: "carol@laptop" },
      { name: "STRIPE_KEY", action: "remove", actor: "bob@ci" },
      { name: "STRIPE_KEY", action: "set", actor: "ann@laptop" },
    ]);
    for (const change of list.history) expect(Object.keys(change).sort()).toEqual(["action", "actor", "at", "name"]);

    const reads: Record<string, string> = {};
    for (const path of ["status", "knobs", "metrics", "env", "logs?follow=0"])
      reads[path] = new TextDecoder().decode(await (await worker.fetch(`http://t/d/${d}/api/admin/${path}`, { headers: admin })).arrayBuffer());
    reads.health = await (await worker.fetch(`http://t/d/${d}/api/status`)).text();
    for (const [path, text] of Object.entries(reads)) expect(text, path).not.toContain(secret);
    expect(JSON.parse(reads.status!)).toMatchObject({ environmentVariables: ["STRIPE_KEY"], limits: { environmentVariables: { count: 1, limit: 100 } } });
    // The audit is in SQLite too: no row holds the value anywhere but the variable itself.
    const stored = await runInDurableObject(bindings.DEPLOYMENTS.getByName(d), (_instance, state: DurableObjectState) =>
      state.storage.sql.exec("SELECT * FROM environment_changes").toArray(),
    );
    expect(JSON.stringify(stored)).not.toContain(secret);
    expect(stored).toHaveLength(3);
  });

  it("refuses a bad name, a value that is not a string or is too long, and one variable past environmentVariablesMax", async () => {
    const d = fresh("env-limits");
    const refused = async (response: Response) => ({ status: response.status, body: (await response.json()) as { code: string; message: string } });
    expect(await refused(await setVariable(d, "1ABC", "x"))).toMatchObject({ status: 400, body: { code: "InvalidEnvironmentVariable" } });
    expect(await refused(await setVariable(d, "A".repeat(41), "x"))).toMatchObject({ status: 400 });
    expect(await refused(await setVariable(d, "NUMBER", 5))).toMatchObject({ status: 400, body: { message: expect.stringContaining("string") } });
    expect(
      await refused(await worker.fetch(envUrl(d, "X"), { method: "PUT", headers: { ...admin, "Content-Type": "application/json" }, body: "{}" })),
    ).toMatchObject({ status: 400, body: { code: "BadRequestBody" } });
    await setKnobs(d, { environmentValueMaxBytes: 64, environmentVariablesMax: 2 });
    expect(await refused(await setVariable(d, "LONG", "é".repeat(33)))).toMatchObject({
      status: 400,
      body: { message: expect.stringContaining("66 bytes, limit 64 (knob environmentValueMaxBytes)") },
    });
    expect((await setVariable(d, "A", "1")).status).toBe(200);
    expect((await setVariable(d, "B", "2")).status).toBe(200);
    expect(await refused(await setVariable(d, "C", "3"))).toMatchObject({
      status: 400,
      body: { message: expect.stringContaining("knob environmentVariablesMax") },
    });
    // Changing one that exists is not one more.
    expect((await setVariable(d, "B", "3")).status).toBe(200);
    expect((await worker.fetch(envUrl(d), { headers: {} })).status).toBe(401);
  });
});
