/**
 * A set of key intervals answering "which intervals contain key k" in
 * O(log n + matches): a treap ordered by interval start, each node annotated
 * with the largest end in its subtree, so whole subtrees that end before k, or
 * start after it, are skipped.
 */
import type { IndexKey, KeyInterval } from "./keys.ts";

interface Node<T> {
  start: IndexKey;
  /** null: unbounded. */
  end: IndexKey | null;
  /** Tie-breaker so equal starts still have a total order; also the handle for removal. */
  seq: number;
  value: T;
  priority: number;
  left: Node<T> | null;
  right: Node<T> | null;
  /** Largest end in this subtree (null: unbounded). */
  maxEnd: IndexKey | null;
}

function maxEnd(a: IndexKey | null, b: IndexKey | null): IndexKey | null {
  if (a === null || b === null) return null;
  return a > b ? a : b;
}

function update<T>(node: Node<T>): Node<T> {
  let m = node.end;
  if (node.left) m = maxEnd(m, node.left.maxEnd);
  if (node.right) m = maxEnd(m, node.right.maxEnd);
  node.maxEnd = m;
  return node;
}

/** Whether (aStart, aSeq) sorts before (bStart, bSeq). */
function precedes(aStart: IndexKey, aSeq: number, bStart: IndexKey, bSeq: number): boolean {
  return aStart < bStart || (aStart === bStart && aSeq < bSeq);
}

/** Merges two treaps where every key of `a` precedes every key of `b`. */
function merge<T>(a: Node<T> | null, b: Node<T> | null): Node<T> | null {
  if (!a) return b;
  if (!b) return a;
  if (a.priority > b.priority) {
    a.right = merge(a.right, b);
    return update(a);
  }
  b.left = merge(a, b.left);
  return update(b);
}

/** Splits into keys before (start, seq) and the rest. */
function split<T>(node: Node<T> | null, start: IndexKey, seq: number): [Node<T> | null, Node<T> | null] {
  if (!node) return [null, null];
  if (precedes(node.start, node.seq, start, seq)) {
    const [l, r] = split(node.right, start, seq);
    node.right = l;
    return [update(node), r];
  }
  const [l, r] = split(node.left, start, seq);
  node.left = r;
  return [l, update(node)];
}

/** Handle returned by `insert`, needed to remove the interval. */
export interface IntervalHandle {
  readonly start: IndexKey;
  readonly seq: number;
}

export class IntervalTree<T> {
  private root: Node<T> | null = null;
  private nextSeq = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  insert(interval: KeyInterval, value: T): IntervalHandle {
    const node: Node<T> = {
      start: interval.start,
      end: interval.end,
      seq: this.nextSeq++,
      value,
      priority: Math.random(),
      left: null,
      right: null,
      maxEnd: interval.end,
    };
    const [l, r] = split(this.root, node.start, node.seq);
    this.root = merge(merge(l, node), r);
    this.count++;
    return { start: node.start, seq: node.seq };
  }

  remove(handle: IntervalHandle): boolean {
    const removed = { found: false };
    this.root = this.removeFrom(this.root, handle, removed);
    if (removed.found) this.count--;
    return removed.found;
  }

  private removeFrom(node: Node<T> | null, handle: IntervalHandle, removed: { found: boolean }): Node<T> | null {
    if (!node) return null;
    if (node.start === handle.start && node.seq === handle.seq) {
      removed.found = true;
      return merge(node.left, node.right);
    }
    if (precedes(handle.start, handle.seq, node.start, node.seq)) node.left = this.removeFrom(node.left, handle, removed);
    else node.right = this.removeFrom(node.right, handle, removed);
    return update(node);
  }

  /** Calls `visit` with the value of every interval containing `key`. */
  stab(key: IndexKey, visit: (value: T) => void): void {
    const walk = (node: Node<T> | null): void => {
      while (node) {
        if (node.maxEnd !== null && node.maxEnd <= key) return;
        walk(node.left);
        if (node.start > key) return;
        if (node.end === null || key < node.end) visit(node.value);
        node = node.right;
      }
    };
    walk(this.root);
  }
}
