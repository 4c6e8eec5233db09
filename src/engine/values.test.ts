import { describe, expect, it } from "vitest";
import * as official from "convex/values";
import { convexToJson, jsonToConvex, valuesEqual, type Value } from "./values.ts";

const samples: Value[] = [
  null,
  true,
  false,
  0,
  1.5,
  -2,
  -0,
  NaN,
  Infinity,
  -Infinity,
  0n,
  -1n,
  2n ** 63n - 1n,
  -(2n ** 63n),
  "",
  "héllo \u{1F600}",
  new Uint8Array([0, 1, 2, 255]).buffer,
  [1, "a", [null, 2n]],
  { b: 1, a: { nested: [true, 3n] }, c: new Uint8Array([9]).buffer },
];

describe("Convex JSON encoding", () => {
  it("matches the official convex package byte for byte", () => {
    for (const value of samples) {
      expect(JSON.stringify(convexToJson(value))).toBe(JSON.stringify(official.convexToJson(value as official.Value)));
    }
  });

  it("decodes what the official package encodes", () => {
    for (const value of samples) {
      const decoded = jsonToConvex(official.convexToJson(value as official.Value));
      expect(valuesEqual(decoded, value)).toBe(true);
    }
  });

  it("rejects out-of-range int64 and reserved field names with a clear message", () => {
    expect(() => convexToJson(2n ** 63n)).toThrow(/does not fit into a 64-bit signed integer/);
    expect(() => convexToJson({ $bad: 1 })).toThrow(/starts with '\$'/);
    expect(() => jsonToConvex({ $float: official.convexToJson(1.5 as never) })).toThrow();
    expect(() => jsonToConvex({ $integer: "AAAA" })).toThrow(/must be 8 bytes/);
    expect(() => jsonToConvex({ $set: [] })).toThrow(/Unsupported special value/);
  });

  it("drops undefined fields like the official client", () => {
    expect(convexToJson({ a: undefined, b: 1 })).toEqual({ b: 1 });
  });
});

describe("valuesEqual", () => {
  it("distinguishes -0 from 0 and int64 from float64", () => {
    expect(valuesEqual(0, -0)).toBe(false);
    expect(valuesEqual(1n, 1 as Value)).toBe(false);
    expect(valuesEqual(NaN, NaN)).toBe(true);
    expect(valuesEqual({ a: [1, 2] }, { a: [1, 2] })).toBe(true);
    expect(valuesEqual({ a: [1, 2] }, { a: [1, 3] })).toBe(false);
  });
});
