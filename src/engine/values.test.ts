import { describe, expect, it } from "vitest";
import * as official from "convex/values";
import { convexToJson, jsonToConvex, nestedDeeperThan, utf8Length, valueSize, valuesEqual, ValueError, type Value } from "./values.ts";

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

describe("sizes and depth (the budgets' measures)", () => {
  it("utf8Length agrees with TextEncoder, surrogate pairs included", () => {
    const random = seededStrings();
    for (const text of ["", "abc", "é", "€", "\u{1F600}", "a€\u{1F600}é", ...random])
      expect(utf8Length(text), JSON.stringify(text.slice(0, 8))).toBe(new TextEncoder().encode(text).length);
  });

  it("valueSize is close to the encoded JSON's UTF-8 size for strings and structures", () => {
    const value = { body: "€".repeat(1_000), list: ["a", "b", { c: "d" }], n: 1, ok: true };
    const exact = new TextEncoder().encode(JSON.stringify(convexToJson(value))).length;
    const estimate = valueSize(value, 64);
    expect(Math.abs(estimate - exact) / exact).toBeLessThan(0.05);
  });

  it("a value nested 5,000 levels is a ValueError in every codec, never a stack overflow", () => {
    let json: unknown = "bottom";
    for (let i = 0; i < 5_000; i++) json = { d: json };
    expect(() => jsonToConvex(json)).toThrow(ValueError);
    expect(() => jsonToConvex(json)).toThrow(/nested more than 64 levels/);
    expect(() => convexToJson(json as Value)).toThrow(ValueError);
    expect(() => valueSize(json as Value, 64)).toThrow(ValueError);
    expect(nestedDeeperThan(json, 64)).toBe(true);
  });

  it("64 levels are allowed and 65 are not (Convex's limit)", () => {
    const nest = (levels: number) => {
      let value: unknown = 1;
      for (let i = 0; i < levels; i++) value = [value];
      return value;
    };
    expect(() => jsonToConvex(nest(64))).not.toThrow();
    expect(() => jsonToConvex(nest(65))).toThrow(/nested more than 64/);
    expect(nestedDeeperThan(nest(64), 64)).toBe(false);
    expect(nestedDeeperThan(nest(65), 64)).toBe(true);
  });

  it("a field named __proto__ stays a field and leaves the prototype alone", () => {
    const decoded = jsonToConvex(JSON.parse('{"__proto__": {"polluted": true}, "a": 1}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(Object.hasOwn(decoded, "__proto__")).toBe(true);
    expect((decoded as { polluted?: boolean }).polluted).toBeUndefined();
  });
});

function seededStrings(): string[] {
  let seed = 7;
  const next = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31);
  return Array.from({ length: 200 }, () => {
    let text = "";
    for (let i = 0; i < 20; i++) {
      const pick = next() % 4;
      text += pick === 0 ? "a" : pick === 1 ? "é" : pick === 2 ? "€" : String.fromCodePoint(0x1f600 + (next() % 50));
    }
    // A lone surrogate too: UTF-8 encoders write it as 3 bytes (U+FFFD).
    return next() % 10 === 0 ? text + "\ud800" : text;
  });
}
