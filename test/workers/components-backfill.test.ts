/**
 * Issue 25 item 4: schema pushes and index backfills per component. A
 * component's schema is part of the deployment's (each instance's tables
 * under its prefix), so when a new version of the component adds an index,
 * the next start builds it from each instance's own documents, and one it
 * removes goes from each instance, the app's table of the same name
 * untouched. Backfill is run as the object's start runs it (as
 * test/workers/backfill.test.ts does for the app's).
 */
import { describe, expect, it } from "vitest";
import { runInDurableObject } from "cloudflare:test";
import { defineSchema, defineTable, mutationGeneric, queryGeneric } from "convex/server";
import { v } from "convex/values";
import { Components, Engine, registerModules, Schema } from "../../src/engine/index.ts";
import { backfillIndexes } from "../../src/deployment/index-backfill.ts";
import { SqliteSearchStorage } from "../../src/deployment/sqlite-search-storage.ts";
import { SqliteVectorStorage } from "../../src/deployment/sqlite-vector-storage.ts";
import { SqliteStore, documentsOf } from "../../src/deployment/sqlite-store.ts";
import { DEFAULT_KNOBS } from "../../src/deployment/knobs.ts";
import { VectorIndexes } from "../../src/vectors/vector-indexes.ts";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import { bindings, fresh } from "./helpers.ts";

const item = { a: v.string(), b: v.number() };
/** The fixture component's schema in three versions: 1.0, 1.1 adds `by_b`, 2.0 drops `by_a`. */
const versions = {
  "1.0": defineSchema({ items: defineTable(item).index("by_a", ["a"]) }),
  "1.1": defineSchema({ items: defineTable(item).index("by_a", ["a"]).index("by_b", ["b"]) }),
  "2.0": defineSchema({ items: defineTable(item).index("by_b", ["b"]) }),
};
/** Its functions: add an item; list items with `b` through `by_b` (there from 1.1). */
const modules = {
  items: {
    add: mutationGeneric({ args: item, handler: async (ctx, doc) => ctx.db.insert("items", doc) }),
    withB: queryGeneric({
      args: { b: v.number() },
      handler: async (ctx, { b }) =>
        (
          await ctx.db
            .query("items")
            .withIndex("by_b", (q) => q.eq("b", b))
            .collect()
        ).map((doc) => doc.a),
    }),
  },
};
const INSTANCES = ["one", "two"];

describe("index backfill per component", () => {
  it("builds a component's new index for each instance from its own documents, and drops a removed one from each", async () => {
    const deployment = fresh("components-backfill");
    await deploymentStub(bindings, deployment).health(); // migrated storage
    await runInDurableObject(bindings.DEPLOYMENTS.getByName(deployment), async (_instance, state: DurableObjectState) => {
      const search = new SqliteSearchStorage(state.storage);
      const components = new Components(
        registerModules({}),
        INSTANCES.map((path) => ({ path, functions: registerModules(modules, path) })),
      );
      // The app has an `items` table of its own, with no index: the components' must not touch it.
      const appSchema = defineSchema({ items: defineTable({ a: v.string(), b: v.number() }) });
      const schemaAt = (version: keyof typeof versions) =>
        new Schema(
          appSchema,
          INSTANCES.map((componentPath) => ({ componentPath, schema: versions[version] })),
        );
      /** One start of the object with the component at `version`: backfill, then an engine over the result. */
      const start = (version: keyof typeof versions) => {
        const schema = schemaAt(version);
        const vectors = new VectorIndexes({ schema, storage: new SqliteVectorStorage(state.storage.sql), knobs: () => DEFAULT_KNOBS });
        const report = backfillIndexes(state.storage, schema, search, vectors, (table) => documentsOf(state.storage.sql, table));
        const engine = new Engine({ schema, functions: components.root.functions, components, store: new SqliteStore(state.storage, undefined, vectors) });
        const run = (path: string, fn: string, args: Record<string, unknown>) =>
          engine.exclusive(async () => {
            const target = engine.functionAt(fn, path)!;
            return target.kind === "mutation"
              ? (await engine.executeMutation(target, args as never)).value
              : (await engine.executeQuery(target, args as never)).value;
          });
        return { report, run };
      };
      const stored = (path: string, index: string) => components.at(path)!.namespace.storageIndexName(`items.${index}`);
      const entries = (index: string) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM index_entries WHERE index_name = ?", index).one().n;

      // Version 1.0: three items in `one`, two in `two`; the app's own `items` gets one.
      const first = start("1.0");
      for (const [path, a, b] of [
        ["one", "x", 1],
        ["one", "y", 2],
        ["one", "z", 1],
        ["two", "p", 1],
        ["two", "q", 3],
      ] as const)
        await first.run(path, "items:add", { a, b });
      state.storage.sql.exec("INSERT INTO documents (id, table_name, json, bytes) VALUES ('app-item', 'items', '{}', 2)");
      expect(entries(stored("one", "by_b"))).toBe(0);

      // Version 1.1 adds `by_b`: built for each instance, from its own documents only.
      const second = start("1.1");
      expect(second.report.rebuilt.sort()).toEqual([stored("one", "by_b"), stored("two", "by_b")].sort());
      expect(second.report.dropped).toEqual([]);
      expect(entries(stored("one", "by_b"))).toBe(3);
      expect(entries(stored("two", "by_b"))).toBe(2);
      expect(entries("items.by_b")).toBe(0);
      // Queries through the new index find what was written before it existed, each instance its own.
      expect((await second.run("one", "items:withB", { b: 1 })) as string[]).toEqual(["x", "z"]);
      expect((await second.run("two", "items:withB", { b: 1 })) as string[]).toEqual(["p"]);

      // A start with the same version rebuilds nothing.
      expect(start("1.1").report.rebuilt).toEqual([]);

      // Version 2.0 drops `by_a`: gone from each instance; `by_b` kept as it was.
      const third = start("2.0");
      expect(third.report.dropped.sort()).toEqual([stored("one", "by_a"), stored("two", "by_a")].sort());
      expect(third.report.rebuilt).toEqual([]);
      expect(entries(stored("one", "by_a")) + entries(stored("two", "by_a"))).toBe(0);
      expect(entries(stored("two", "by_b"))).toBe(2);
    });
  });
});
