/**
 * Issue 28, item 1 and finding 1: an action cannot run forever, and clients'
 * actions and the deployment's own jobs take slots from separate pools, so a
 * flood of slow client actions makes no due job fail or be skipped, and the
 * alarm that starts job actions never waits for them.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { actionGeneric, cronJobs, internalActionGeneric, internalMutationGeneric, makeFunctionReference, mutationGeneric, queryGeneric } from "convex/server";
import { v } from "convex/values";
import { CronJobs, DEFAULT_ENGINE_LIMITS, Engine, FunctionError, MemoryStore, registerModules, ScheduledJobs, Schema, type EngineLimits } from "./index.ts";

/** Actions that wait until the test lets them go, by name. */
const gates = new Map<string, () => void>();
const waitFor = (name: string) => new Promise<void>((resolve) => gates.set(name, resolve));
/** Lets `name` go, once it has got as far as waiting (it starts a few microtasks after its call). */
async function release(name: string): Promise<void> {
  for (let turn = 0; !gates.has(name); turn++) {
    if (turn > 10_000) throw new Error(`${name} never started waiting`);
    await Promise.resolve();
  }
  gates.get(name)!();
}

const tick = makeFunctionReference<"mutation">("jobs:tick");
const functions = registerModules({
  jobs: {
    tick: internalMutationGeneric({ args: { label: v.string() }, handler: (ctx, { label }) => ctx.db.insert("ticks", { label }) }),
    ticks: queryGeneric({ args: {}, handler: async (ctx) => (await ctx.db.query("ticks").collect()).map((t) => t.label as string) }),
    states: queryGeneric({
      args: {},
      handler: async (ctx) =>
        (await ctx.db.system.query("_scheduled_functions").collect()).map((j) => `${(j.args[0] as { label: string }).label}:${j.state.kind}`),
    }),
    /** Waits on its gate, then writes a tick. */
    slow: actionGeneric({
      args: { label: v.string() },
      handler: async (ctx, { label }) => {
        await waitFor(label);
        await ctx.runMutation(tick, { label });
      },
    }),
    slowJob: internalActionGeneric({
      args: { label: v.string() },
      handler: async (ctx, { label }) => {
        await waitFor(label);
        await ctx.runMutation(tick, { label });
      },
    }),
    /** Schedules `n` ticks with `label` (padded to `pad` characters). */
    many: mutationGeneric({
      args: { n: v.number(), pad: v.number() },
      handler: async (ctx, { n, pad }) => {
        for (let i = 0; i < n; i++) await ctx.scheduler.runAfter(0, tick, { label: `${i}`.padEnd(pad, ".") });
      },
    }),
    manyFromAction: actionGeneric({
      args: { n: v.number() },
      handler: async (ctx, { n }) => {
        for (let i = 0; i < n; i++) await ctx.scheduler.runAfter(0, tick, { label: `a${i}` });
      },
    }),
    /** Writes, then waits for something that never happens. */
    hang: mutationGeneric({
      args: {},
      handler: async (ctx) => {
        await ctx.db.insert("ticks", { label: "never committed" });
        await new Promise(() => {});
      },
    }),
    hangingQuery: queryGeneric({ args: {}, handler: () => new Promise(() => {}) }),
    jobCount: queryGeneric({ args: {}, handler: async (ctx) => (await ctx.db.system.query("_scheduled_functions").collect()).length }),
    later: mutationGeneric({
      args: { label: v.string() },
      handler: (ctx, { label }) => ctx.scheduler.runAfter(0, makeFunctionReference<"action">("jobs:slowJob"), { label }),
    }),
  },
});

function setup(limits: Partial<EngineLimits>) {
  let clock = Date.now();
  const engine = new Engine({
    schema: new Schema(null),
    functions,
    store: new MemoryStore(),
    now: () => clock,
    limits: () => ({ ...DEFAULT_ENGINE_LIMITS, ...limits }),
  });
  const jobs = new ScheduledJobs(engine, { now: () => clock, maxPerRun: () => 100, retentionMs: () => 60_000 });
  const query = async (name: string) => (await engine.runQuery(name, {})).value as string[];
  return { engine, jobs, query, now: () => clock, advance: (ms: number) => (clock += ms) };
}

beforeEach(() => gates.clear());
afterEach(() => vi.useRealTimers());

