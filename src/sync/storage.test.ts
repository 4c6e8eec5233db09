import { describe, it } from "vitest";
import { MemorySyncStorage } from "./storage.ts";
import { MemorySearchStorage } from "../search/storage.ts";
import { searchStorageCases, SYNC_RETENTION_MS, syncStorageCases } from "../../test/contract/storage-cases.ts";

// The same cases run on SQLite inside workerd: test/workers/storage-sqlite.test.ts.
describe("MemorySyncStorage", () => {
  for (const [name, run] of Object.entries(syncStorageCases)) it(name, () => run(new MemorySyncStorage(() => SYNC_RETENTION_MS)));
});

describe("MemorySearchStorage", () => {
  for (const [name, run] of Object.entries(searchStorageCases)) it(name, () => run(new MemorySearchStorage()));
});
