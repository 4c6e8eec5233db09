/**
 * Issue 25: what a component's function prints when the app's query or
 * mutation calls it reaches the app's caller with the caller's own lines, in
 * the order printed, thrown or caught, as Convex's logLines carry them in
 * development (and, as there, not at all in production). The operator's log
 * keeps one entry per run, each with its own lines.
 */
import { describe, expect, it } from "vitest";
import { componentsGeneric, defineSchema, defineTable, mutationGeneric, queryGeneric } from "convex/server";
import { v } from "convex/values";
import { Components, Engine, FunctionError, MemoryStore, registerModules, Schema, type FunctionRun } from "./index.ts";

const components = componentsGeneric() as any;

const counter = {
  lib: {
    bump: mutationGeneric({
      args: { by: v.number() },
      handler: async (ctx, { by }) => {
        console.log("bumping by", by);
        await ctx.db.insert("bumps", { by });
      },
    }),
    refuse: mutationGeneric({
      args: {},
      handler: async () => {
        console.warn("about to refuse");
        throw new Error("refused");
      },
    }),
    total: queryGeneric({
      args: {},
      handler: async (ctx) => {
        const total = (await ctx.db.query("bumps").collect()).reduce((sum, bump) => sum + bump.by, 0);
        console.info("total is", total);
        return total;
      },
    }),
  },
};

const app = {
  app: {
    bumpTwice: mutationGeneric({
      args: {},
      handler: async (ctx) => {
        console.log("before");
        await ctx.runMutation(components.counter.lib.bump, { by: 1 });
        const refused = await ctx.runMutation(components.counter.lib.refuse, {}).catch((error: Error) => error.message);
        await ctx.runMutation(components.counter.lib.bump, { by: 2 });
        console.log("after", refused.includes("refused"));
      },
    }),
    bumpThenFail: mutationGeneric({
      args: {},
      handler: async (ctx) => {
        await ctx.runMutation(components.counter.lib.bump, { by: 5 });
        await ctx.runMutation(components.counter.lib.refuse, {});
      },
    }),
    total: queryGeneric({ args: {}, handler: (ctx) => ctx.runQuery(components.counter.lib.total, {}) }),
  },
};

function engine(exposeFunctionDetails: boolean, runs: FunctionRun[] = []): Engine {
  const installed = new Components(registerModules(app), [{ path: "counter", functions: registerModules(counter, "counter") }]);
  return new Engine({
    schema: new Schema(null, [{ componentPath: "counter", schema: defineSchema({ bumps: defineTable({ by: v.number() }) }) }]),
    functions: installed.root.functions,
    components: installed,
    store: new MemoryStore(),
    exposeFunctionDetails,
    onRun: (run) => runs.push(run),
  });
}

describe("log lines of component calls", () => {
  it("a mutation's caller gets the lines of the component functions it called, in order, a caught failure's too", async () => {
    const runs: FunctionRun[] = [];
    const result = await engine(true, runs).runMutation("app:bumpTwice", {});
    expect(result.logLines).toEqual(["[LOG] before", "[LOG] bumping by 1", "[WARN] about to refuse", "[LOG] bumping by 2", "[LOG] after true"]);
    // The operator's log: one entry per run, each with its own lines only.
    expect(runs.map((run) => [run.path, run.lines])).toEqual([
      ["lib:bump", ["[LOG] bumping by 1"]],
      ["lib:refuse", ["[WARN] about to refuse"]],
      ["lib:bump", ["[LOG] bumping by 2"]],
      ["app:bumpTwice", ["[LOG] before", "[LOG] after true"]],
    ]);
  });

  it("a failed mutation's caller gets them too, and a query's", async () => {
    const dev = engine(true);
    const failure = await dev.runMutation("app:bumpThenFail", {}).catch((error: FunctionError) => error);
    expect(failure).toBeInstanceOf(FunctionError);
    expect((failure as FunctionError).logLines).toEqual(["[LOG] bumping by 5", "[WARN] about to refuse"]);
    await dev.runMutation("app:bumpTwice", {});
    expect((await dev.runQuery("app:total", {})).logLines).toEqual(["[INFO] total is 3"]);
  });

  it("in production callers get no lines, nested or not", async () => {
    expect((await engine(false).runMutation("app:bumpTwice", {})).logLines).toEqual([]);
  });
});
