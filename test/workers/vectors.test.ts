/**
 * The vector contract cases on the Durable Object's SQLite (one fresh object
 * per case): rows change in the commit's transaction, the loaded index reads
 * codes back from SQLite, and a new vector index is backfilled by the
 * deployment's own `backfillIndexes`.
 */
import { describe, it } from "vitest";
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { vectorCases, type OpenVectorStore } from "../contract/vector-cases.ts";
import { SqliteStore, documentsOf } from "../../src/deployment/sqlite-store.ts";
import { SqliteSearchStorage } from "../../src/deployment/sqlite-search-storage.ts";
import { SqliteVectorStorage } from "../../src/deployment/sqlite-vector-storage.ts";
import { backfillIndexes } from "../../src/deployment/index-backfill.ts";
import { migrate } from "../../src/deployment/migrations.ts";
import { VectorIndexes } from "../../src/vectors/vector-indexes.ts";
import type { Env } from "../../src/env.ts";

function sqliteStores(storage: DurableObjectStorage): OpenVectorStore {
  migrate(storage);
  return (schema, knobs) => {
    const vectors = new VectorIndexes({ schema, storage: new SqliteVectorStorage(storage.sql), knobs });
    backfillIndexes(storage, schema, new SqliteSearchStorage(storage), vectors, (table) => documentsOf(storage.sql, table));
    return { store: new SqliteStore(storage, undefined, vectors), vectors };
  };
}

describe("vector search on SqliteStore (workerd)", () => {
  for (const [name, run] of Object.entries(vectorCases)) {
    it(name, async () => {
      const stub = (env as Env).DEPLOYMENTS.getByName(`test-vector-case-${crypto.randomUUID()}`);
      await runInDurableObject(stub, (_instance, state) => run(sqliteStores(state.storage)));
    });
  }
});
