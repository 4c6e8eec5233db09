/**
 * Vector search end to end: `wrangler dev` serving the vector-search demo's
 * schema with a probe module beside it (test/fixtures/vector-probe), driven
 * by the official client. 2,000 clustered 1,536-dimension vectors in 8 genres
 * go in through mutations; searches from an action, with and without an
 * `or` filter of two genres, are compared with the exact cosine ranking.
 *
 * With CALMSYNC_DEMOS_DIR naming a checkout of get-convex/convex-demos, the
 * same runs against the demo's own `convex/` folder, unmodified (its
 * functions call OpenAI, so the probe writes the vectors itself).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { startDevServer, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";
import { adminStatus, createDeployment, setKnobs } from "../../../scripts/lib/admin.ts";
import { clusteredVectors, cosine, exactTop, random } from "../../contract/vector-cases.ts";

const FIXTURE = fileURLToPath(new URL("../../fixtures/vectors-app/convex", import.meta.url));
const PROBE = fileURLToPath(new URL("../../fixtures/vector-probe/probe.ts", import.meta.url));
const DEMOS = process.env.CALMSYNC_DEMOS_DIR;
const GENRES = ["action", "comedy", "drama", "horror", "romance", "scifi", "thriller", "western"];
const DIMENSIONS = 1_536;
const api = anyApi;

type Hit = { _id: string; _score: number };

function probeRun(convexDir: string) {
  const state: { server?: DevServer; http?: ConvexHttpClient } = {};
  beforeAll(async () => {
    state.server = await startDevServer({ app: convexDir, modules: [PROBE] });
    state.http = new ConvexHttpClient(state.server.url, { skipConvexDeploymentUrlCheck: true });
  });
  afterAll(() => state.server?.stop());

  it("2,000 vectors in 8 genres: recall@16 >= 0.95 with and without an or filter, exact scores, only the asked genres; a deleted one is gone", async () => {
    const http = state.http!;
    // Six decimals, as an embedding API's JSON carries them; the exact ranking below uses the same numbers.
    const embeddings = clusteredVectors(2_000, DIMENSIONS, 16, 11).map((vector) => vector.map((x) => Math.round(x * 1e6) / 1e6));
    const ids: string[] = [];
    for (let i = 0; i < embeddings.length; i += 25) {
      const rows = embeddings.slice(i, i + 25).map((embedding, j) => ({ embedding, genre: GENRES[(i + j) % GENRES.length]! }));
      ids.push(...((await http.mutation(api.probe!.insert!, { rows })) as string[]));
    }
    type VectorStatus = {
      vectors: { indexes: { index: string; vectors: number; memoryBytes: number; lastSearchAt: number | null }[] };
      limits: { vectorMemory: { bytes: number; budgetBytes: number } };
    };
    const indexed = async () =>
      (await adminStatus<VectorStatus>(state.server!.url)).vectors.indexes.find((index) => index.index === "movieEmbeddings.by_embedding");
    expect(await indexed()).toMatchObject({ vectors: 2_000, lastSearchAt: null });
    const all = ids.map((id, i) => ({ id, embedding: embeddings[i]! }));
    const genreOf = new Map(ids.map((id, i) => [id, GENRES[i % GENRES.length]!]));
    const next = random(5);
    const recall = { filtered: [0, 0], unfiltered: [0, 0] };
    for (let q = 0; q < 12; q++) {
      // A question near one of the topics.
      const query = embeddings[q * 151]!.map((x) => x + 0.6 * Math.sqrt(-2 * Math.log(next() || 1e-12)) * Math.cos(2 * Math.PI * next()));
      const genres = q % 2 === 1 ? [GENRES[q % 8]!, GENRES[(q + 5) % 8]!] : undefined;
      const hits = (await http.action(api.probe!.similar!, { vector: query, ...(genres ? { genres } : {}) })) as Hit[];
      const exact = exactTop(all, query, 16, (i) => !genres || genres.includes(GENRES[i % GENRES.length]!));
      const exactIds = new Set(exact.map((e) => e.id));
      const tally = genres ? recall.filtered : recall.unfiltered;
      tally[0]! += hits.filter((hit) => exactIds.has(hit._id)).length;
      tally[1]! += exact.length;
      expect(hits).toHaveLength(16);
      for (const hit of hits) {
        if (genres) expect(genres).toContain(genreOf.get(hit._id));
        expect(Math.abs(hit._score - cosine(all[ids.indexOf(hit._id)]!.embedding, query))).toBeLessThan(1e-3);
      }
    }
    console.log(`recall@16: unfiltered ${recall.unfiltered[0]! / recall.unfiltered[1]!}, or-filter of two genres ${recall.filtered[0]! / recall.filtered[1]!}`);
    expect(recall.unfiltered[0]! / recall.unfiltered[1]!).toBeGreaterThanOrEqual(0.95);
    expect(recall.filtered[0]! / recall.filtered[1]!).toBeGreaterThanOrEqual(0.95);

    // A deleted document is never returned: the best hit goes, the next search no longer has it.
    const [best] = (await http.action(api.probe!.similar!, { vector: embeddings[0]! })) as Hit[];
    expect(best!._id).toBe(ids[0]);
    await http.mutation(api.probe!.remove!, { id: ids[0]! });
    expect(((await http.action(api.probe!.similar!, { vector: embeddings[0]! })) as Hit[]).map((hit) => hit._id)).not.toContain(ids[0]);

    expect(await indexed()).toMatchObject({ vectors: 1_999, lastSearchAt: expect.any(Number), memoryBytes: expect.any(Number) });
    const status = await adminStatus<VectorStatus>(state.server!.url);
    expect(status.limits.vectorMemory.bytes).toBeGreaterThan(0);
    expect(status.limits.vectorMemory.bytes).toBeLessThanOrEqual(status.limits.vectorMemory.budgetBytes);
  });
  return state;
}

describe("vector search against wrangler dev (the vector-search demo's schema and a probe)", () => {
  const state = probeRun(FIXTURE);

  it("clients on 3 sync shards write over their sockets and search from actions: each sees every write at once", async () => {
    const url = await createDeployment(state.server!.url, "vectors-shards");
    await setKnobs(url, { syncShards: 3 });
    const clients = Array.from(
      { length: 3 },
      () =>
        new ConvexClient(url, { skipConvexDeploymentUrlCheck: true, webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket, logger: false }),
    );
    try {
      const embeddings = clusteredVectors(30, DIMENSIONS, 3, 21);
      for (const [i, client] of clients.entries()) {
        const rows = embeddings.slice(i * 10, i * 10 + 10).map((embedding) => ({ embedding, genre: GENRES[i]! }));
        const ids = (await client.mutation(api.probe!.insert!, { rows })) as string[];
        // Whichever shard holds it, every client's next search finds what this one just wrote, and only the asked genre.
        for (const searcher of clients) {
          const hits = (await searcher.action(api.probe!.similar!, { vector: rows[0]!.embedding, genres: [GENRES[i]!], limit: 10 })) as Hit[];
          expect(hits[0]!._id).toBe(ids[0]);
          expect(hits.map((hit) => hit._id).sort()).toEqual([...ids].sort());
        }
      }
      const status = await adminStatus<{ vectors: { indexes: { vectors: number }[] }; shards: { sessions: number | null }[] }>(url);
      expect(status.vectors.indexes[0]!.vectors).toBe(30);
      expect(status.shards.reduce((sum, shard) => sum + (shard.sessions ?? 0), 0)).toBe(3);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });
});

describe.runIf(DEMOS)("the Convex vector-search demo, unmodified, with the probe beside it (CALMSYNC_DEMOS_DIR)", () => {
  const state = probeRun(join(DEMOS ?? "", "vector-search/convex"));
  it("its own functions are there beside the probe (its actions need OpenAI, so only its query is called)", async () => {
    expect(await state.http!.query(api.foods!.list!, {})).toEqual([]);
  });
});
