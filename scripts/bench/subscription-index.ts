/**
 * Subscription index vs a naive scan: which subscriptions does a write hit?
 *
 * Each subscription is `messages:list` on one chat (newest 20 messages), so
 * its read-set is the by_chat interval from its 20th-newest key to the end of
 * the chat; ten subscribers per chat. Writes insert a message into a random
 * chat, half of them chats nobody watches.
 *
 * - index: `SubscriptionIndex.affected(write-set)`, keys taken from the write-set.
 * - naive: for every subscription, recompute the written document's key for
 *   each index the subscription read and test its intervals (the pre-fix
 *   Convex shape the postmortem describes).
 */
import {
  encodeKey,
  indexKeyOf,
  prefixSuccessor,
  SubscriptionIndex,
  newDocumentId,
  Schema,
  searchDocumentOf,
  searchReadMatches,
  tokenize,
  type Document,
  type IndexWrite,
  type KeyInterval,
  type SearchRead,
  type SearchWrite,
} from "../../src/engine/index.ts";
import chatSchema from "../../convex/schema.ts";
import { formatMicros, seeded, table, timeMs } from "./harness.ts";

const schema = new Schema(chatSchema);
const byChat = schema.table("messages").indexes.get("by_chat")!;
const WRITES = 10_000;
const SUBSCRIBERS_PER_CHAT = 10;

interface Subscription {
  id: number;
  readSet: Map<string, KeyInterval[]>;
}

function buildSubscriptions(count: number, baseTime: number): Subscription[] {
  const chats = Math.max(1, Math.floor(count / SUBSCRIBERS_PER_CHAT));
  const subscriptions: Subscription[] = [];
  for (let id = 0; id < count; id++) {
    const chat = `chat-${id % chats}`;
    const twentieth = encodeKey([chat, baseTime - 20, newDocumentId("messages")]);
    const interval = { start: twentieth, end: prefixSuccessor(encodeKey([chat])) };
    subscriptions.push({ id, readSet: new Map([[byChat.qualifiedName, [interval]]]) });
  }
  return subscriptions;
}

function buildWrites(count: number, chats: number, baseTime: number, rand: () => number): { doc: Document; writes: IndexWrite[] }[] {
  const out: { doc: Document; writes: IndexWrite[] }[] = [];
  for (let i = 0; i < count; i++) {
    const doc: Document = {
      _id: newDocumentId("messages"),
      _creationTime: baseTime + i,
      chatId: `chat-${Math.floor(rand() * chats * 2)}`,
      author: "a",
      body: "b",
    };
    // The write-set as the engine produces it: every index of the table, keys computed once.
    const writes = [...schema.table("messages").indexes.values()].map((index) => ({
      index: index.qualifiedName,
      id: doc._id,
      oldKey: null,
      newKey: indexKeyOf(index, doc),
    }));
    out.push({ doc, writes });
  }
  return out;
}

function naiveAffected(subscriptions: readonly Subscription[], doc: Document): number {
  let hits = 0;
  for (const subscription of subscriptions) {
    for (const [indexName, intervals] of subscription.readSet) {
      const key = indexKeyOf(schema.indexes.get(indexName)!, doc);
      if (intervals.some((iv) => iv.start <= key && (iv.end === null || key < iv.end))) {
        hits++;
        break;
      }
    }
  }
  return hits;
}

