/**
 * `ctx.vectorSearch` in a component's action searches its own instance's
 * index, not the app's table of the same name (isolation, issue 25).
 */
import { describe, expect, it } from "vitest";
import { actionGeneric, componentsGeneric, defineSchema, defineTable, mutationGeneric } from "convex/server";
import { v } from "convex/values";
import { Components, Engine, MemoryStore, registerModules, Schema } from "./index.ts";
import { MemoryVectorStorage } from "../vectors/storage.ts";
import { VectorIndexes } from "../vectors/vector-indexes.ts";

const docs = () => defineTable({ text: v.string(), embedding: v.array(v.float64()) }).vectorIndex("by_vec", { vectorField: "embedding", dimensions: 2 });
const sameSchema = () => defineSchema({ docs: docs() });

const lib = {
  add: mutationGeneric({ args: { text: v.string(), embedding: v.array(v.float64()) }, handler: (ctx, doc) => ctx.db.insert("docs", doc) }),
  search: actionGeneric({
    args: { vector: v.array(v.float64()) },
    handler: async (ctx, { vector }) => (await ctx.vectorSearch("docs", "by_vec", { vector, limit: 10 })).map((hit) => hit._id),
  }),
};
const components = componentsGeneric() as any;
const app = {
  add: mutationGeneric({ args: { text: v.string(), embedding: v.array(v.float64()) }, handler: (ctx, doc) => ctx.db.insert("docs", doc) }),
  addInComponent: mutationGeneric({
    args: { text: v.string(), embedding: v.array(v.float64()) },
    handler: (ctx, doc): Promise<string> => ctx.runMutation(components.mine.lib.add, doc),
  }),
  searchInComponent: actionGeneric({
    args: { vector: v.array(v.float64()) },
    handler: (ctx, args): Promise<string[]> => ctx.runAction(components.mine.lib.search, args),
  }),
};

describe("vector search inside a component", () => {
  it("finds the component's own documents, never the app's in its same-named table", async () => {
    const all = new Components(registerModules({ app }), [{ path: "mine", functions: registerModules({ lib }, "mine") }]);
    const schema = new Schema(sameSchema(), [{ componentPath: "mine", schema: sameSchema() }]);
    const knobs = { vectorMemoryBudgetBytes: 1_048_576, vectorExactMaxCandidates: 1_024, vectorRerankCandidates: 512 };
    const vectors = new VectorIndexes({ schema, storage: new MemoryVectorStorage(), knobs: () => knobs });
    const engine = new Engine({ schema, functions: all.root.functions, components: all, store: new MemoryStore(undefined, vectors) });

    await engine.runMutation("app:add", { text: "the app's", embedding: [1, 0] });
    const { value: own } = await engine.runMutation("app:addInComponent", { text: "the component's", embedding: [1, 0.1] });
    const { value: found } = await engine.runAction("app:searchInComponent", { vector: [1, 0] });
    expect(found).toEqual([own]);
  });
});
