import { describe, expect, it } from "vitest";
import { DeadlineWatch, type DeadlineTimers } from "./deadline-watch.ts";

/** Timers run by hand: `advance` moves the clock and fires what is due. */
function manualTimers() {
  let now = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  let next = 0;
  const timers: DeadlineTimers = {
    now: () => now,
    set: (fn, ms) => {
      pending.set(++next, { at: now + ms, fn });
      return next;
    },
    clear: (handle) => void pending.delete(handle as number),
  };
  return {
    timers,
    pending: () => pending.size,
    advance(ms: number) {
      now += ms;
      for (const [id, timer] of [...pending].sort((a, b) => a[1].at - b[1].at)) {
        if (timer.at > now) continue;
        pending.delete(id);
        timer.fn();
      }
    },
  };
}

describe("DeadlineWatch", () => {
  it("keeps one timer for runs that follow each other while the owner is busy, and puts it away once it is idle", () => {
    const clock = manualTimers();
    let busy = true;
    const watch = new DeadlineWatch(() => !busy, clock.timers);
    for (let run = 0; run < 100; run++) {
      const unwatch = watch.watch(1_000, () => expect.unreachable("no run reached its deadline"));
      clock.advance(1);
      unwatch();
    }
    expect(watch.armings).toBe(1);
    expect(clock.pending()).toBe(1);
    busy = false;
    watch.putAwayIfQuiet();
    expect(clock.pending()).toBe(0);
    // Idle, a run that ends takes the timer with it at once (nothing would put it away later).
    watch.watch(1_000, () => undefined)();
    expect(clock.pending()).toBe(0);
  });

  it("expires each run at its own deadline, the earliest first, and re-arms for the next", () => {
    const clock = manualTimers();
    const watch = new DeadlineWatch(() => false, clock.timers);
    const expired: string[] = [];
    watch.watch(600_000, () => expired.push("action"));
    watch.watch(1_000, () => expired.push("query"));
    clock.advance(500);
    const unwatch = watch.watch(1_000, () => expired.push("finished in time"));
    clock.advance(500);
    expect(expired).toEqual(["query"]);
    unwatch();
    clock.advance(599_000);
    expect(expired).toEqual(["query", "action"]);
    expect(clock.pending()).toBe(0);
  });

  it("an expiry that ends another run's watch or throws leaves the other deadlines intact", () => {
    const clock = manualTimers();
    const watch = new DeadlineWatch(() => false, clock.timers);
    const expired: string[] = [];
    let unwatchSecond = () => {};
    watch.watch(100, () => {
      expired.push("first");
      unwatchSecond();
    });
    unwatchSecond = watch.watch(100, () => expired.push("second"));
    watch.watch(100, () => {
      expired.push("third");
      throw new Error("a bug in an expiry");
    });
    watch.watch(500, () => expired.push("later"));
    expect(() => clock.advance(100)).toThrow("a bug in an expiry");
    expect(expired).toEqual(["first", "third"]);
    clock.advance(400);
    expect(expired).toEqual(["first", "third", "later"]);
  });
});
