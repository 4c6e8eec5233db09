import { describe, expect, it } from "vitest";
import { encodeKey, keySuccessor, normalizeIntervals, prefixSuccessor } from "./keys.ts";
import type { Value } from "./values.ts";
import { compareValues } from "convex/values";

/** The official client's total order over values is the oracle. */
function oracle(a: Value | undefined, b: Value | undefined): number {
  return compareValues(a as never, b as never);
}

function seeded(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

function randomValue(rand: () => number, depth = 0): Value | undefined {
  const kind = Math.floor(rand() * (depth > 1 ? 7 : 9));
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!;
  switch (kind) {
    case 0:
      return null;
    case 1:
      return pick([0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 255n, 256n, -256n]);
    case 2:
      return pick([0, -0, 1, -1, 0.5, -0.5, 1e300, -1e300, Infinity, -Infinity, NaN, 5e-324]);
    case 3:
      return rand() < 0.5;
    case 4:
      return pick(["", "a", "ab", "a\u0000", "a\u0000b", "b", "\u00ff", "é", "\u{1F600}", "\uffff", "a\u0001"]);
    case 5:
      return new Uint8Array(pick([[], [0], [0, 0], [0, 1], [1], [255], [255, 0]])).buffer;
    case 6:
      return undefined;
    case 7:
      return Array.from({ length: Math.floor(rand() * 3) }, () => randomValue(rand, depth + 1) ?? null);
    default: {
      const out: Record<string, Value> = {};
      for (let i = 0; i < Math.floor(rand() * 3); i++) out[pick(["a", "b", "ab", "é"])] = randomValue(rand, depth + 1) ?? null;
      return out;
    }
  }
}

describe("encodeKey", () => {
  it("orders single values like the convex package's compareValues (randomized)", () => {
    const rand = seeded(42);
    for (let i = 0; i < 5000; i++) {
      const a = randomValue(rand);
      const b = randomValue(rand);
      const expected = Math.sign(oracle(a, b));
      const ka = encodeKey([a]);
      const kb = encodeKey([b]);
      expect(Math.sign(ka < kb ? -1 : ka > kb ? 1 : 0), `${String(a)} vs ${String(b)}`).toBe(expected);
    }
  });

  it("orders tuples lexicographically", () => {
    const rand = seeded(7);
    for (let i = 0; i < 2000; i++) {
      const a = [randomValue(rand), randomValue(rand)];
      const b = [randomValue(rand), randomValue(rand)];
      const expected = Math.sign(oracle(a[0], b[0]) || oracle(a[1], b[1]));
      const ka = encodeKey(a);
      const kb = encodeKey(b);
      expect(Math.sign(ka < kb ? -1 : ka > kb ? 1 : 0)).toBe(expected);
    }
  });

  it("puts types in the documented order", () => {
    const ordered: (Value | undefined)[] = [undefined, null, -5n, 3n, -Infinity, 0, NaN, false, true, "", "z", new ArrayBuffer(0), [], {}];
    const keys = ordered.map((v) => encodeKey([v]));
    expect([...keys].sort()).toEqual(keys);
  });

  it("keeps only byte-sized code units", () => {
    const key = encodeKey(["\u{1F600}é", 1.5, -3n]);
    for (let i = 0; i < key.length; i++) expect(key.charCodeAt(i)).toBeLessThan(256);
  });
});

describe("successors", () => {
  it("keySuccessor is the next key", () => {
    const k = encodeKey(["a"]);
    expect(keySuccessor(k) > k).toBe(true);
    expect(encodeKey(["a", null]) > keySuccessor(k)).toBe(true);
  });

  it("prefixSuccessor bounds exactly the keys with that prefix", () => {
    const p = encodeKey(["chat"]);
    const end = prefixSuccessor(p)!;
    expect(encodeKey(["chat", 1, "zzzz"]) < end).toBe(true);
    expect(encodeKey(["chat\u0000"]) >= end).toBe(true);
    expect(encodeKey(["chaT"]) < p).toBe(true);
    expect(prefixSuccessor("")).toBeNull();
    expect(prefixSuccessor("a\xff\xff")).toBe("b");
  });
});

describe("normalizeIntervals", () => {
  it("merges overlapping and touching intervals and drops empty ones", () => {
    expect(
      normalizeIntervals([
        { start: "c", end: "d" },
        { start: "a", end: "b" },
        { start: "b", end: "bb" },
        { start: "x", end: "x" },
        { start: "e", end: null },
        { start: "f", end: "g" },
      ]),
    ).toEqual([
      { start: "a", end: "bb" },
      { start: "c", end: "d" },
      { start: "e", end: null },
    ]);
  });
});
