import { describe, expect, it } from "vitest";
import { cronJobs, internalActionGeneric, internalMutationGeneric, makeFunctionReference, queryGeneric } from "convex/server";
import { v } from "convex/values";
import { CronJobs, Engine, MemoryStore, nextRunAfter, registerModules, Schema } from "./index.ts";

const functions = registerModules({
  jobs: {
    tick: internalMutationGeneric({ args: { label: v.string() }, handler: (ctx, { label }) => ctx.db.insert("ticks", { label }) }),
    fails: internalMutationGeneric({ args: {}, handler: () => Promise.reject(new Error("no luck")) }),
    ping: internalActionGeneric({ args: {}, handler: (ctx) => ctx.runMutation(makeFunctionReference<"mutation">("jobs:tick"), { label: "from an action" }) }),
    ticks: queryGeneric({ args: {}, handler: async (ctx) => (await ctx.db.query("ticks").collect()).map((t) => t.label as string) }),
    runs: queryGeneric({ args: {}, handler: (ctx) => ctx.db.system.query("_cron_jobs" as never).collect() }),
  },
});

function setup(define: (crons: ReturnType<typeof cronJobs>) => void) {
  const start = Date.UTC(2026, 10, 26, 12, 0, 0);
  let clock = start;
  const engine = new Engine({ schema: new Schema(null), functions, store: new MemoryStore(), now: () => clock });
  const crons = cronJobs();
  define(crons);
  const jobs = new CronJobs(engine, crons.crons as never, { now: () => clock });
  const ticks = async () => (await engine.runQuery("jobs:ticks", {})).value as string[];
  return { engine, jobs, ticks, start, at: (ms: number) => (clock = start + ms) };
}

describe("cron jobs", () => {
  it("steps every schedule kind in UTC", () => {
    const noon = Date.UTC(2026, 10, 26, 12, 0, 0); // a Thursday
    expect(nextRunAfter({ type: "interval", minutes: 5 }, noon)).toBe(noon + 300_000);
    expect(nextRunAfter({ type: "hourly", minuteUTC: 30 }, noon)).toBe(Date.UTC(2026, 10, 26, 12, 30));
    expect(nextRunAfter({ type: "daily", hourUTC: 9, minuteUTC: 15 }, noon)).toBe(Date.UTC(2026, 10, 27, 9, 15));
    expect(nextRunAfter({ type: "weekly", dayOfWeek: "monday", hourUTC: 8 }, noon)).toBe(Date.UTC(2026, 10, 30, 8, 0));
    expect(nextRunAfter({ type: "monthly", day: 1, hourUTC: 0 }, noon)).toBe(Date.UTC(2026, 11, 1, 0, 0));
    expect(nextRunAfter({ type: "cron", cron: "*/10 * * * *" }, noon)).toBe(Date.UTC(2026, 10, 26, 12, 10));
  });

  it("runs due jobs once per occurrence, mutations and actions, records failures, and does not replay missed runs", async () => {
    const { engine, jobs, ticks, start, at } = setup((crons) => {
      crons.interval("every minute", { minutes: 1 }, makeFunctionReference<"mutation">("jobs:tick"), { label: "tick" });
      crons.interval("broken", { minutes: 1 }, makeFunctionReference<"mutation">("jobs:fails"), {});
      crons.cron("action", "*/2 * * * *", makeFunctionReference<"action">("jobs:ping"), {});
    });
    expect(await jobs.reconcile()).toBe(start + 60_000);
    at(30_000);
    expect(await jobs.runDue()).toBe(start + 60_000);
    expect(await ticks()).toEqual([]);
    at(60_000);
    await jobs.runDue();
    expect(await ticks()).toEqual(["tick"]);
    await jobs.runDue(); // the same moment again: nothing more
    expect(await ticks()).toEqual(["tick"]);
    at(120_000);
    expect(await jobs.runDue()).toBe(start + 180_000);
    await jobs.running.settled();
    expect((await ticks()).sort()).toEqual(["from an action", "tick", "tick"]);
    // Down for ten minutes: one late run, then the schedule again.
    at(720_000);
    await jobs.runDue();
    expect((await ticks()).filter((t) => t === "tick")).toHaveLength(3);
    const broken = ((await engine.runQuery("jobs:runs", {})).value as { name: string; lastError?: string }[]).find((j) => j.name === "broken");
    expect(broken?.lastError).toMatch(/no luck/);
  });

  it("reconciles with crons.ts: removed jobs go, changed schedules move", async () => {
    const first = setup((crons) => {
      crons.interval("a", { minutes: 1 }, makeFunctionReference<"mutation">("jobs:tick"), { label: "a" });
      crons.interval("b", { minutes: 1 }, makeFunctionReference<"mutation">("jobs:tick"), { label: "b" });
    });
    await first.jobs.reconcile();
    const redeployed = cronJobs();
    redeployed.interval("a", { minutes: 10 }, makeFunctionReference<"mutation">("jobs:tick"), { label: "a" });
    const jobs = new CronJobs(first.engine, redeployed.crons as never, { now: () => first.start });
    expect(await jobs.reconcile()).toBe(first.start + 600_000);
    const stored = (await first.engine.runQuery("jobs:runs", {})).value as { name: string }[];
    expect(stored.map((j) => j.name)).toEqual(["a"]);
  });
});
