import { describe, expect, it } from "vitest";
import { ARM_AFTER, CHECK_EVERY, GuardedRun, SyncGuard, type GuardCell } from "./sync-guard.ts";
import { FunctionError } from "./errors.ts";
import { DeadlineWatch } from "./deadline-watch.ts";

/** A guard of its own, with a clock the test moves and turns it ends by hand; `tick` is what instrumented code calls. */
function setup() {
  const cell: GuardCell = { left: 0, check() {} };
  const clock = { ms: 0, turnEnds: [] as (() => void)[] };
  const guard = new SyncGuard(cell, { now: () => clock.ms, afterTurn: (fn) => clock.turnEnds.push(fn) });
  const tick = () => {
    if (--cell.left < 0) cell.check();
  };
  const endTurn = () => clock.turnEnds.splice(0).forEach((fn) => fn());
  return { guard, tick, clock, endTurn };
}

const LIMITS = { maxSyncRunMs: 100, maxSyncRunSteps: 1_000_000 };

describe("the sync guard", () => {
  it("stops a run that holds the thread past maxSyncRunMs, naming it", () => {
    const { guard, tick, clock } = setup();
    const run = new GuardedRun("jobs:spin", LIMITS);
    let laps = 0;
    expect(() =>
      guard.run(run, () => {
        for (;;) {
          tick();
          laps++;
          clock.ms += 0.01;
        }
      }),
    ).toThrow(/^jobs:spin ran for more than 100 ms without yielding and was stopped \(knob maxSyncRunMs\)$/);
    expect(run.error).toBeInstanceOf(FunctionError);
    expect(run.error!.code).toBe("LimitExceeded");
    // Watched from a tenth of its budget on (ARM_AFTER) and checked every CHECK_EVERY calls: stopped by 1.1 times the budget.
    expect(laps * 0.01).toBeGreaterThan(100);
    expect(laps * 0.01).toBeLessThan(100 * (1 + 1 / ARM_AFTER) + 2 * CHECK_EVERY * 0.01 + 1);
  });

  it("stops it by its guard calls where the clock stands still (Cloudflare), at maxSyncRunSteps", () => {
    const { guard, tick } = setup();
    const run = new GuardedRun("jobs:frozen", LIMITS);
    let laps = 0;
    expect(() =>
      guard.run(run, () => {
        for (;;) {
          tick();
          laps++;
        }
      }),
    ).toThrow(/jobs:frozen made more than 1000000 loop iterations and function calls without yielding and was stopped \(knob maxSyncRunSteps\)/);
    expect(laps).toBeGreaterThan(1_000_000);
    expect(laps).toBeLessThan(1_000_000 * (1 + 1 / ARM_AFTER) + 3 * CHECK_EVERY);
  });

  it("cannot be swallowed: once tripped, every guard call of the run throws again; onTrip hears of it once", () => {
    const { guard, tick } = setup();
    const heard: string[] = [];
    const run = new GuardedRun("jobs:stubborn", LIMITS, (error) => heard.push(error.message));
    const caught = guard.run(run, () => {
      let errors = 0;
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          for (;;) tick();
        } catch {
          errors++;
        }
      }
      try {
        tick();
      } catch {
        errors++;
      }
      return errors;
    });
    expect(caught).toBe(6);
    expect(heard).toHaveLength(1);
  });

  it("sets no timer for a run that ends early; gives each turn of the event loop a new stretch: a run that yields in time is never stopped", () => {
    const { guard, tick, clock, endTurn } = setup();
    guard.run(new GuardedRun("jobs:quick", LIMITS), () => {
      for (let i = 0; i < 10_000; i++) tick();
    });
    expect(clock.turnEnds).toHaveLength(0);
    const run = new GuardedRun("jobs:patient", LIMITS);
    guard.run(run, () => {
      for (let turn = 0; turn < 50; turn++) {
        for (let i = 0; i < 500_000; i++) {
          tick();
          if (i % 10_000 === 0) clock.ms += 1;
        }
        endTurn(); // the run awaited real work: the thread did something else
      }
    });
    expect(run.error).toBeNull();
  });

  it("a new run starts its own stretch; code outside any run is never stopped", () => {
    const { guard, tick, clock } = setup();
    clock.ms = 0;
    for (let i = 0; i < 3_000_000; i++) {
      tick();
      clock.ms += 0.01;
    }
    const run = new GuardedRun("jobs:late", LIMITS);
    guard.run(run, () => {
      for (let i = 0; i < 5_000; i++) {
        tick();
        clock.ms += 0.01;
      }
    });
    expect(run.error).toBeNull();
  });

  it("bound(): the run is answered with its error at once, even when user code caught it and waits forever", async () => {
    const { guard, tick } = setup();
    const run = new GuardedRun("jobs:sulks", LIMITS);
    const work = guard.run(run, async () => {
      await null;
      try {
        for (;;) tick();
      } catch {
        await new Promise(() => {});
      }
    });
    await expect(run.bound(work)).rejects.toThrow(/jobs:sulks made more than/);
  });

  it("bound(): a run that caught its error and returned normally is still answered with it", async () => {
    const { guard, tick } = setup();
    const run = new GuardedRun("jobs:escapes", LIMITS);
    const work = guard.run(run, async () => {
      try {
        for (;;) tick();
      } catch {
        return "escaped";
      }
    });
    await expect(run.bound(work)).rejects.toThrow(/jobs:escapes made more than/);
  });

  it("bound() with a deadline: a run that never settles is answered with the deadline's error; one that settles first clears it", async () => {
    const run = new GuardedRun("jobs:waits", LIMITS);
    let cutOff = 0;
    const watch = new DeadlineWatch();
    const late = run.bound(new Promise(() => {}), {
      ms: 5,
      watch,
      expired: () => {
        cutOff++;
        return new FunctionError("LimitExceeded", "jobs:waits ran too long");
      },
    });
    await expect(late).rejects.toThrow("jobs:waits ran too long");
    expect(cutOff).toBe(1);
    const quick = new GuardedRun("jobs:quick", LIMITS);
    await expect(quick.bound(Promise.resolve(42), { ms: 5, watch, expired: () => new Error("never") })).resolves.toBe(42);
    await expect(quick.bound(Promise.reject(new Error("its own")), { ms: 5, watch, expired: () => new Error("never") })).rejects.toThrow("its own");
    await new Promise((resolve) => setTimeout(resolve, 20));
  });

  it("the engine's runs enter one scope: syscalls, run context and guarded run read from the same store", async () => {
    const { runScope } = await import("./run-scope.ts");
    const { runInScope, runInExecution } = await import("./syscalls/convex-global.ts");
    const { currentRunContext, withRequestId } = await import("./syscalls/run-context.ts");
    const execution = { syscall: () => "null", asyncSyscall: async () => "null", jsSyscall: () => null };
    const guarded = new GuardedRun("jobs:scoped", LIMITS);
    const context = { requestId: "0123456789abcdef", environment: new Map([["NAME", "value"]]) };
    const seen = await runInScope({ execution, context, guarded }, async () => {
      await null;
      return { scope: runScope.getStore(), context: currentRunContext(), env: process.env.NAME };
    });
    expect(seen.scope).toEqual({ execution, context, guarded });
    expect(seen.context).toBe(context);
    expect(seen.env).toBe("value");
    // Entering one field keeps the others.
    const inner = await withRequestId("fedcba9876543210", () => runInExecution(execution, async () => runScope.getStore()));
    expect(inner?.context?.requestId).toBe("fedcba9876543210");
    expect(inner?.execution).toBe(execution);
  });
});
