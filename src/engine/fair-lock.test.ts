import { describe, expect, it } from "vitest";
import { FairLock, GATHER_WITHIN_MS } from "./fair-lock.ts";

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("FairLock", () => {
  it("runs one task at a time, each owner's in order, owners round-robin", async () => {
    const lock = new FairLock();
    const flood = {};
    const quiet = {};
    const ran: string[] = [];
    let running = 0;
    const task = (name: string) => async () => {
      expect(running).toBe(0);
      running++;
      await tick();
      ran.push(name);
      running--;
    };
    const done = [...Array.from({ length: 5 }, (_, i) => lock.run(flood, task(`f${i}`))), lock.run(quiet, task("q0")), lock.run(quiet, task("q1"))];
    await Promise.all(done);
    // In arrival order q0 would have waited for all five flood tasks.
    expect(ran).toEqual(["f0", "q0", "f1", "q1", "f2", "f3", "f4"]);
  });

  it("a failing task rejects its own caller only", async () => {
    const lock = new FairLock();
    const owner = {};
    const failed = lock.run(owner, async () => {
      throw new Error("boom");
    });
    const next = lock.run(owner, async () => "after");
    await expect(failed).rejects.toThrow("boom");
    await expect(next).resolves.toBe("after");
  });

  it("yields to the runtime after a task whose owner has a backlog, and only then", async () => {
    let yields = 0;
    // The clock stands still: every start after the first comes right after the lock went idle (a busy object).
    const lock = new FairLock({
      yieldToEvents: async () => {
        yields++;
        await tick();
      },
      now: () => 0,
    });
    await lock.run({}, async () => 0);
    await tick(); // the drain ends after its last task's caller hears back
    // Three owners with one task each (ordinary load): one hop before starting, none between.
    await Promise.all([lock.run({}, async () => 1), lock.run({}, async () => 2), lock.run({}, async () => 3)]);
    expect(yields).toBe(1);
    // One owner with three: a hop before starting and after each task that leaves more behind it.
    const busy = {};
    await Promise.all([lock.run(busy, async () => 1), lock.run(busy, async () => 2), lock.run(busy, async () => 3)]);
    expect(yields).toBe(1 + 3);
    expect(lock.queued).toBe(0);
  });

  it("a lone call after a quiet spell starts at once; one that comes right after the lock went idle waits for the gathering hop", async () => {
    let now = 1_000;
    let yields = 0;
    const lock = new FairLock({
      yieldToEvents: async () => {
        yields++;
        await tick();
      },
      now: () => now,
    });
    // Never busy before: no hop.
    await lock.run({}, async () => 1);
    await tick();
    expect(yields).toBe(0);
    // Moments after it went idle (a stream of calls, a flood's next frame): the hop gathers what arrives with it.
    now += GATHER_WITHIN_MS - 1;
    await lock.run({}, async () => 2);
    await tick();
    expect(yields).toBe(1);
    // After a quiet spell: at once again.
    now += GATHER_WITHIN_MS;
    await lock.run({}, async () => 3);
    expect(yields).toBe(1);
  });

  it("under a backlog, yields once per tasksPerYield tasks, and a task queued during the hop joins the ring", async () => {
    const order: string[] = [];
    let yields = 0;
    const other = {};
    const lock = new FairLock({
      yieldToEvents: async () => {
        yields++;
        // Something that arrives while the lock lets events in (another socket's frame) joins the ring.
        if (yields === 2) void lock.run(other, async () => void order.push("other"));
        await tick();
      },
      tasksPerYield: () => 3,
      now: () => 0,
    });
    // Busy moments ago, so the next start gathers.
    await lock.run({}, async () => undefined);
    await tick();
    const busy = {};
    await Promise.all(Array.from({ length: 7 }, (_, i) => lock.run(busy, async () => void order.push(`busy ${i}`))));
    // A hop before starting, then one after the 3rd and the 6th task (each leaving more behind it): not one after each.
    expect(yields).toBe(3);
    expect(lock.yields).toBe(3);
    // The task that came in during the second hop takes its turn in the ring, after busy's turn already due.
    expect(order).toEqual(["busy 0", "busy 1", "busy 2", "busy 3", "other", "busy 4", "busy 5", "busy 6"]);
  });
});
