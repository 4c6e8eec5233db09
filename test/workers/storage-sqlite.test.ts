import { describe, it } from "vitest";
import { runInDurableObject } from "cloudflare:test";
import { SqliteSyncStorage } from "../../src/deployment/sqlite-sync-storage.ts";
import { SqliteSearchStorage } from "../../src/deployment/sqlite-search-storage.ts";
import { searchStorageCases, SYNC_RETENTION_MS, syncStorageCases } from "../contract/storage-cases.ts";
import { bindings, fresh } from "./helpers.ts";

// The same cases as on the in-memory storages in Node (src/sync/storage.test.ts); one fresh object per case.
describe("SqliteSyncStorage (workerd)", () => {
  for (const [name, run] of Object.entries(syncStorageCases)) {
    it(name, () =>
      runInDurableObject(bindings.DEPLOYMENTS.getByName(fresh("sync-storage")), (_i, state) =>
        run(new SqliteSyncStorage(state.storage.sql, () => SYNC_RETENTION_MS)),
      ),
    );
  }
});

describe("SqliteSearchStorage (workerd)", () => {
  for (const [name, run] of Object.entries(searchStorageCases)) {
    it(name, () => runInDurableObject(bindings.DEPLOYMENTS.getByName(fresh("search-storage")), (_i, state) => run(new SqliteSearchStorage(state.storage))));
  }
});
