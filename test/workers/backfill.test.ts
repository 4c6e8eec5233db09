/**
 * Index bookkeeping across isolates: a table outside the schema is known to
 * an isolate only once something used it, so its built-in indexes must never
 * count as "removed from the schema" when a fresh isolate starts (that would
 * delete its index entries and hide its documents).
 */
import { describe, expect, it } from "vitest";
import { runInDurableObject } from "cloudflare:test";
import { Schema } from "../../src/engine/index.ts";
import { backfillIndexes } from "../../src/deployment/index-backfill.ts";
import { SqliteSearchStorage } from "../../src/deployment/sqlite-search-storage.ts";
import { SqliteVectorStorage } from "../../src/deployment/sqlite-vector-storage.ts";
import { DEFAULT_KNOBS } from "../../src/deployment/knobs.ts";
import { VectorIndexes } from "../../src/vectors/vector-indexes.ts";
import { documentsOf } from "../../src/deployment/sqlite-store.ts";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import { bindings, fresh } from "./helpers.ts";

describe("index backfill", () => {
  it("keeps a schemaless table's built-in index entries when a fresh isolate starts without knowing the table", async () => {
    const deployment = fresh("backfill");
    await deploymentStub(bindings, deployment).health(); // migrated storage
    await runInDurableObject(bindings.DEPLOYMENTS.getByName(deployment), (_instance, state: DurableObjectState) => {
      const search = new SqliteSearchStorage(state.storage);
      const vectors = (schema: Schema) => new VectorIndexes({ schema, storage: new SqliteVectorStorage(state.storage.sql), knobs: () => DEFAULT_KNOBS });
      const docs = (table: string) => documentsOf(state.storage.sql, table);
      // One isolate has used the schemaless table `notes` (and the scheduler's system table).
      const used = new Schema(null);
      used.table("notes");
      backfillIndexes(state.storage, used, search, vectors(used), docs);
      state.storage.sql.exec("INSERT INTO index_entries (index_name, key, doc_id) VALUES ('notes.by_id', X'05616200', 'some-note')");
      // A fresh isolate has not.
      const unknowing = new Schema(null);
      const report = backfillIndexes(state.storage, unknowing, search, vectors(unknowing), docs);
      expect(report.dropped).toEqual([]);
      expect(state.storage.sql.exec("SELECT count(*) AS n FROM index_entries WHERE index_name = 'notes.by_id'").one().n).toBe(1);
    });
  });
});
