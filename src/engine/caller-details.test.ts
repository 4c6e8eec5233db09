/**
 * Issue 28, finding 4: what a caller learns of a function run. Outside local
 * development no log lines and no uncaught error messages (Convex's
 * production behaviour); and in every environment a caller's log lines hold
 * only its own run's lines, never those of other work the function lock ran
 * meanwhile.
 */
import { describe, expect, it } from "vitest";
import { mutationGeneric, queryGeneric } from "convex/server";
import { ConvexError } from "convex/values";
import { Engine, FunctionError, MemoryStore, registerModules, Schema } from "./index.ts";
import { FairLock } from "./fair-lock.ts";
import { runInExecution, type ConvexGlobal } from "./syscalls/convex-global.ts";
import { LogLines } from "./syscalls/log-lines.ts";

const functions = registerModules({
  f: {
    chatty: queryGeneric({ args: {}, handler: async () => (console.log("a secret in a log line"), 1) }),
    broken: queryGeneric({
      args: {},
      handler: async () => {
        throw new Error("internal detail: db password is hunter2");
      },
    }),
    refused: mutationGeneric({
      args: {},
      handler: async () => {
        throw new ConvexError({ reason: "not yours" });
      },
    }),
  },
});

const engineWith = (exposeFunctionDetails: boolean) => new Engine({ schema: new Schema(null), functions, store: new MemoryStore(), exposeFunctionDetails });

describe("what callers see of a run", () => {
  it("outside development: no log lines, and an uncaught error is 'Server Error' while a ConvexError keeps its data", async () => {
    const production = engineWith(false);
    expect((await production.runQuery("f:chatty", {})).logLines).toEqual([]);
    const hidden = (await production.runQuery("f:broken", {}).catch((error: unknown) => error)) as FunctionError;
    expect(hidden.message).toBe("Server Error");
    expect(hidden.logLines).toEqual([]);
    const refused = (await production.runMutation("f:refused", {}).catch((error: unknown) => error)) as FunctionError;
    expect(refused.data).toEqual({ reason: "not yours" });
    // In development both are shown, as Convex's dev deployments do.
    const development = engineWith(true);
    expect((await development.runQuery("f:chatty", {})).logLines).toEqual(["[LOG] a secret in a log line"]);
    expect(((await development.runQuery("f:broken", {}).catch((error: unknown) => error)) as FunctionError).message).toMatch(/hunter2/);
  });

  it("the function lock runs other owners' tasks in their own context, not in the context of the run that started its drain", async () => {
    const lock = new FairLock();
    const logs = new LogLines();
    const run: ConvexGlobal = { syscall: () => "null", asyncSyscall: async () => "null", jsSyscall: () => null, logs };
    // A run takes the lock first (so the drain starts inside it); another owner's task is queued behind it from outside any run.
    const mine = runInExecution(run, () => lock.run({}, async () => console.log("mine")));
    const theirs = lock.run({}, async () => console.log("session=s1 token expired (another caller's line)"));
    await Promise.all([mine, theirs]);
    expect(logs.lines).toEqual(["[LOG] mine"]);
  });
});
