/**
 * Finds the subscriptions a commit affects.
 *
 * Index reads: one interval tree per index holds every subscription's read
 * intervals; each written key (old and new, from the commit's write-set,
 * computed at write time) is a stab query on its index's tree. Cost per
 * written key is O(log n + matches); nothing scans all subscriptions and no
 * key is recomputed.
 *
 * Search reads: per (search index, partition), an inverted map from exact
 * terms and from prefixes to subscriptions. A written document version is
 * tokenized once; only its own partition is consulted, and every candidate is
 * then checked precisely (all filters equal, a term or the prefix present), so
 * writes to other partitions or with unrelated words touch nothing.
 */
import { IntervalTree, type IntervalHandle } from "./interval-tree.ts";
import type { ReadSet } from "./read-set.ts";
import type { IndexWrite } from "./store.ts";
import { encodeKey, type IndexKey } from "./keys.ts";
import { searchReadMatches, tokenize, type SearchDocument, type SearchRead, type SearchWrite } from "./search.ts";

interface SearchPartition<S> {
  exact: Map<string, Set<S>>;
  prefixes: Map<string, Set<S>>;
  /** Searches with no terms at all: every document in the partition matches them. */
  termless: Set<S>;
}

interface Entry {
  intervals: { index: string; handle: IntervalHandle }[];
  search: SearchRead[];
}

function addTo<K, S>(map: Map<K, Set<S>>, key: K, subscription: S): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(subscription);
}

function removeFrom<K, S>(map: Map<K, Set<S>>, key: K, subscription: S): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(subscription);
  if (set.size === 0) map.delete(key);
}

export class SubscriptionIndex<S> {
  private trees = new Map<string, IntervalTree<S>>();
  /** Search index -> partition -> inverted term maps. */
  private searches = new Map<string, Map<IndexKey, SearchPartition<S>>>();
  private entries = new Map<S, Entry>();

  /** Number of subscriptions held. */
  get size(): number {
    return this.entries.size;
  }

  has(subscription: S): boolean {
    return this.entries.has(subscription);
  }

  /** Adds `subscription` with its reads, replacing any it had. */
  add(subscription: S, readSet: ReadSet, searchReads: readonly SearchRead[] = []): void {
    this.remove(subscription);
    const entry: Entry = { intervals: [], search: [...searchReads] };
    for (const [index, intervals] of readSet) {
      let tree = this.trees.get(index);
      if (!tree) this.trees.set(index, (tree = new IntervalTree<S>()));
      for (const interval of intervals) entry.intervals.push({ index, handle: tree.insert(interval, subscription) });
    }
    for (const read of searchReads) {
      const partition = this.searchPartition(read.index, read.partition, true)!;
      for (const term of read.terms) addTo(partition.exact, term, subscription);
      if (read.prefix !== null) addTo(partition.prefixes, read.prefix, subscription);
      if (read.terms.length === 0 && read.prefix === null) partition.termless.add(subscription);
    }
    this.entries.set(subscription, entry);
  }

  remove(subscription: S): boolean {
    const entry = this.entries.get(subscription);
    if (!entry) return false;
    for (const { index, handle } of entry.intervals) {
      const tree = this.trees.get(index)!;
      tree.remove(handle);
      if (tree.size === 0) this.trees.delete(index);
    }
    for (const read of entry.search) {
      const partition = this.searchPartition(read.index, read.partition, false);
      if (!partition) continue;
      for (const term of read.terms) removeFrom(partition.exact, term, subscription);
      if (read.prefix !== null) removeFrom(partition.prefixes, read.prefix, subscription);
      partition.termless.delete(subscription);
      if (partition.exact.size === 0 && partition.prefixes.size === 0 && partition.termless.size === 0) {
        this.searches.get(read.index)!.delete(read.partition);
      }
    }
    this.entries.delete(subscription);
    return true;
  }

  private searchPartition(index: string, partition: IndexKey, create: boolean): SearchPartition<S> | undefined {
    let partitions = this.searches.get(index);
    if (!partitions) {
      if (!create) return undefined;
      this.searches.set(index, (partitions = new Map()));
    }
    let found = partitions.get(partition);
    if (!found && create) partitions.set(partition, (found = { exact: new Map(), prefixes: new Map(), termless: new Set() }));
    return found;
  }

  /**
   * Subscriptions whose reads contain any old or new key in `writes`, or whose searches match a written version,
   * or that read anything of `tables` (rewritten wholesale: one pass over the subscriptions, not over the documents).
   */
  affected(writes: readonly IndexWrite[], searchWrites: readonly SearchWrite[] = [], tables: readonly string[] = []): Set<S> {
    const hit = new Set<S>();
    const add = (s: S) => hit.add(s);
    if (tables.length > 0) {
      const prefixes = tables.map((table) => `${table}.`);
      const ofTables = (index: string) => prefixes.some((prefix) => index.startsWith(prefix));
      for (const [subscription, entry] of this.entries) {
        if (entry.intervals.some(({ index }) => ofTables(index)) || entry.search.some(({ index }) => ofTables(index))) hit.add(subscription);
      }
    }
    for (const write of writes) {
      const tree = this.trees.get(write.index);
      if (!tree) continue;
      if (write.oldKey !== null) tree.stab(write.oldKey, add);
      if (write.newKey !== null && write.newKey !== write.oldKey) tree.stab(write.newKey, add);
    }
    for (const write of searchWrites) {
      const partitions = this.searches.get(write.index);
      if (!partitions) continue;
      for (const version of [write.old, write.new]) if (version) this.matchSearch(partitions, write.index, version, hit);
    }
    return hit;
  }

  private matchSearch(partitions: Map<IndexKey, SearchPartition<S>>, index: string, version: SearchDocument, hit: Set<S>): void {
    const partition = partitions.get(version.partition);
    if (!partition) return;
    const terms = new Set(tokenize(version.text));
    const candidates = new Set<S>(partition.termless);
    for (const term of terms) for (const s of partition.exact.get(term) ?? []) candidates.add(s);
    for (const [prefix, subscriptions] of partition.prefixes) {
      for (const term of terms) {
        if (term.startsWith(prefix)) {
          for (const s of subscriptions) candidates.add(s);
          break;
        }
      }
    }
    if (candidates.size === 0) return;
    const filterKeys = version.filters.map((value) => encodeKey([value]));
    for (const candidate of candidates) {
      if (hit.has(candidate)) continue;
      const reads = this.entries.get(candidate)!.search;
      if (reads.some((read) => read.index === index && searchReadMatches(read, version, terms, filterKeys))) hit.add(candidate);
    }
  }
}
