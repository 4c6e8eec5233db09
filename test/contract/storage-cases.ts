/**
 * What every `SyncStorage` and `SearchStorage` must do, run against the
 * in-memory implementations in Node (src/sync/storage.test.ts) and the SQLite
 * ones inside workerd (test/workers/storage-sqlite.test.ts): the two must not
 * drift apart, since tests and benchmarks use the first and deployments the
 * second.
 */
import { expect } from "vitest";
import type { SyncStorage } from "../../src/sync/storage.ts";
import type { SearchStorage } from "../../src/search/storage.ts";
import { encodeKey, type SearchDocument } from "../../src/engine/index.ts";

/** A sync storage whose mutation results are kept `retentionMs` (60 s here). */
export type SyncStorageCase = (storage: SyncStorage) => void;
export type SearchStorageCase = (storage: SearchStorage) => void;

export const SYNC_RETENTION_MS = 60_000;

export const syncStorageCases: Record<string, SyncStorageCase> = {
  "query sets: save, load, delete one query and a whole connection"(storage) {
    storage.saveQuery({ connectionId: "a", queryId: 1, instanceKey: "k1" });
    storage.saveQuery({ connectionId: "a", queryId: 2, instanceKey: "k2" });
    storage.saveQuery({ connectionId: "b", queryId: 1, instanceKey: "k1" });
    storage.saveQuery({ connectionId: "a", queryId: 2, instanceKey: "k3" }); // replaces
    const sorted = () => storage.loadQueries().sort((x, y) => `${x.connectionId}${x.queryId}`.localeCompare(`${y.connectionId}${y.queryId}`));
    expect(sorted()).toEqual([
      { connectionId: "a", queryId: 1, instanceKey: "k1" },
      { connectionId: "a", queryId: 2, instanceKey: "k3" },
      { connectionId: "b", queryId: 1, instanceKey: "k1" },
    ]);
    storage.deleteQuery("a", 1);
    storage.deleteConnection("b");
    expect(sorted()).toEqual([{ connectionId: "a", queryId: 2, instanceKey: "k3" }]);
  },

  "instances keep binary read-set keys and search reads exactly"(storage) {
    const start = encodeKey(["chat", 1n]);
    const readSet = new Map([["messages.by_chat", [{ start, end: null }]]]);
    const searchReads = [
      { index: "messages.search_body", partition: encodeKey(["chat"]), filters: [[0, encodeKey(["x"])] as [number, string]], terms: ["hello"], prefix: "wo" },
    ];
    storage.saveInstance({ key: "k", udfPath: "messages:list", argsJson: '{"chatId":"chat"}', readSet, searchReads, resultHash: "h1", journal: '{"end":"x"}' });
    const [loaded] = storage.loadInstances();
    expect(loaded).toEqual({
      key: "k",
      udfPath: "messages:list",
      argsJson: '{"chatId":"chat"}',
      readSet,
      searchReads,
      resultHash: "h1",
      journal: '{"end":"x"}',
    });
    storage.deleteInstance("k");
    expect(storage.loadInstances()).toEqual([]);
  },

  "mutation results: found by session and request id with their fingerprint, pruned after the retention"(storage) {
    expect(storage.findMutationResult("s", 1)).toBeNull();
    storage.recordMutationResult("s", 1, { resultJson: '"id1"', ts: 2n ** 62n, fingerprint: "f1" }, 1_000);
    expect(storage.findMutationResult("s", 1)).toEqual({ resultJson: '"id1"', ts: 2n ** 62n, fingerprint: "f1" });
    expect(storage.findMutationResult("other", 1)).toBeNull();
    // Recording a later one prunes what is older than the retention.
    storage.recordMutationResult("s", 2, { resultJson: "null", ts: 5n, fingerprint: "f2" }, 1_000 + SYNC_RETENTION_MS + 1);
    expect(storage.findMutationResult("s", 1)).toBeNull();
    expect(storage.findMutationResult("s", 2)).not.toBeNull();
  },

  "held mutations: kept in order per connection with their caller, released one by one, gone with their connection"(storage) {
    const message = (requestId: number) => ({ type: "Mutation" as const, requestId, udfPath: "messages:send", args: { chatId: "a", n: requestId } });
    const auth = { identity: { tokenIdentifier: "i|ann", subject: "ann", issuer: "i" }, key: "digest", expiresAt: 123 };
    storage.holdMutation({ connectionId: "b", seq: 1, message: message(7), auth });
    storage.holdMutation({ connectionId: "a", seq: 2, message: message(2), auth: null });
    storage.holdMutation({ connectionId: "a", seq: 1, message: message(1), auth: null });
    expect(storage.loadHeldMutations()).toEqual([
      { connectionId: "a", seq: 1, message: message(1), auth: null },
      { connectionId: "a", seq: 2, message: message(2), auth: null },
      { connectionId: "b", seq: 1, message: message(7), auth },
    ]);
    storage.releaseMutation("a", 1);
    storage.deleteConnection("b");
    expect(storage.loadHeldMutations()).toEqual([{ connectionId: "a", seq: 2, message: message(2), auth: null }]);
  },
};

