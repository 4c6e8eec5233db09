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
    exclusive: <T>(fn: () => Promise<T>) => {
      const run = lock.then(fn);
      lock = run.then(
        () => undefined,
        () => undefined,
      );
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

const knobs = (overrides: Partial<RefreshKnobs> = {}): RefreshKnobs => ({
  refreshQueueLimit: 100,
  refreshSliceQueryRuns: 100,
  refreshSliceTransitions: 100,
  backgroundRefreshMs: 10_000,
  ...overrides,
});

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

describe("RefreshScheduler background sessions (fake clock)", () => {
  function setup(backgroundRefreshMs = 1_000) {
    let clock = 10_000;
    const served: string[] = [];
    let hold: Promise<void> | null = null;
    const scheduler = new RefreshScheduler({
      knobs: () => knobs({ refreshSliceQueryRuns: 1, backgroundRefreshMs }),
      exclusive: (fn) => fn(),
      turn: async (session) => {
        served.push(session.connectionId);
        if (hold) await hold;
        return { runs: 1, sent: true };
      },
      onError: () => undefined,
      now: () => clock,
      // Time passes on the fake clock while the scheduler pauses.
      pause: async (ms) => {
        clock += ms;
        await new Promise((r) => setImmediate(r));
      },
    });
    const session = (name: string, background: boolean, lastRefreshAt = 0) =>
      ({ connectionId: name, closed: false, background, lastRefreshAt }) as unknown as SyncSession;
    return {
      scheduler,
      served,
      session,
      tick: (ms: number) => (clock += ms),
      holdTurns: () => {
        let release: () => void = () => undefined;
        hold = new Promise((r) => (release = r));
        return () => ((hold = null), release());
      },
      idle: async () => {
        while (scheduler.waiting > 0) await new Promise((r) => setImmediate(r));
      },
    };
  }

  it("with nothing else queued, a background session is served at once", async () => {
    const { scheduler, served, session, idle } = setup();
    scheduler.schedule(session("bg", true, 9_900));
    await idle();
    expect(served).toEqual(["bg"]);
  });

  it("under pressure, foreground sessions go first and a background one waits for its interval, then gets its latest state once", async () => {
    const { scheduler, served, session, holdTurns, idle } = setup(1_000);
    const release = holdTurns();
    const foreground = [session("f1", false), session("f2", false), session("f3", false)];
    scheduler.schedule(foreground[0]!); // its turn is running: the queue now has pressure behind it
    scheduler.schedule(foreground[1]!);
    const bg = session("bg", true, 9_500); // refreshed 500 ms ago
    scheduler.schedule(bg);
    scheduler.schedule(bg); // dirtied again: still one turn
    scheduler.schedule(foreground[2]!);
    release();
    // The background session, dirtied before f3, waits aside while foreground sessions go first,
    // until its interval has passed; then it is served once, with its latest state.
    await idle();
    expect(served).toEqual(["f1", "f2", "f3", "bg"]);
  });

  it("under sustained pressure, a background session is refreshed once per interval", async () => {
    const { scheduler, served, session, tick, idle } = setup(1_000);
    const bg = session("bg", true, 10_000);
    let round = 0;
    // Foreground work keeps arriving every 100 ms of the fake clock for 3 s; the background session is dirtied each time too.
    for (let t = 0; t < 3_000; t += 100) {
      scheduler.schedule(session(`f${round}a`, false));
      scheduler.schedule(session(`f${round}b`, false));
      scheduler.schedule(bg);
      await new Promise((r) => setImmediate(r));
      tick(100);
      round++;
    }
    await idle();
    const backgroundTurns = served.filter((name) => name === "bg").length;
    expect(served.filter((name) => name !== "bg")).toHaveLength(60);
    expect(backgroundTurns).toBeGreaterThanOrEqual(2);
    expect(backgroundTurns).toBeLessThanOrEqual(4); // about once per 1,000 ms over 3 s (+ the final catch-up)
  });
});
