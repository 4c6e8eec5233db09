/**
 * Vector search at 100,000 x 1,536 in one deployment object, through
 * `wrangler dev` (workerd, SQLite on disk): the vector-search demo's
 * `movieEmbeddings` table and the probe module the end-to-end test uses.
 *
 * Vectors lie around 1,000 topics (100 each, spread 0.6 around unit-scale
 * centres), each with one of 8 genres drawn at random; a query is a document
 * moved by the same spread (a question near a topic). Reports insert
 * throughput, the object's memory (the index's own estimate against its
 * budget, and workerd's resident size), and for three rerank settings side
 * by side: p50/p99 of an action's `ctx.vectorSearch` round trip, with and
 * without a filter on one genre, beside the same action call without the
 * search, and recall@10 against the exact cosine ranking computed here.
 */
import { fileURLToPath } from "node:url";
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { percentile, seeded, table } from "./harness.ts";
import { startDevServer } from "../lib/wrangler-dev.ts";
import { adminStatus, setKnobs } from "../lib/admin.ts";

const APP = fileURLToPath(new URL("../../test/fixtures/vectors-app/convex", import.meta.url));
const PROBE = fileURLToPath(new URL("../../test/fixtures/vector-probe/probe.ts", import.meta.url));
const DIMENSIONS = 1_536;
const GENRES = ["action", "comedy", "drama", "horror", "romance", "scifi", "thriller", "western"];
const TOPICS = 1_000;
/** Documents per mutation: about 780 KB of arguments, under the 1 MiB `maxArgumentBytes`. */
const BATCH = 64;
const IN_FLIGHT = 4;
const QUERIES = 40;
const MiB = 1_048_576;

type VectorStatus = {
  vectors: { indexes: { index: string; vectors: number; memoryBytes: number }[] };
  limits: { vectorMemory: { bytes: number; budgetBytes: number } };
};

function dataset(count: number) {
  const next = seeded(42);
  const gaussian = () => Math.sqrt(-2 * Math.log(next() || 1e-12)) * Math.cos(2 * Math.PI * next());
  const centres = Array.from({ length: TOPICS }, () => Float32Array.from({ length: DIMENSIONS }, gaussian));
  // Four decimals, as stored and as scored: the exact ranking uses the same numbers the object holds.
  const round = (x: number) => Math.fround(Math.round(x * 1e4) / 1e4);
  const vectors = new Float32Array(count * DIMENSIONS);
  const genres = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const centre = centres[i % TOPICS]!;
    for (let d = 0; d < DIMENSIONS; d++) vectors[i * DIMENSIONS + d] = round(centre[d]! + 0.6 * gaussian());
    genres[i] = Math.floor(next() * GENRES.length);
  }
  const queries = Array.from({ length: QUERIES }, (_, q) => {
    const base = ((q * 7_919) % count) * DIMENSIONS;
    return Array.from({ length: DIMENSIONS }, (_, d) => Math.round((vectors[base + d]! + 0.6 * gaussian()) * 1e4) / 1e4);
  });
  return { vectors, genres, queries };
}

/** The exact top `k` document positions by cosine with `query`, among those of `genre` (or all). */
function exactTop(vectors: Float32Array, genres: Uint8Array, query: number[], k: number, genre: number | null): number[] {
  const count = genres.length;
  let queryNorm = 0;
  for (const x of query) queryNorm += x * x;
  const best: { i: number; score: number }[] = [];
  for (let i = 0; i < count; i++) {
    if (genre !== null && genres[i] !== genre) continue;
    let dot = 0;
    let norm = 0;
    const offset = i * DIMENSIONS;
    for (let d = 0; d < DIMENSIONS; d++) {
      const x = vectors[offset + d]!;
      dot += x * query[d]!;
      norm += x * x;
    }
    const score = dot / Math.sqrt(norm * queryNorm);
    if (best.length === k && score <= best[k - 1]!.score) continue;
    best.push({ i, score });
    best.sort((a, b) => b.score - a.score);
    if (best.length > k) best.pop();
  }
  return best.map((entry) => entry.i);
}

