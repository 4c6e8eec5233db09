/**
 * What the engine tells the operator's log of each run (issue 26 item 5):
 * everything, where callers of a deployed app get no log lines and only
 * "Server Error"; the functions an action calls carry the action's request
 * id, an HTTP request's id when one is given; durations from the engine's clock.
 */
import { describe, expect, it } from "vitest";
import { actionGeneric, anyApi, internalQueryGeneric, queryGeneric } from "convex/server";
import { Engine, FunctionError, MemoryStore, registerModules, Schema, withRequestId, type FunctionRun } from "./index.ts";

let clock = 1_000;

const functions = registerModules({
  f: {
    broken: queryGeneric({
      args: {},
      handler: async () => {
        console.log("looking");
        clock += 7;
        throw new Error("internal detail");
      },
    }),
    inner: internalQueryGeneric({ args: {}, handler: async () => (console.info("inner ran"), 1) }),
    outer: actionGeneric({ args: {}, handler: async (ctx): Promise<number> => (await ctx.runQuery(anyApi.f!.inner!, {})) as number }),
  },
});

function engine(): { engine: Engine; runs: FunctionRun[] } {
  const runs: FunctionRun[] = [];
  return {
    engine: new Engine({
      schema: new Schema(null),
      functions,
      store: new MemoryStore(),
      exposeFunctionDetails: false,
      now: () => clock,
      onRun: (run) => runs.push(run),
    }),
    runs,
  };
}

describe("run reports", () => {
  it("give the operator a deployed run's lines and real error, which its caller does not get", async () => {
    const { engine: production, runs } = engine();
    const failure = (await production.runQuery("f:broken", {}).catch((error: unknown) => error)) as FunctionError;
    expect(failure.message).toBe("Server Error");
    expect(failure.logLines).toEqual([]);
    expect(runs).toEqual([
      {
        ts: 1_000,
        requestId: expect.stringMatching(/^[0-9a-f]{16}$/),
        path: "f:broken",
        kind: "query",
        outcome: "failure",
        error: "Uncaught Error: internal detail",
        durationMs: 7,
        lines: ["[LOG] looking"],
      },
    ]);
  });

  it("tie an action and what it calls to one request id: the HTTP request's when given", async () => {
    const { engine: e, runs } = engine();
    await e.runAction("f:outer", {});
    await withRequestId("http-request-1", () => e.runAction("f:outer", {}));
    expect(runs.map(({ path, kind, requestId, lines }) => ({ path, kind, requestId, lines }))).toEqual([
      { path: "f:inner", kind: "query", requestId: runs[1]!.requestId, lines: ["[INFO] inner ran"] },
      { path: "f:outer", kind: "action", requestId: runs[1]!.requestId, lines: [] },
      { path: "f:inner", kind: "query", requestId: "http-request-1", lines: ["[INFO] inner ran"] },
      { path: "f:outer", kind: "action", requestId: "http-request-1", lines: [] },
    ]);
    expect(runs[1]!.requestId).not.toBe("http-request-1");
  });
});
