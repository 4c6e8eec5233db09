/**
 * Issue 26 items 2 and 5 against `wrangler dev`: `npm run env` sets, reads,
 * lists and removes a deployment's variables, and functions read them through
 * `process.env` at once, before the Worker's own var; a `"use node"` action
 * module (Node's built-ins, a key from the environment) loads and runs; the
 * operator's log streams at `/api/admin/logs` and `npm run logs` tails it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { fileURLToPath } from "node:url";
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { startDevServer, TEST_ADMIN_KEY, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";
import { adminStatus } from "../../../scripts/lib/admin.ts";
import { until } from "../../../scripts/lib/until.ts";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const APP = fileURLToPath(new URL("../../../convex", import.meta.url));
const PROBES = ["nodeprobe.ts", "envprobe.ts"].map((file) => fileURLToPath(new URL(`../../fixtures/ops-probe/${file}`, import.meta.url)));
const api = anyApi;
/** The operator's commands find the key where they would (ADMIN_KEY), and name themselves in the audit. */
const operatorEnv = { ...process.env, ADMIN_KEY: TEST_ADMIN_KEY, WRANGLER_SEND_METRICS: "false" };

describe("environment variables and the operator's log (wrangler dev)", () => {
  let server: DevServer;
  let http: ConvexHttpClient;
  beforeAll(async () => {
    server = await startDevServer({ app: APP, modules: PROBES, vars: { PROBE_GREETING: "from wrangler vars" } });
    http = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
  });
  afterAll(() => server?.stop());

  /** `npm run env -- <args>` against this server; its output, or the test fails with it. */
  function npmEnv(args: string[], input?: string): string {
    const result = spawnSync("npm", ["run", "--silent", "env", "--", ...args, "--url", server.url], { cwd: ROOT, env: operatorEnv, encoding: "utf8", input });
    if (result.status !== 0) throw new Error(`npm run env -- ${args.join(" ")}: exit ${result.status}\n${result.stdout}${result.stderr}`);
    return result.stdout;
  }

  it("npm run env sets, gets, lists and removes a variable; functions read it from the next run, before the Worker's var", async () => {
    const read = (name: string) => http.query(api.envprobe!.read!, { name });
    expect(await read("PROBE_GREETING")).toBe("from wrangler vars");

    npmEnv(["set", "PROBE_GREETING", "from npm run env"]);
    expect(await read("PROBE_GREETING")).toBe("from npm run env");
    expect(await http.query(api.envprobe!.read!, { name: "PROBE_GREETING", captured: true })).toBe("from npm run env");
    // A value from stdin stays out of the shell's history.
    npmEnv(["set", "PROBE_SECRET"], "s3cret-from-stdin\n");
    expect(await read("PROBE_SECRET")).toBe("s3cret-from-stdin");
    expect(npmEnv(["get", "PROBE_SECRET"])).toBe("s3cret-from-stdin\n");

    const listed = npmEnv(["list"]);
    expect(listed).toMatch(/^PROBE_GREETING\s+set \d{4}-/m);
    expect(listed).toMatch(/^PROBE_SECRET\s+set /m);
    expect(listed).toMatch(/set\s+PROBE_SECRET {2}by \S+@\S+/);
    expect(listed).not.toContain("s3cret");
    const status = JSON.stringify(await adminStatus(server.url));
    expect(status).toContain("PROBE_SECRET");
    expect(status).not.toContain("s3cret");

    npmEnv(["remove", "PROBE_GREETING"]);
    expect(await read("PROBE_GREETING")).toBe("from wrangler vars");
    const missing = spawnSync("npm", ["run", "--silent", "env", "--", "get", "PROBE_GREETING", "--url", server.url], {
      cwd: ROOT,
      env: operatorEnv,
      encoding: "utf8",
    });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/404 EnvironmentVariableNotFound/);
  });

  it('runs a "use node" action with Node built-ins and a key set through npm run env', async () => {
    await expect(http.action(api.nodeprobe!.sign!, { text: "hello" })).rejects.toThrow(/PROBE_SIGNING_KEY is not set/);
    npmEnv(["set", "PROBE_SIGNING_KEY", "k1"]);
    expect(await http.action(api.nodeprobe!.sign!, { text: "hello" })).toEqual({
      sha256: createHash("sha256").update("hello").digest("hex"),
      hmac: createHmac("sha256", "k1").update("hello").digest("hex"),
      base64: Buffer.from("hello").toString("base64"),
      nonceBytes: 8,
      joined: "a/b",
    });
  });

  it("streams each run's console lines at /api/admin/logs, and npm run logs tails them", async () => {
    await http.mutation(api.envprobe!.chatter!, { word: "first" });
    // The stream: the backlog, then a run as it happens.
    const response = await fetch(`${server.url}/api/admin/logs?function=envprobe:chatter`, { headers: { Authorization: `Bearer ${TEST_ADMIN_KEY}` } });
    expect(response.headers.get("Content-Type")).toContain("application/x-ndjson");
    const reader = response.body!.getReader();
    let text = "";
    const readUntil = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended before ${pattern}: ${text}`);
        text += new TextDecoder().decode(value);
      }
    };
    await readUntil(/chatter says first/);
    await http.mutation(api.envprobe!.chatter!, { word: "second" });
    await readUntil(/chatter says second/);
    const second = text
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => JSON.stringify(line).includes("second"));
    expect(second).toMatchObject({
      type: "run",
      path: "envprobe:chatter",
      kind: "mutation",
      outcome: "success",
      level: "warn",
      lines: ["[LOG] chatter says second", "[WARN] chatter warns second"],
    });
    await reader.cancel();

    // npm run logs: a tail that prints what is there, then what comes.
    const tail = spawn("npm", ["run", "--silent", "logs", "--", "default", "--url", server.url, "--function", "envprobe"], {
      cwd: ROOT,
      env: operatorEnv,
      detached: true,
    });
    let printed = "";
    tail.stdout.on("data", (chunk) => (printed += chunk));
    tail.stderr.on("data", (chunk) => (printed += chunk));
    try {
      await until(() => printed.includes("chatter says second"), "the tail's backlog", 20_000);
      await expect(http.mutation(api.envprobe!.fail!, {})).rejects.toThrow();
      await until(() => printed.includes("probe failure"), "the failed run in the tail", 20_000);
      expect(printed).toMatch(/\[[0-9a-f-]+\] mutation envprobe:fail failure \d+ms\n {4}\[ERROR\] about to fail\n {4}error: Uncaught Error: probe failure/);
      expect(printed).not.toContain("messages:");
    } finally {
      process.kill(-tail.pid!, "SIGTERM");
    }
    // Without follow it prints what is there and ends.
    const once = spawnSync("npm", ["run", "--silent", "logs", "--", "default", "--url", server.url, "--level", "error", "--no-follow"], {
      cwd: ROOT,
      env: operatorEnv,
      encoding: "utf8",
    });
    expect(once.status).toBe(0);
    expect(once.stdout).toContain("envprobe:fail failure");
    expect(once.stdout).not.toContain("chatter");
  });
});
