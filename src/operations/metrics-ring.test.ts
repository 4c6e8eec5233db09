import { describe, expect, it } from "vitest";
import { MetricsRing, type MetricsSample } from "./metrics-ring.ts";

const sample = (at: number): MetricsSample => ({
  at,
  sessions: at / 1_000,
  maxSessions: 10,
  waiting: 0,
  maxWaitingSessions: 10,
  oldestWaitMs: 0,
  refreshQueue: 0,
  refreshQueueLimit: 10,
  queryExecutions: 0,
  invalidations: 0,
  transitions: 0,
  commits: 0,
  admitted: 0,
  refused: 0,
  searchMemoryBytes: 0,
  searchMemoryBudgetBytes: 1,
  compactions: 0,
  signedIn: 0,
  tokensRefused: 0,
});

// A fake clock: every call takes `now`.
describe("MetricsRing", () => {
  it("samples at most once a second, and keeps the newest `capacity` oldest first", () => {
    let reads = 0;
    const ring = new MetricsRing((now) => (reads++, sample(now)), 3);
    for (let now = 0; now < 5_000; now += 250) ring.maybeSample(now);
    expect(reads).toBe(5);
    expect(ring.history().map((s) => s.at)).toEqual([2_000, 3_000, 4_000]);
  });

  it("leaves gaps for quiet periods instead of inventing samples", () => {
    const ring = new MetricsRing(sample, 10);
    ring.maybeSample(0);
    ring.maybeSample(60_000);
    expect(ring.history().map((s) => s.at)).toEqual([0, 60_000]);
  });
});