const doc = (text: string, partition: string): SearchDocument => ({ text, filters: [partition], creationTime: 1, partition: encodeKey([partition]) });

export const searchStorageCases: Record<string, SearchStorageCase> = {
  "appending grows the log and its meta; the log reads back after an lsn"(storage) {
    const p = encodeKey(["chat"]);
    expect(storage.meta("idx", p)).toBeNull();
    const first = storage.appendLog("idx", p, [{ id: "a", old: null, new: doc("héllo wörld 😀", "chat") }]);
    expect(first).toMatchObject({ index: "idx", partition: p, gen: 0, lastLsn: 1, logEntries: 1, failures: 0 });
    const second = storage.appendLog("idx", p, [
      { id: "b", old: null, new: doc("two", "chat") },
      { id: "a", old: doc("héllo wörld 😀", "chat"), new: null },
    ]);
    expect(second).toMatchObject({ lastLsn: 3, logEntries: 3 });
    // Log bytes are UTF-8 bytes of the encoded versions, the same in every implementation.
    expect(second.logBytes).toBeGreaterThan(first.logBytes);
    expect(storage.meta("idx", p)).toEqual(second);
    expect(storage.readLog("idx", p, 1).map((e) => [e.lsn, e.id, e.old?.text ?? null, e.new?.text ?? null])).toEqual([
      [2, "b", null, "two"],
      [3, "a", "héllo wörld 😀", null],
    ]);
    expect(storage.partitionCount()).toBe(1);
  },

  "a snapshot replaces the log it covers and keeps the rest; an interrupted one changes nothing"(storage) {
    const p = encodeKey(["chat"]);
    storage.appendLog(
      "idx",
      p,
      [1, 2, 3].map((n) => ({ id: `d${n}`, old: null, new: doc(`m${n}`, "chat") })),
    );
    const meta = storage.meta("idx", p)!;
    expect(() =>
      storage.writeSnapshot(meta, ["chunk"], 2, "v1", () => {
        throw new Error("interrupted");
      }),
    ).toThrow("interrupted");
    expect(storage.meta("idx", p)).toEqual(meta);
    expect(storage.readSnapshot(meta)).toEqual([]);
    storage.writeSnapshot(meta, ["c0", "c1"], 2, "v1");
    const after = storage.meta("idx", p)!;
    expect(after).toMatchObject({ gen: 1, snapshotLsn: 2, lastLsn: 3, logEntries: 1, format: "v1", failures: 0 });
    expect(after.logBytes).toBeGreaterThan(0);
    expect(storage.readSnapshot(after)).toEqual(["c0", "c1"]);
    expect(storage.readLog("idx", p, 0).map((e) => e.lsn)).toEqual([3]);
  },

  "failures, compaction candidates in order, and dropping an index"(storage) {
    const a = encodeKey(["a"]);
    const b = encodeKey(["b"]);
    storage.appendLog(
      "idx",
      a,
      [1, 2, 3].map((n) => ({ id: `a${n}`, old: null, new: doc("x", "a") })),
    );
    storage.appendLog("idx", b, [{ id: "b1", old: null, new: doc("y", "b") }]);
    storage.appendLog("other", a, [{ id: "o1", old: null, new: doc("z", "a") }]);
    expect(storage.partitionsToCompact(2, Infinity, 10).map((m) => m.partition)).toEqual([a]);
    expect(storage.partitionsToCompact(1, Infinity, 10).map((m) => [m.index, m.logEntries])).toEqual([["idx", 3], expect.anything(), expect.anything()]);
    expect(storage.partitionsToCompact(1, 0, 1)).toHaveLength(1);
    storage.recordFailure("idx", a);
    storage.recordFailure("idx", a);
    expect(storage.meta("idx", a)!.failures).toBe(2);
    // New writes reset the failure count.
    storage.appendLog("idx", a, [{ id: "a4", old: null, new: doc("w", "a") }]);
    expect(storage.meta("idx", a)!.failures).toBe(0);
    storage.dropIndex("idx");
    expect(storage.meta("idx", a)).toBeNull();
    expect(storage.readLog("idx", a, 0)).toEqual([]);
    expect(storage.partitionCount()).toBe(1);
  },
};
