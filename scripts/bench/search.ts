/**
 * Search benchmarks (plain Node, the same code the Durable Object runs):
 * indexing throughput, query latency (exact and prefix), cold load of a
 * 10,000-message partition from snapshot + log, compaction time, and how many
 * messages one deployment keeps searchable within the memory budget.
 */
import { encodeKey, Schema, type SearchDocument, type SearchRequest } from "../../src/engine/index.ts";
import chatSchema from "../../convex/schema.ts";
import { PartitionIndex, SNAPSHOT_FORMAT } from "../../src/search/partition-index.ts";
import { SearchIndexes } from "../../src/search/search-indexes.ts";
import { MemorySearchStorage } from "../../src/search/storage.ts";
import { compactSearchIndexes } from "../../src/search/compactor.ts";
import { splitIntoChunks } from "../../src/search/chunks.ts";
import { percentile, seeded, table, timeMs } from "./harness.ts";

const schema = new Schema(chatSchema);
const index = schema.table("messages").searchIndexes.get("search_body")!;

/** A Zipf-like vocabulary of 5,000 made-up words. */
function makeVocabulary(rand: () => number): string[] {
  const syllables = ["ka", "lo", "mi", "ner", "sta", "qu", "ro", "ti", "van", "ze", "pra", "dol", "fin", "gu", "hex"];
  const words = new Set<string>();
  while (words.size < 5_000) words.add(Array.from({ length: 2 + Math.floor(rand() * 3) }, () => syllables[Math.floor(rand() * syllables.length)]).join(""));
  return [...words];
}

function zipfPicker(vocabulary: string[], rand: () => number): () => string {
  const weights = vocabulary.map((_, i) => 1 / (i + 1) ** 1.07);
  const cumulative: number[] = [];
  let sum = 0;
  for (const w of weights) cumulative.push((sum += w));
  return () => {
    const target = rand() * sum;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! < target) lo = mid + 1;
      else hi = mid;
    }
    return vocabulary[lo]!;
  };
}

function message(pick: () => string, rand: () => number): string {
  return Array.from({ length: 8 + Math.floor(rand() * 25) }, pick).join(" ");
}

function doc(chat: string, text: string, creationTime: number): SearchDocument {
  return { partition: encodeKey([chat]), text, filters: [chat], creationTime };
}

