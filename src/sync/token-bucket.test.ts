import { describe, expect, it } from "vitest";
import { TokenBucket } from "./token-bucket.ts";

// Every call takes the time explicitly: these run on a fake clock, never the wall clock.
describe("TokenBucket", () => {
  it("starts full, refills at its rate up to its burst, and says how long to wait", () => {
    const bucket = new TokenBucket(
      () => 10,
      () => 5,
      0,
    );
    for (let i = 0; i < 5; i++) expect(bucket.take(0)).toBe(true);
    expect(bucket.take(0)).toBe(false);
    expect(bucket.waitMs(0)).toBe(100);
    expect(bucket.take(99)).toBe(false);
    expect(bucket.take(100)).toBe(true);
    // A long quiet period refills only to the burst.
    expect(bucket.waitMs(60_000, 5)).toBe(0);
    expect(bucket.take(60_000, 6)).toBe(false);
    expect(bucket.take(60_000, 5)).toBe(true);
  });

  it("spend goes into debt, and waitMs(now, 0) is how long until the debt is paid", () => {
    const bucket = new TokenBucket(
      () => 1_000,
      () => 1_000,
      0,
    );
    bucket.spend(0, 3_000);
    expect(bucket.waitMs(0, 0)).toBe(2_000);
    expect(bucket.waitMs(1_500, 0)).toBe(500);
    expect(bucket.waitMs(2_000, 0)).toBe(0);
  });

  it("reads rate and burst on every call, so a knob change applies at once", () => {
    let rate = 1;
    const bucket = new TokenBucket(
      () => rate,
      () => 100,
      0,
    );
    bucket.spend(0, 100);
    expect(bucket.waitMs(0, 10)).toBe(10_000);
    rate = 10;
    expect(bucket.waitMs(0, 10)).toBe(1_000);
  });
});
