import { describe, expect, it } from "vitest";
import { RefreshScheduler, type RefreshKnobs, type TurnResult } from "./refresh-scheduler.ts";
import type { SyncSession } from "./session.ts";

function fakeSession(name: string): SyncSession {
  return { connectionId: name, closed: false } as unknown as SyncSession;
}

function harness(knobs: RefreshKnobs, turn: (s: SyncSession) => TurnResult | Promise<TurnResult> = () => ({ runs: 1, sent: true })) {
  const served: string[] = [];
  const pauses: number[] = [];
  let depthSeen = 0;
  let lock = Promise.resolve();
  const scheduler: RefreshScheduler = new RefreshScheduler({
    knobs: () => knobs,
    exclusive: <T,>(fn: () => Promise<T>) => {
      const run = lock.then(fn);
      lock = run.then(() => undefined, () => undefined);
      return run;
    },
    turn: async (session) => {
      depthSeen = Math.max(depthSeen, scheduler.metrics.queueDepth);
      served.push(session.connectionId);
      return turn(session);
    },
    onError: () => undefined,
    now: () => 0,
    pause: async (ms) => {
      pauses.push(ms);
      await new Promise((r) => setTimeout(r, 0));
    },
  });
  const idle = async () => {
    while (scheduler.waiting > 0) await new Promise((r) => setTimeout(r, 1));
    await lock;
  };
  return { scheduler, served, pauses, idle, depth: () => depthSeen };
}

const knobs = (overrides: Partial<RefreshKnobs> = {}): RefreshKnobs => ({ refreshQueueLimit: 100, refreshSliceQueryRuns: 100, refreshSliceTransitions: 100, ...overrides });

describe("RefreshScheduler", () => {
  it("queues a session at most once however often it is dirtied", async () => {
    const { scheduler, served, idle } = harness(knobs());
    const a = fakeSession("a");
    for (let i = 0; i < 5; i++) scheduler.schedule(a);
    scheduler.schedule(fakeSession("b"));
    await idle();
    expect(served).toEqual(["a", "b"]);
  });

  it("never queues more than the limit, keeps the rest as stale marks, and serves everyone in order", async () => {
    const { scheduler, served, idle, depth } = harness(knobs({ refreshQueueLimit: 3, refreshSliceQueryRuns: 2 }));
    const sessions = Array.from({ length: 10 }, (_, i) => fakeSession(`s${i}`));
    for (const s of sessions) scheduler.schedule(s);
    expect(scheduler.metrics.queueDepth).toBe(3);
    expect(scheduler.metrics.overflow).toBe(7);
    await idle();
    expect(served).toEqual(sessions.map((s) => s.connectionId));
    expect(depth()).toBeLessThanOrEqual(3);
    expect(scheduler.metrics.queuePeak).toBe(3);
    expect(scheduler.metrics.overflowPeak).toBe(7);
    expect(scheduler.metrics.slices).toBe(5); // 2 query runs per slice
  });

  it("yields between slices of the transition budget", async () => {
    const { scheduler, pauses, idle } = harness(knobs({ refreshSliceTransitions: 4 }), () => ({ runs: 0, sent: true }));
    for (let i = 0; i < 10; i++) scheduler.schedule(fakeSession(`s${i}`));
    await idle();
    expect(scheduler.metrics.slices).toBe(3);
    expect(pauses).toEqual([0, 0]);
  });

  it("waits the deferral a turn asks for, then serves that session", async () => {
    let deferred = false;
    const { scheduler, served, pauses, idle } = harness(knobs(), (s) => {
      if (s.connectionId === "a" && !deferred) {
        deferred = true;
        return { runs: 0, sent: false, deferMs: 25 };
      }
      return { runs: 1, sent: true };
    });
    scheduler.schedule(fakeSession("a"));
    scheduler.schedule(fakeSession("b"));
    await idle();
    expect(pauses).toEqual([25]);
    expect(served).toEqual(["a", "a", "b"]);
  });

  it("serves a session again when it is dirtied during its own turn", async () => {
    let scheduler!: RefreshScheduler;
    let turns = 0;
    const a = fakeSession("a");
    const h = harness(knobs(), () => {
      if (turns++ === 0) scheduler.schedule(a);
      return { runs: 1, sent: true };
    });
    scheduler = h.scheduler;
    scheduler.schedule(a);
    await h.idle();
    expect(h.served).toEqual(["a", "a"]);
  });
});

describe("RefreshScheduler timing metrics (fake clock)", () => {
  it("reports the oldest stale session's wait and the time spent in slices from its clock", async () => {
    let clock = 1_000;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const scheduler = new RefreshScheduler({
      knobs: () => knobs({ refreshSliceQueryRuns: 1 }),
      exclusive: (fn) => fn(),
      turn: async (session) => {
        if (session.connectionId === "slow") await gate;
        clock += 7; // each turn "takes" 7 ms on the fake clock
        return { runs: 1, sent: true };
      },
      onError: () => undefined,
      now: () => clock,
      pause: async () => undefined,
    });
    scheduler.schedule(fakeSession("slow"));
    clock += 250;
    scheduler.schedule(fakeSession("next"));
    expect(scheduler.oldestWaitMs()).toBe(250);
    release();
    while (scheduler.waiting > 0) await new Promise((r) => setImmediate(r));
    expect(scheduler.oldestWaitMs()).toBe(0);
    // The first slice ran from 1,000 until after the slow turn: the 250 ms it waited plus 7; the second 7.
    expect(scheduler.metrics.sliceMs).toBe(264);
    expect(scheduler.metrics.slices).toBe(2);
  });
});