export async function benchVectors(count = 100_000): Promise<string> {
  const { vectors, genres, queries } = dataset(count);
  const server = await startDevServer({ app: APP, modules: [PROBE] });
  try {
    const client = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
    const probe = anyApi.probe!;
    const ids: string[] = new Array(count);
    const rssBefore = server.runtimeRssBytes() ?? 0;
    const insertStart = performance.now();
    let nextBatch = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        for (let start = nextBatch++ * BATCH; start < count; start = nextBatch++ * BATCH) {
          const rows = [];
          for (let i = start; i < Math.min(count, start + BATCH); i++) {
            // Sent as the four-decimal numbers they are (a float32 printed in full would be three times longer).
            rows.push({
              embedding: Array.from(vectors.subarray(i * DIMENSIONS, (i + 1) * DIMENSIONS), (x) => Math.round(x * 1e4) / 1e4),
              genre: GENRES[genres[i]!]!,
            });
          }
          const written = (await client.mutation(probe.insert!, { rows })) as string[];
          written.forEach((id, j) => (ids[start + j] = id));
        }
      }),
    );
    const insertSeconds = (performance.now() - insertStart) / 1000;
    const rssAfterInsert = server.runtimeRssBytes() ?? 0;
    const position = new Map(ids.map((id, i) => [id, i]));

    const firstStart = performance.now();
    await client.action(probe.similar!, { vector: queries[0]!, limit: 10 });
    const firstSearchMs = performance.now() - firstStart;

    const truth = queries.map((query, q) => ({
      all: exactTop(vectors, genres, query, 10, null),
      genre: q % GENRES.length,
      filtered: exactTop(vectors, genres, query, 10, q % GENRES.length),
    }));

    const timed = async (call: () => Promise<unknown>) => {
      const start = performance.now();
      const result = await call();
      return { ms: performance.now() - start, result };
    };
    const baseline: number[] = [];
    for (const query of queries) baseline.push((await timed(() => client.action(probe.receive!, { vector: query }))).ms);
    baseline.sort((a, b) => a - b);

    let peakRss = rssAfterInsert;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, server.runtimeRssBytes() ?? 0)), 20);
    const rows: (string | number)[][] = [];
    let peakIndexBytes = 0;
    let budgetBytes = 0;
    try {
      for (const rerank of [256, 512, 1_024]) {
        await setKnobs(server.url, { vectorRerankCandidates: rerank });
        for (const filtered of [false, true]) {
          const times: number[] = [];
          let found = 0;
          for (const [q, query] of queries.entries()) {
            const { genre } = truth[q]!;
            const { ms, result } = await timed(() =>
              client.action(probe.similar!, { vector: query, limit: 10, ...(filtered ? { genres: [GENRES[genre]!] } : {}) }),
            );
            times.push(ms);
            const expected = new Set(filtered ? truth[q]!.filtered : truth[q]!.all);
            found += (result as { _id: string }[]).filter((hit) => expected.has(position.get(hit._id)!)).length;
          }
          times.sort((a, b) => a - b);
          const status = await adminStatus<VectorStatus>(server.url);
          peakIndexBytes = Math.max(peakIndexBytes, status.limits.vectorMemory.bytes);
          budgetBytes = status.limits.vectorMemory.budgetBytes;
          rows.push([
            rerank,
            filtered
              ? `genre = one of 8 (~${Math.round(count / GENRES.length).toLocaleString("en-US")} candidates)`
              : `none (${count.toLocaleString("en-US")})`,
            percentile(times, 50).toFixed(1),
            percentile(times, 99).toFixed(1),
            (percentile(times, 50) - percentile(baseline, 50)).toFixed(1),
            (found / (QUERIES * 10)).toFixed(3),
          ]);
        }
      }
    } finally {
      clearInterval(sampler);
    }
    const facts = [
      ["documents", `${count.toLocaleString("en-US")} x ${DIMENSIONS} (float32 vectors ${Math.round((count * DIMENSIONS * 4) / MiB)} MiB in SQLite)`],
      [
        "insert",
        `${insertSeconds.toFixed(1)} s, ${Math.round(count / insertSeconds).toLocaleString("en-US")} documents/s (${BATCH} per mutation, ${IN_FLIGHT} in flight)`,
      ],
      ["first search (loads the index)", `${firstSearchMs.toFixed(0)} ms`],
      [
        "loaded index (its estimate) / budget",
        `${(peakIndexBytes / MiB).toFixed(1)} MiB / ${(budgetBytes / MiB).toFixed(0)} MiB (${((100 * peakIndexBytes) / budgetBytes).toFixed(0)}%)`,
      ],
      [
        "workerd resident: start, after inserts, peak while searching",
        `${(rssBefore / MiB).toFixed(0)}, ${(rssAfterInsert / MiB).toFixed(0)}, ${(peakRss / MiB).toFixed(0)} MiB (Worker, object and SQLite page cache together)`,
      ],
      ["the same action without the search (baseline)", `p50 ${percentile(baseline, 50).toFixed(1)} ms, p99 ${percentile(baseline, 99).toFixed(1)} ms`],
    ];
    return [
      table(["", ""], facts),
      "",
      `${QUERIES} queries per row, one at a time, limit 10; times are the action's round trip from a Node client over loopback (a 1,536-number argument each way included).`,
      "",
      table(["vectorRerankCandidates", "filter", "p50 ms", "p99 ms", "p50 minus baseline", "recall@10"], rows),
    ].join("\n");
  } finally {
    await server.stop();
  }
}
