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
import { documentsOf } from "../../src/deployment/sqlite-store.ts";
import { deploymentStub } from "../../src/env.ts";
import { bindings, fresh } from "./helpers.ts";

describe("index backfill", () => {
  it("keeps a schemaless table's built-in index entries when a fresh isolate starts without knowing the table", async () => {
    const deployment = fresh("backfill");
    await deploymentStub(bindings, deployment).health(); // migrated storage
    await runInDurableObject(bindings.DEPLOYMENTS.getByName(deployment), (_instance, state: DurableObjectState) => {
      const search = new SqliteSearchStorage(state.storage);
      const docs = (table: string) => documentsOf(state.storage.sql, table);
      // One isolate has used the schemaless table `notes` (and the scheduler's system table).
      const used = new Schema(null);
      used.table("notes");
      backfillIndexes(state.storage, used, search, docs);
      state.storage.sql.exec("INSERT INTO index_entries (index_name, key, doc_id) VALUES ('notes.by_id', X'05616200', 'some-note')");
      // A fresh isolate has not.
      const report = backfillIndexes(state.storage, new Schema(null), search, docs);
      expect(report.dropped).toEqual([]);
      expect(state.storage.sql.exec("SELECT count(*) AS n FROM index_entries WHERE index_name = 'notes.by_id'").one().n).toBe(1);
    });
  });
});
