/**
 * Finds the subscriptions a commit affects: one interval tree per index holds
 * every subscription's read intervals; each written key (old and new, from the
 * commit's write-set, computed at write time) is a stab query on its index's
 * tree. Cost per written key is O(log n + matches); nothing scans all
 * subscriptions and no key is recomputed.
 */
import { IntervalTree, type IntervalHandle } from "./interval-tree.ts";
import type { ReadSet } from "./read-set.ts";
import type { IndexWrite } from "./store.ts";

export class SubscriptionIndex<S> {
  private trees = new Map<string, IntervalTree<S>>();
  private entries = new Map<S, { index: string; handle: IntervalHandle }[]>();

  /** Number of subscriptions held. */
  get size(): number {
    return this.entries.size;
  }

  has(subscription: S): boolean {
    return this.entries.has(subscription);
  }

  /** Adds `subscription` with `readSet`, replacing any read-set it had. */
  add(subscription: S, readSet: ReadSet): void {
    this.remove(subscription);
    const handles: { index: string; handle: IntervalHandle }[] = [];
    for (const [index, intervals] of readSet) {
      let tree = this.trees.get(index);
      if (!tree) this.trees.set(index, (tree = new IntervalTree<S>()));
      for (const interval of intervals) handles.push({ index, handle: tree.insert(interval, subscription) });
    }
    this.entries.set(subscription, handles);
  }

  remove(subscription: S): boolean {
    const handles = this.entries.get(subscription);
    if (!handles) return false;
    for (const { index, handle } of handles) {
      const tree = this.trees.get(index)!;
      tree.remove(handle);
      if (tree.size === 0) this.trees.delete(index);
    }
    this.entries.delete(subscription);
    return true;
  }

  /** Subscriptions whose read-set contains any old or new key in `writes`. */
  affected(writes: readonly IndexWrite[]): Set<S> {
    const hit = new Set<S>();
    const add = (s: S) => hit.add(s);
    for (const write of writes) {
      const tree = this.trees.get(write.index);
      if (!tree) continue;
      if (write.oldKey !== null) tree.stab(write.oldKey, add);
      if (write.newKey !== null && write.newKey !== write.oldKey) tree.stab(write.newKey, add);
    }
    return hit;
  }
}
