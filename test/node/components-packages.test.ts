/**
 * Components from npm, unmodified, through codegen and the engine (memory
 * store): the fixture app installs the rate limiter (which installs a batch
 * worker of its own) and two instances of the sharded counter, as their
 * READMEs show. Codegen reads `convex.config.ts`, types `components` from the
 * packages' own `_generated/component.js`, and registers their compiled modules.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { generate } from "../../scripts/codegen.ts";
import {
  AllCronJobs,
  Components,
  Engine,
  MemoryStore,
  ScheduledJobs,
  Schema,
  componentSchemas,
  findCrons,
  loadApp,
  registerModules,
  type GeneratedApp,
} from "../../src/engine/index.ts";

const FIXTURE = new URL("../fixtures/components-app/convex/", import.meta.url).pathname;

async function engineFor(generated: GeneratedApp, options: Pick<ConstructorParameters<typeof Engine>[0], "onRun"> = {}) {
  const app = await loadApp(generated);
  expect(app.moduleErrors).toEqual({});
  const components = Components.load(registerModules(app.modules), app.components);
  return new Engine({
    schema: new Schema(app.schema, componentSchemas(generated)),
    functions: components.root.functions,
    components,
    store: new MemoryStore(),
    ...options,
  });
}

describe("components from npm", () => {
  const result = generate(FIXTURE);

  it("codegen finds every instance, nested ones too, and types `components` from the packages", () => {
    expect(result.components).toEqual([
      "rateLimiter",
      "rateLimiter/batchWorker",
      "likes",
      "views",
      "jobs",
      "jobs/batchWorker",
      "scores",
      "scores/batchWorker",
      "actionRetrier",
    ]);
    const api = readFileSync(`${FIXTURE}_generated/api.ts`, "utf8");
    expect(api).toContain('"rateLimiter": import("@convex-dev/rate-limiter/_generated/component.js").ComponentApi<"rateLimiter">;');
    expect(api).toContain('"likes": import("@convex-dev/sharded-counter/_generated/component.js").ComponentApi<"likes">;');
    // A component of a component is its parent's business: the app's `components` names only its own.
    expect(api).not.toContain('"batchWorker"');
  });

  it("rate limiter: a token bucket of 3 a minute admits three of five sends; the others get retryAfter", async () => {
    const { app } = (await import(`${FIXTURE}_generated/modules.js`)) as { app: GeneratedApp };
    const engine = await engineFor(app);
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push((await engine.runMutation("usage:send", { user: "ada" })).value as { ok: boolean; retryAfter?: number });
    expect(answers.map((answer) => answer.ok)).toEqual([true, true, true, false, false]);
    for (const refused of answers.slice(3)) expect(refused.retryAfter).toBeGreaterThan(0);
    // Another key has its own bucket.
    expect(((await engine.runMutation("usage:send", { user: "bob" })).value as { ok: boolean }).ok).toBe(true);
  });

  it("sharded counter: two instances of one component count separately", async () => {
    const { app } = (await import(`${FIXTURE}_generated/modules.js`)) as { app: GeneratedApp };
    const engine = await engineFor(app);
    await engine.runMutation("usage:like", { post: "p" });
    await engine.runMutation("usage:like", { post: "p" });
    await engine.runMutation("usage:view", { post: "p", n: 5 });
    expect((await engine.runQuery("usage:counts", { post: "p" })).value).toEqual({ likes: 2, views: 5 });
    expect((await engine.runQuery("usage:counts", { post: "q" })).value).toEqual({ likes: 0, views: 0 });
  });

  it("workpool: actions enqueued from a mutation all run, at most maxParallelism at once, their effects visible", async () => {
    const { app } = (await import(`${FIXTURE}_generated/modules.js`)) as { app: GeneratedApp };
    const engine = await engineFor(app);
    // The alarm's part: run due jobs (the workpool's loop, its workers, their completions) until the work is done.
    const jobs = new ScheduledJobs(engine, { maxPerRun: () => 100 });
    await engine.runMutation("work:enqueue", { n: 6 });
    const deadline = Date.now() + 20_000;
    let progress = { done: 0, mostAtOnce: 0 };
    while (progress.done < 6 && Date.now() < deadline) {
      await jobs.runDue();
      await new Promise((resolve) => setTimeout(resolve, 10));
      progress = (await engine.runQuery("work:progress", {})).value as typeof progress;
    }
    expect(progress.done).toBe(6);
    expect(progress.mostAtOnce).toBeGreaterThan(0);
    expect(progress.mostAtOnce).toBeLessThanOrEqual(2);
  });

  it("aggregate: counts and sums what was inserted", async () => {
    const { app } = (await import(`${FIXTURE}_generated/modules.js`)) as { app: GeneratedApp };
    const engine = await engineFor(app);
    for (const [id, score] of [
      ["a", 3],
      ["b", 5],
      ["c", 10],
    ] as const)
      await engine.runMutation("more:addScore", { id, score });
    expect((await engine.runQuery("more:scoreStats", {})).value).toEqual({ count: 3, sum: 18 });
  });

  it("action retrier: a flaky action is retried through the component's scheduler until it succeeds", async () => {
    const { app } = (await import(`${FIXTURE}_generated/modules.js`)) as { app: GeneratedApp };
    const engine = await engineFor(app);
    const jobs = new ScheduledJobs(engine, { maxPerRun: () => 100 });
    const { value: runId } = await engine.runMutation("more:startFlaky", {});
    const deadline = Date.now() + 20_000;
    let status: { type: string; result?: { type: string; returnValue?: unknown } } = { type: "inProgress" };
    while (status.type !== "completed" && Date.now() < deadline) {
      await jobs.runDue();
      await new Promise((resolve) => setTimeout(resolve, 10));
      status = (await engine.runQuery("more:runStatus", { runId: runId as string })).value as typeof status;
    }
    expect(status).toEqual({ type: "completed", result: { type: "success", returnValue: 3 } });
  });

  it("action retrier: its own crons.ts is registered in its instance and its job runs its function there", async () => {
    const { app } = (await import(`${FIXTURE}_generated/modules.js`)) as { app: GeneratedApp };
    const runs: { path: string; outcome: string; lines: readonly string[] }[] = [];
    const engine = await engineFor(app, { onRun: (run) => runs.push(run) });
    const loaded = await loadApp(app);
    // The deployment's wiring (src/deployment/deployment.ts): the app's crons and each instance's own.
    const byInstance: Record<string, ReturnType<typeof findCrons>> = {
      "": findCrons(loaded.modules),
      ...Object.fromEntries(loaded.components.map(({ path, modules }) => [path, findCrons(modules)])),
    };
    expect(Object.keys(byInstance.actionRetrier!)).toEqual(["Cleanup expired runs"]);
    let clock = Date.UTC(2026, 0, 1);
    const crons = new AllCronJobs(engine, byInstance, { now: () => clock });
    const firstDue = await crons.reconcile();
    expect(firstDue).toBe(clock + 24 * 3_600_000);
    // The job is recorded in the retrier's own `_cron_jobs`, not the app's.
    const jobsOf = (path: string) =>
      [...engine.store.scanIndex(`${engine.components.at(path)!.namespace.storageName("_cron_jobs")}.by_creation_time`, { start: "", end: null }, "asc")].map(
        (entry) => entry.document,
      );
    expect(jobsOf("").length).toBe(0);
    expect(jobsOf("actionRetrier").map((job) => [job.name, job.functionName])).toEqual([["Cleanup expired runs", "run:cleanupExpiredRuns"]]);
    // Not due yet: nothing runs.
    expect(await crons.runDue()).toBe(firstDue);
    expect(runs.filter((run) => run.path === "run:cleanupExpiredRuns")).toEqual([]);
    // A day later it runs, in the retrier's namespace (its `runs` table and `by_state` index exist only there), and moves a day on.
    clock = firstDue! + 1;
    expect(await crons.runDue()).toBe(clock + 24 * 3_600_000);
    const cleanup = runs.filter((run) => run.path === "run:cleanupExpiredRuns");
    expect(cleanup.map((run) => [run.outcome, run.lines])).toEqual([["success", ["[LOG] Cleaned up 0 expired runs"]]]);
    expect(jobsOf("actionRetrier")[0]).toMatchObject({ lastRun: clock });
    expect(jobsOf("actionRetrier")[0]!.lastError).toBeUndefined();
  });
});