export function benchSubscriptionIndex(sizes = [1_000, 10_000, 100_000]): string {
  const rows: (string | number)[][] = [];
  for (const size of sizes) {
    const rand = seeded(size);
    const baseTime = 1_700_000_000_000;
    const subscriptions = buildSubscriptions(size, baseTime);
    const index = new SubscriptionIndex<number>();
    const addMs = timeMs(() => {
      for (const s of subscriptions) index.add(s.id, s.readSet);
    });
    const writes = buildWrites(WRITES, Math.max(1, Math.floor(size / SUBSCRIBERS_PER_CHAT)), baseTime, rand);

    let indexHits = 0;
    timeMs(() => writes.slice(0, 500).forEach((w) => index.affected(w.writes))); // warm-up
    const indexMs = timeMs(() => {
      for (const w of writes) indexHits += index.affected(w.writes).size;
    });

    // The naive scan is O(subscriptions) per write: sample enough writes for a stable mean.
    const naiveSample = Math.max(20, Math.min(WRITES, Math.floor(2_000_000 / size)));
    let naiveHits = 0;
    let sampleIndexHits = 0;
    const naiveMs = timeMs(() => {
      for (const w of writes.slice(0, naiveSample)) naiveHits += naiveAffected(subscriptions, w.doc);
    });
    for (const w of writes.slice(0, naiveSample)) sampleIndexHits += index.affected(w.writes).size;
    if (naiveHits !== sampleIndexHits) throw new Error(`index and naive disagree: ${sampleIndexHits} vs ${naiveHits}`);

    const indexPerWrite = indexMs / WRITES;
    const naivePerWrite = naiveMs / naiveSample;
    rows.push([
      size.toLocaleString("en-US"),
      formatMicros(addMs / size),
      formatMicros(indexPerWrite),
      `${formatMicros(naivePerWrite)} (${naiveSample} writes)`,
      `${Math.round(naivePerWrite / indexPerWrite).toLocaleString("en-US")}x`,
      (indexHits / WRITES).toFixed(1),
    ]);
    // Removing is cheap too; measure it on the way out.
    const removeMs = timeMs(() => {
      for (const s of subscriptions) index.remove(s.id);
    });
    rows[rows.length - 1]!.splice(2, 0, formatMicros(removeMs / size));
  }
  return table(["subscriptions", "add / sub", "remove / sub", "index: time / write", "naive scan: time / write", "naive ÷ index", "subs hit / write"], rows);
}

/**
 * Search subscriptions: which of N subscribed searches does a write hit?
 * Searches are spread over 1,000 chats (1-2 words each, half with a prefix);
 * each write is a message of 12 words into a random chat. "index" uses the
 * per-partition inverted maps; "naive" tests every search read against the
 * written document (tokenizing once per write, as the index does).
 */
export function benchSearchSubscriptions(sizes = [1_000, 10_000, 100_000]): string {
  const searchIndex = schema.table("messages").searchIndexes.get("search_body")!;
  const rows: (string | number)[][] = [];
  const vocabulary = Array.from({ length: 2_000 }, (_, i) => `w${i.toString(36)}x`);
  for (const size of sizes) {
    const rand = seeded(size + 1);
    const pick = () => vocabulary[Math.floor(rand() * vocabulary.length)]!;
    const chats = 1_000;
    const reads: { id: number; read: SearchRead }[] = [];
    for (let id = 0; id < size; id++) {
      const terms = [pick()];
      if (rand() < 0.5) terms.push(pick());
      const prefix = rand() < 0.5 ? terms.pop()!.slice(0, 3) : null;
      reads.push({ id, read: { index: searchIndex.qualifiedName, partition: encodeKey([`chat-${id % chats}`]), filters: [], terms, prefix } });
    }
    const index = new SubscriptionIndex<number>();
    for (const { id, read } of reads) index.add(id, new Map(), [read]);
    const writes: SearchWrite[] = Array.from({ length: 2_000 }, (_, i) => {
      const chat = `chat-${Math.floor(rand() * chats)}`;
      const doc: Document = { _id: `d${i}`, _creationTime: i, chatId: chat, author: "a", body: Array.from({ length: 12 }, pick).join(" ") };
      return { index: searchIndex.qualifiedName, id: doc._id, old: null, new: searchDocumentOf(searchIndex, doc), reindex: true };
    });
    let hits = 0;
    const indexMs = timeMs(() => {
      for (const write of writes) hits += index.affected([], [write]).size;
    });
    let naiveHits = 0;
    const naiveMs = timeMs(() => {
      for (const write of writes) {
        const version = write.new!;
        const terms = new Set(tokenize(version.text));
        const filterKeys = version.filters.map((value) => encodeKey([value]));
        for (const { read } of reads) if (searchReadMatches(read, version, terms, filterKeys)) naiveHits++;
      }
    });
    if (hits !== naiveHits) throw new Error(`search index and naive disagree: ${hits} vs ${naiveHits}`);
    rows.push([
      size.toLocaleString("en-US"),
      formatMicros(indexMs / writes.length),
      formatMicros(naiveMs / writes.length),
      `${Math.round(naiveMs / indexMs).toLocaleString("en-US")}x`,
      (hits / writes.length).toFixed(2),
    ]);
  }
  return table(["search subscriptions", "index: time / write", "naive: time / write", "naive ÷ index", "subs hit / write"], rows);
}
