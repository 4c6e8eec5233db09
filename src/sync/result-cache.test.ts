import { describe, expect, it } from "vitest";
import { ResultCache } from "./result-cache.ts";

describe("ResultCache", () => {
  it("evicts least recently used entries past the budget, never the one just stored", () => {
    const dropped: string[] = [];
    const cache = new ResultCache<string>(() => 400, (item) => dropped.push(item));
    expect(cache.store("a", 100)).toBe(true);
    cache.store("b", 100);
    cache.store("c", 100);
    cache.touch("a");
    cache.store("d", 100);
    cache.store("e", 100);
    expect(dropped).toEqual(["b"]);
    expect(cache.bytes).toBe(400);
  });

  it("never holds an entry larger than a quarter of its budget, and evicts nothing for one", () => {
    const dropped: string[] = [];
    const cache = new ResultCache<string>(() => 400, (item) => dropped.push(item));
    cache.store("a", 100);
    // The finding: a 38 MB result was held against a 16 MB budget. Now it is refused.
    expect(cache.store("huge", 38)).toBe(true);
    expect(cache.store("huge", 101)).toBe(false);
    expect(dropped).toEqual([]);
    expect(cache.bytes).toBe(100);
    // A budget lowered at runtime applies to the next store.
    const shrinking = { budget: 400 };
    const live = new ResultCache<string>(() => shrinking.budget, (item) => dropped.push(item));
    live.store("x", 100);
    shrinking.budget = 120;
    expect(live.store("y", 100)).toBe(false);
    expect(live.store("z", 30)).toBe(true);
    expect(dropped).toEqual(["x"]);
    expect(live.bytes).toBe(30);
  });
});
