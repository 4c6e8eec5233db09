import { describe, expect, it } from "vitest";
import { ByteBudgetLru } from "./byte-budget-lru.ts";

function lru(budget: { bytes: number }, maxEntryShare?: number) {
  const evicted: string[] = [];
  const cache = new ByteBudgetLru<string, { bytes: number }>({
    budgetBytes: () => budget.bytes,
    sizeOf: (value) => value.bytes,
    onEvict: (key) => evicted.push(key),
    ...(maxEntryShare ? { maxEntryShare } : {}),
  });
  return { cache, evicted };
}

describe("ByteBudgetLru", () => {
  it("evicts least recently used entries past the budget, never the one just stored", () => {
    const { cache, evicted } = lru({ bytes: 400 });
    for (const key of ["a", "b", "c"]) cache.set(key, { bytes: 100 });
    cache.get("a");
    cache.set("d", { bytes: 100 });
    cache.set("e", { bytes: 100 });
    expect(evicted).toEqual(["b"]);
    expect(cache.bytes).toBe(400);
    expect(cache.evictions).toBe(1);
  });

  it("never holds an entry over its share of the budget, and evicts nothing for one", () => {
    const { cache, evicted } = lru({ bytes: 400 }, 4);
    cache.set("a", { bytes: 100 });
    // The finding: a 38 MB result held against a 16 MB budget. Now refused.
    expect(cache.set("huge", { bytes: 101 })).toBe(false);
    expect(cache.get("huge")).toBeUndefined();
    expect(evicted).toEqual([]);
    expect(cache.bytes).toBe(100);
  });

  it("applies a budget lowered at runtime on the next change, and keeps sizes current with resize", () => {
    const budget = { bytes: 400 };
    const { cache, evicted } = lru(budget);
    const growing = { bytes: 50 };
    cache.set("grows", growing);
    cache.set("other", { bytes: 100 });
    growing.bytes = 250;
    cache.resize("grows");
    expect(cache.bytes).toBe(350);
    budget.bytes = 300;
    // In use: "grows" is kept even though it is the coldest; "other" goes.
    cache.fitBudget("grows");
    expect(evicted).toEqual(["other"]);
    expect(cache.bytes).toBe(250);
    cache.delete("grows");
    expect(cache.bytes).toBe(0);
  });
});