describe("action limits", () => {
  it("stops an action at actionTimeoutMs: its caller is answered, its slot freed, its later calls refused", async () => {
    vi.useFakeTimers();
    const { engine, query } = setup({ actionTimeoutMs: 5_000, maxConcurrentActions: 1 });
    const stuck = engine.runAction("jobs:slow", { label: "stuck" }).catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(4_999);
    // Still running: the one slot is taken.
    await expect(engine.runAction("jobs:slow", { label: "other" })).rejects.toThrow(/Too many actions running: 1, limit 1 \(knob maxConcurrentActions\)/);
    await vi.advanceTimersByTimeAsync(1);
    const error = (await stuck) as FunctionError;
    expect(error).toBeInstanceOf(FunctionError);
    expect(error.code).toBe("LimitExceeded");
    expect(error.message).toMatch(/jobs:slow ran for more than 5000 ms and was stopped \(knob actionTimeoutMs\)/);
    // The slot is free again, and the stopped action, woken at last, can no longer write.
    const next = engine.runAction("jobs:slow", { label: "next" });
    await release("stuck");
    await release("next");
    await next;
    expect(await query("jobs:ticks")).toEqual(["next"]);
  });

  it("client actions filling their pool do not stop due scheduled actions; a full job pool leaves the next job pending, and the alarm does not wait", async () => {
    const { engine, jobs, query, now, advance } = setup({ maxConcurrentActions: 1, maxConcurrentJobActions: 1 });
    const client = engine.runAction("jobs:slow", { label: "client" });
    await engine.runMutation("jobs:later", { label: "first" });
    await engine.runMutation("jobs:later", { label: "second" });
    advance(1_000); // convex/server stamps jobs with the real clock: both are due now
    // The alarm's run returns with "first" still running (it used to wait for it), and asks again soon for "second".
    const next = await jobs.runDue();
    expect(next).toBe(now() + 1_000);
    expect((await query("jobs:states")).sort()).toEqual(["first:inProgress", "second:pending"]);
    expect(jobs.running.count).toBe(1);
    // Another run while the pool is full changes nothing: "second" is neither claimed nor failed.
    await jobs.runDue();
    expect((await query("jobs:states")).sort()).toEqual(["first:inProgress", "second:pending"]);
    await release("first");
    await jobs.running.settled();
    await jobs.runDue();
    await release("second");
    await jobs.running.settled();
    expect((await query("jobs:states")).sort()).toEqual(["first:success", "second:success"]);
    await release("client");
    await client;
    expect((await query("jobs:ticks")).sort()).toEqual(["client", "first", "second"]);
  });

  it("a due cron action with every job slot taken stays due and runs when a slot frees, not skipped", async () => {
    const start = Date.UTC(2026, 10, 26, 12, 0, 0);
    let clock = start;
    const engine = new Engine({
      schema: new Schema(null),
      functions,
      store: new MemoryStore(),
      now: () => clock,
      limits: () => ({ ...DEFAULT_ENGINE_LIMITS, maxConcurrentJobActions: 1 }),
    });
    const crons = cronJobs();
    crons.interval("a", { minutes: 1 }, makeFunctionReference<"action">("jobs:slowJob"), { label: "a" });
    crons.interval("b", { minutes: 1 }, makeFunctionReference<"action">("jobs:slowJob"), { label: "b" });
    const jobs = new CronJobs(engine, crons.crons as never, { now: () => clock });
    await jobs.reconcile();
    clock = start + 60_000;
    // "a" takes the one slot; "b" is retried a second later instead of being skipped to its next minute.
    expect(await jobs.runDue()).toBe(clock + 1_000);
    await release("a");
    await jobs.running.settled();
    clock += 1_000;
    expect(await jobs.runDue()).toBe(start + 120_000);
    await release("b");
    await jobs.running.settled();
    expect(((await engine.runQuery("jobs:ticks", {})).value as string[]).sort()).toEqual(["a", "b"]);
  });
});

describe("queries and mutations that never settle", () => {
  it("are stopped at functionTimeoutMs: the caller is answered, a mutation's writes dropped, and the lock serves the next call", async () => {
    vi.useFakeTimers();
    const { engine, query } = setup({ functionTimeoutMs: 1_000 });
    const hung = engine.runMutation("jobs:hang", {}).catch((error: unknown) => error);
    const next = engine.runMutation("jobs:tick", { label: "next" }, undefined, { internal: true });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(((await hung) as FunctionError).message).toMatch(/jobs:hang ran for more than 1000 ms and was stopped \(knob functionTimeoutMs\)/);
    await next;
    const hungQuery = engine.runQuery("jobs:hangingQuery", {}).catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(((await hungQuery) as FunctionError).code).toBe("LimitExceeded");
    expect(await query("jobs:ticks")).toEqual(["next"]);
  });
});

describe("scheduler caps (finding 9)", () => {
  it("one run schedules at most maxScheduledPerFunction jobs and maxScheduledArgumentBytes of arguments; past either, nothing it scheduled stays", async () => {
    const { engine } = setup({ maxScheduledPerFunction: 5, maxScheduledArgumentBytes: 1_024 });
    const count = async () => (await engine.runQuery("jobs:jobCount", {})).value;
    await engine.runMutation("jobs:many", { n: 5, pad: 1 });
    expect(await count()).toBe(5);
    await expect(engine.runMutation("jobs:many", { n: 6, pad: 1 })).rejects.toThrow(/more than 5 \(knob maxScheduledPerFunction\)/);
    await expect(engine.runMutation("jobs:many", { n: 2, pad: 600 })).rejects.toThrow(/limit 1024 \(knob maxScheduledArgumentBytes\)/);
    expect(await count()).toBe(5);
    // An action's schedule calls count together, though each is a commit of its own: the first five stay.
    await expect(engine.runAction("jobs:manyFromAction", { n: 6 })).rejects.toThrow(/knob maxScheduledPerFunction/);
    expect(await count()).toBe(10);
  });

  it("finished jobs are deleted once older than the retention, from the alarm's run; pending ones stay", async () => {
    const { engine, jobs, advance, now } = setup({});
    const count = async () => (await engine.runQuery("jobs:jobCount", {})).value;
    await engine.runMutation("jobs:many", { n: 3, pad: 1 });
    advance(1_000);
    await jobs.runDue();
    expect(await count()).toBe(3);
    const finishedAt = now();
    await engine.runMutation("jobs:many", { n: 1, pad: 1 }); // due in the past of the clock below, but run only at the next call
    advance(30_000);
    // The next sweep is asked for when the first finished job passes the retention (60 s here).
    expect(await jobs.runDue()).toBe(finishedAt + 60_000);
    expect(await count()).toBe(4);
    advance(30_001);
    await jobs.runDue();
    expect(await count()).toBe(1);
    advance(60_000);
    expect(await jobs.runDue()).toBeNull();
    expect(await count()).toBe(0);
  });
});