const fmt = (ms: number) => (ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`);

export function benchSearch(): string {
  const rand = seeded(7);
  const vocabulary = makeVocabulary(rand);
  const pick = zipfPicker(vocabulary, rand);
  const out: string[] = [];

  // 1. Indexing throughput and query latency on one 10,000-message partition.
  const partition = PartitionIndex.empty(1);
  const docs = Array.from({ length: 10_000 }, (_, i) => doc("hot", message(pick, rand), 1e12 + i));
  const addMs = timeMs(() => docs.forEach((d, i) => partition.add(`id${i}`, d)));
  const queries = (prefix: boolean, length?: number) =>
    Array.from({ length: 1_000 }, () => {
      const terms = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => vocabulary[100 + Math.floor(rand() * 2_000)]!);
      const last = terms.pop()!;
      return { terms, prefix: prefix ? last.slice(0, length ?? last.length) : null, exactLast: prefix ? null : last };
    });
  const latency = (qs: ReturnType<typeof queries>) => {
    const times: number[] = [];
    for (const q of qs) {
      const terms = q.exactLast ? [...q.terms, q.exactLast] : q.terms;
      times.push(timeMs(() => partition.search(terms, q.prefix, [], 10)));
    }
    times.sort((a, b) => a - b);
    return `${fmt(percentile(times, 50))} / ${fmt(percentile(times, 99))}`;
  };
  out.push(
    table(
      ["10,000-message partition", "result"],
      [
        ["indexing (add)", `${Math.round(10_000 / (addMs / 1000)).toLocaleString("en-US")} messages/s`],
        ["query p50 / p99, exact terms", latency(queries(false))],
        ["query p50 / p99, last term a full-word prefix", latency(queries(true))],
        ["query p50 / p99, last term a 3-letter prefix", latency(queries(true, 3))],
      ],
    ),
  );

  // 2. Cold load (snapshot of 9,000 + log of 1,000) and compaction, through SearchIndexes.
  const storage = new MemorySearchStorage();
  const indexes = new SearchIndexes({ schema, storage, budgetBytes: () => 64 * 1_048_576, documents: () => [] });
  const key = encodeKey(["hot"]);
  const writes = docs.map((d, i) => ({ index: index.qualifiedName, id: `id${i}`, old: null, new: d, reindex: true }));
  indexes.recordWrites(writes.slice(0, 9_000));
  const compaction = { minLogEntries: 1, minLogBytes: 0, budgetDocuments: Infinity, maxChunkBytes: 1_900_000, maxFailures: 3 };
  const compactMs = timeMs(() => compactSearchIndexes(indexes, compaction));
  indexes.recordWrites(writes.slice(9_000));
  indexes.unloadAll();
  const request: SearchRequest = { index, partition: key, filters: [], terms: [vocabulary[150]!], prefix: null, limit: 10 };
  const coldMs = timeMs(() => indexes.search(request));
  const warmMs = timeMs(() => indexes.search(request));
  const meta = storage.meta(index.qualifiedName, key)!;
  const snapshotBytes = storage.readSnapshot(meta).reduce((n, c) => n + c.length, 0);
  out.push(
    table(
      ["snapshot + log", "result"],
      [
        ["compaction of 9,000 messages (serialize + chunk + swap)", fmt(compactMs)],
        ["snapshot size", `${(snapshotBytes / 1_048_576).toFixed(1)} MB in ${storage.readSnapshot(meta).length} chunk(s)`],
        ["cold load: snapshot of 9,000 + log of 1,000, then first search", fmt(coldMs)],
        ["same search, warm", fmt(warmMs)],
        ["estimated heap of the loaded partition", `${(indexes.memoryBytes / 1_048_576).toFixed(1)} MB`],
      ],
    ),
  );

  // 3. 1,000 chats x 1,000 messages searchable within the memory budget.
  const chats = 1_000;
  const perChat = 1_000;
  const budgetMB = 32;
  const big = new MemorySearchStorage();
  const buildMs = timeMs(() => {
    for (let c = 0; c < chats; c++) {
      const chat = `chat${c}`;
      const p = PartitionIndex.empty(1);
      const entries = [];
      for (let i = 0; i < perChat; i++) {
        const d = doc(chat, message(pick, rand), 1e12 + i);
        p.add(`${c}-${i}`, d);
        entries.push({ id: `${c}-${i}`, old: null, new: d });
      }
      big.appendLog(index.qualifiedName, d0(chat), entries.slice(0, 1));
      const m = big.meta(index.qualifiedName, d0(chat))!;
      big.writeSnapshot(m, splitIntoChunks(p.serialize(), 1_900_000), m.lastLsn, SNAPSHOT_FORMAT);
    }
  });
  function d0(chat: string) {
    return encodeKey([chat]);
  }
  const deployment = new SearchIndexes({ schema, storage: big, budgetBytes: () => budgetMB * 1_048_576, documents: () => [] });
  const times: number[] = [];
  let peak = 0;
  for (let q = 0; q < 2_000; q++) {
    const chat = `chat${Math.floor(rand() * chats)}`;
    times.push(
      timeMs(() =>
        deployment.search({
          index,
          partition: encodeKey([chat]),
          filters: [],
          terms: [vocabulary[100 + Math.floor(rand() * 1_000)]!],
          prefix: null,
          limit: 10,
        }),
      ),
    );
    peak = Math.max(peak, deployment.memoryBytes);
  }
  times.sort((a, b) => a - b);
  out.push(
    table(
      [`${chats.toLocaleString("en-US")} chats x ${perChat.toLocaleString("en-US")} messages, ${budgetMB} MB budget`, "result"],
      [
        ["messages searchable", (chats * perChat).toLocaleString("en-US")],
        ["building every partition's snapshot (setup, not served)", `${(buildMs / 1000).toFixed(1)} s`],
        ["2,000 searches over random chats: p50 / p99", `${fmt(percentile(times, 50))} / ${fmt(percentile(times, 99))}`],
        [
          "partitions loaded at the end / loads / unloads",
          `${deployment.loadedPartitions} / ${deployment.counters.partitionLoads} / ${deployment.counters.partitionEvictions}`,
        ],
        ["peak estimated heap of loaded partitions", `${(peak / 1_048_576).toFixed(1)} MB (budget ${budgetMB} MB)`],
      ],
    ),
  );
  return out.join("\n\n");
}
