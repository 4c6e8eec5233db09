import { describe, expect, it } from "vitest";
import { SubscriptionIndex } from "./subscription-index.ts";
import { encodeKey, normalizeIntervals, type KeyInterval } from "./keys.ts";
import type { IndexWrite } from "./store.ts";

function seeded(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

describe("SubscriptionIndex", () => {
  it("finds exactly the subscriptions a naive scan finds, through adds and removes (randomized)", () => {
    const rand = seeded(1);
    const key = () => encodeKey([Math.floor(rand() * 200)]);
    const index = new SubscriptionIndex<number>();
    const live = new Map<number, Map<string, KeyInterval[]>>();
    for (let step = 0; step < 3000; step++) {
      const action = rand();
      if (action < 0.45) {
        const id = Math.floor(rand() * 300);
        const readSet = new Map<string, KeyInterval[]>();
        for (let i = 0; i < 1 + Math.floor(rand() * 3); i++) {
          const indexName = rand() < 0.5 ? "t.a" : "t.b";
          const [x, y] = [key(), key()].sort();
          const interval = { start: x!, end: rand() < 0.1 ? null : y! };
          readSet.set(indexName, normalizeIntervals([...(readSet.get(indexName) ?? []), interval]));
        }
        index.add(id, readSet);
        live.set(id, readSet);
      } else if (action < 0.6) {
        const id = Math.floor(rand() * 300);
        expect(index.remove(id)).toBe(live.delete(id));
      } else {
        const writes: IndexWrite[] = [{ index: rand() < 0.5 ? "t.a" : "t.b", id: "x", oldKey: rand() < 0.5 ? key() : null, newKey: key() }];
        const naive = new Set<number>();
        for (const [id, readSet] of live) {
          for (const w of writes) {
            for (const k of [w.oldKey, w.newKey]) {
              if (k === null) continue;
              for (const iv of readSet.get(w.index) ?? []) if (iv.start <= k && (iv.end === null || k < iv.end)) naive.add(id);
            }
          }
        }
        expect(index.affected(writes)).toEqual(naive);
      }
      expect(index.size).toBe(live.size);
    }
  });

  it("replaces a subscription's read-set on re-add", () => {
    const index = new SubscriptionIndex<string>();
    const a = encodeKey(["a"]);
    const b = encodeKey(["b"]);
    index.add("s", new Map([["t.i", [{ start: a, end: b }]]]));
    index.add("s", new Map([["t.i", [{ start: b, end: null }]]]));
    expect(index.affected([{ index: "t.i", id: "x", oldKey: null, newKey: a }]).size).toBe(0);
    expect(index.affected([{ index: "t.i", id: "x", oldKey: null, newKey: encodeKey(["c"]) }])).toEqual(new Set(["s"]));
  });
});
