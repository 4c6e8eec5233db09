/**
 * Issue 28, item 1: a function that never yields cannot take the deployment down. The Worker here
 * serves test/fixtures/endless-loop (vitest.config.ts): queries, a mutation, an action, an HTTP
 * action and a module's top level that spin without awaiting. Each is stopped within its budget
 * (knobs maxSyncRunMs, maxSyncRunSteps) and answered with an error naming it, while another
 * function, the status and the admin API answer within 1 s.
 *
 * The test runner shares the thread with the objects: without the guard the first spin would hang
 * the whole run, so `beforeAll` fails first when the app's code carries no guard.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { app } from "../fixtures/endless-loop/convex/_generated/modules.js";
import { admin, fresh, setKnobs, status, worker } from "../workers/helpers.ts";

type Answer = { status: "success"; value: unknown } | { status: "error"; errorMessage: string };

/** A function call over HTTP, and when it was answered (ms after `since`). */
async function call(
  deployment: string,
  kind: "query" | "mutation" | "action",
  path: string,
  args: Record<string, unknown>,
  since: number,
): Promise<{ answer: Answer; ms: number }> {
  const response = await worker.fetch(`http://t/d/${deployment}/api/${kind}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ path, format: "convex_encoded_json", args: [args] }),
  });
  return { answer: (await response.json()) as Answer, ms: Date.now() - since };
}

/** The admin API's status, and when it was answered (ms after `since`). */
async function adminStatus(deployment: string, since: number): Promise<{ body: Record<string, unknown>; ms: number }> {
  const response = await worker.fetch(`http://t/d/${deployment}/api/admin/status`, { headers: admin });
  expect(response.status).toBe(200);
  return { body: (await response.json()) as Record<string, unknown>, ms: Date.now() - since };
}

const STOPPED = (name: string) =>
  new RegExp(
    `${name} (ran for more than \\d+ ms|made more than \\d+ loop iterations and function calls) without yielding and was stopped \\(knob maxSyncRun(Ms|Steps)\\)`,
  );

describe("a function that never yields", () => {
  beforeAll(async () => {
    // Fail, rather than hang the run, when the guard is missing: the handlers must call it, and the engine must have installed its check.
    const spin = (await app.modules.spin!()) as { forever: { _handler: () => unknown } };
    // (Vite's module runner renames the import: `__calmsync_guard()` reads `(0, __vite_ssr_import_0__.tick)()` here.)
    expect(String(spin.forever._handler)).toMatch(/__calmsync_guard\(\)|\.tick\)\(\)/);
    const cell = (globalThis as unknown as Record<symbol, { check(): void } | undefined>)[Symbol.for("calmsync.syncGuard")];
    expect(cell?.check.toString()).toContain("this.check()");
  });

  it("is stopped and answered with an error naming it; another query, the status and the admin API answer within 1 s meanwhile", async () => {
    const deployment = fresh("spin");
    await call(deployment, "query", "spin:ok", { chatId: "warm" }, Date.now()); // started, so the timings below are the spin's alone
    const started = Date.now();
    const [spun, neighbour, adminApi, rpcStatus] = await Promise.all([
      call(deployment, "query", "spin:forever", {}, started),
      call(deployment, "query", "spin:ok", { chatId: "c" }, started),
      adminStatus(deployment, started),
      status(deployment).then(() => Date.now() - started),
    ]);
    expect(spun.answer).toMatchObject({ status: "error", errorMessage: expect.stringMatching(STOPPED("spin:forever")) });
    expect(spun.answer.status === "error" && spun.answer.errorMessage).toMatch(/LimitExceeded|without yielding/);
    expect(neighbour.answer).toEqual(expect.objectContaining({ status: "success", value: 0 }));
    for (const ms of [spun.ms, neighbour.ms, adminApi.ms, rpcStatus]) expect(ms).toBeLessThan(1_000);
    // The object was not reset: the same deployment serves on, its counters intact.
    expect(adminApi.body).toMatchObject({ queryExecutions: expect.any(Number) });
    expect((await call(deployment, "query", "spin:ok", { chatId: "c" }, Date.now())).answer).toMatchObject({ status: "success", value: 0 });
  });

  it("by the clock: stopped at maxSyncRunMs when its guard-call budget is out of reach", async () => {
    const deployment = fresh("spin-clock");
    await setKnobs(deployment, { maxSyncRunMs: 300, maxSyncRunSteps: 10_000_000_000 });
    const started = Date.now();
    const [spun, neighbour] = await Promise.all([
      call(deployment, "query", "spin:forever", {}, started),
      call(deployment, "query", "spin:ok", { chatId: "c" }, started),
    ]);
    expect(spun.answer).toMatchObject({
      status: "error",
      errorMessage: expect.stringMatching(/spin:forever ran for more than 300 ms without yielding and was stopped \(knob maxSyncRunMs\)/),
    });
    expect(spun.ms).toBeGreaterThanOrEqual(300);
    expect(neighbour).toMatchObject({ answer: { status: "success", value: 0 }, ms: expect.any(Number) });
    expect(neighbour.ms).toBeLessThan(1_000);
  });

  it("by the count, where the clock would stand still: stopped at maxSyncRunSteps", async () => {
    const deployment = fresh("spin-steps");
    await setKnobs(deployment, { maxSyncRunMs: 30_000, maxSyncRunSteps: 1_000_000 });
    const { answer } = await call(deployment, "query", "spin:recurses", {}, Date.now());
    expect(answer).toMatchObject({
      status: "error",
      errorMessage: expect.stringMatching(
        /spin:recurses made more than 1000000 loop iterations and function calls without yielding and was stopped \(knob maxSyncRunSteps\)/,
      ),
    });
  });

  it("cannot be swallowed: a handler that catches the error and returns is answered with it", async () => {
    const { answer } = await call(fresh("spin-swallow"), "query", "spin:swallows", {}, Date.now());
    expect(answer).toMatchObject({ status: "error", errorMessage: expect.stringMatching(STOPPED("spin:swallows")) });
  });

  it("a mutation's writes are dropped and the function lock released", async () => {
    const deployment = fresh("spin-mutation");
    const { answer } = await call(deployment, "mutation", "spin:writesThenSpins", { chatId: "m" }, Date.now());
    expect(answer).toMatchObject({ status: "error", errorMessage: expect.stringMatching(STOPPED("spin:writesThenSpins")) });
    expect((await call(deployment, "query", "spin:ok", { chatId: "m" }, Date.now())).answer).toMatchObject({ status: "success", value: 0 });
    expect(await status(deployment)).toMatchObject({ commits: 0 });
  });

  it("an action and an HTTP action are stopped the same way", async () => {
    const deployment = fresh("spin-actions");
    const { answer } = await call(deployment, "action", "spin:spinsInAction", {}, Date.now());
    expect(answer).toMatchObject({ status: "error", errorMessage: expect.stringMatching(STOPPED("spin:spinsInAction")) });
    const spun = await worker.fetch(`http://t/d/${deployment}/http/spin`);
    expect(spun.status).toBe(500);
    expect(await spun.text()).toMatch(STOPPED("The HTTP action for GET /spin"));
    expect(await (await worker.fetch(`http://t/d/${deployment}/http/hello`)).text()).toBe("hello");
  });

  it("a module whose top level never yields fails to load, naming it; the rest of the app serves", async () => {
    const deployment = fresh("spin-load");
    const { answer } = await call(deployment, "query", "spinsAtLoad:never", {}, Date.now());
    expect(answer).toMatchObject({
      status: "error",
      errorMessage: expect.stringMatching(
        /spinsAtLoad:never cannot run: its module convex\/spinsAtLoad failed to load \(FunctionError: The top level of convex\/spinsAtLoad (ran for more than|made more than)/,
      ),
    });
    expect((await status(deployment)).moduleErrors).toEqual({ spinsAtLoad: expect.stringMatching(STOPPED("The top level of convex/spinsAtLoad")) });
    expect((await call(deployment, "query", "spin:ok", { chatId: "l" }, Date.now())).answer).toMatchObject({ status: "success", value: 0 });
  });
});
