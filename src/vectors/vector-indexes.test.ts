import { describe, expect, it } from "vitest";
import { MemoryStore, vectorDocumentOf, type Document } from "../engine/index.ts";
import { vectorCases, vectorSchema, type OpenVectorStore } from "../../test/contract/vector-cases.ts";
import { MemoryVectorStorage } from "./storage.ts";
import { VectorIndexes, type VectorKnobs } from "./vector-indexes.ts";
import { hammingDistances, signCode, smallestDistances } from "./binary-codes.ts";

/** One store per case; opening it again under another schema rebuilds or drops vector indexes as the deployment's backfill does. */
function memoryStores(): OpenVectorStore {
  let knobs: () => VectorKnobs;
  const vectors = new VectorIndexes({ schema: vectorSchema, storage: new MemoryVectorStorage(), knobs: () => knobs() });
  const store = new MemoryStore(undefined, vectors);
  return (schema, caseKnobs) => {
    knobs = caseKnobs;
    const documents = [...store.scanIndex("docs.by_creation_time", { start: "", end: null }, "asc")].map((entry) => entry.document as Document);
    const definition = schema.table("docs").vectorIndexes.get("by_embedding");
    if (definition) {
      vectors.rebuild(
        definition,
        documents.flatMap((document) => {
          const view = vectorDocumentOf(definition, document);
          return view ? [{ id: document._id, view }] : [];
        }),
      );
    } else vectors.storage.dropIndex("docs.by_embedding");
    return { store, vectors };
  };
}

describe("vector search on MemoryStore", () => {
  for (const [name, run] of Object.entries(vectorCases)) it(name, () => run(memoryStores()));
});

describe("sign codes", () => {
  it("count differing signs, and pick the smallest distances with ties by position", () => {
    const a = signCode(Float32Array.from({ length: 40 }, (_, i) => (i % 2 ? 1 : -1)));
    const b = signCode(Float32Array.from({ length: 40 }, (_, i) => (i < 3 ? -1 : i % 2 ? 1 : -1)));
    // Dimension 1 flips; 0 and 2 were negative in both.
    const codes = new Uint32Array([...a, ...b]);
    expect([...hammingDistances(codes, a.length, Int32Array.from([0, 1, 0]), b)]).toEqual([1, 0, 1]);
    expect([...smallestDistances(Uint16Array.from([5, 1, 3, 1, 0, 9]), 6, 3, 40)]).toEqual([1, 3, 4]);
    expect([...smallestDistances(Uint16Array.from([2, 2, 2, 2]), 4, 2, 40)]).toEqual([0, 1]);
    expect([...smallestDistances(Uint16Array.from([2, 2]), 2, 5, 40)]).toEqual([0, 1]);
  });
});
