/** `ShardStorage` on a sync shard's own SQLite (tables from `SHARD_MIGRATIONS`). */
import type { SessionAuth } from "../sync/session.ts";
import type { ShardStorage, StoredHeldQuery, StoredRequest } from "../sync/shard-storage.ts";

/** A shard's storage schema: its clients' query sets and held mutations (as `SqliteSyncStorage` reads them), and its own state. */
export const SHARD_MIGRATIONS: readonly string[] = [
  `CREATE TABLE sync_queries (
     connection_id TEXT NOT NULL, query_id INTEGER NOT NULL, instance_key TEXT NOT NULL, caller TEXT,
     PRIMARY KEY (connection_id, query_id)
   ) WITHOUT ROWID;
   CREATE TABLE sync_held_mutations (
     connection_id TEXT NOT NULL, seq INTEGER NOT NULL, message TEXT NOT NULL, auth TEXT,
     PRIMARY KEY (connection_id, seq)
   ) WITHOUT ROWID;
   CREATE TABLE mutation_results (
     session_id TEXT NOT NULL, request_id INTEGER NOT NULL, result_json TEXT NOT NULL,
     ts TEXT NOT NULL, recorded_at INTEGER NOT NULL, fingerprint TEXT NOT NULL DEFAULT '',
     PRIMARY KEY (session_id, request_id)
   ) WITHOUT ROWID;
   CREATE TABLE shard_values (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE shard_held (
     key TEXT PRIMARY KEY, upstream_id INTEGER NOT NULL, udf_path TEXT NOT NULL, args_json TEXT NOT NULL,
     journal TEXT, caller TEXT, hash TEXT
   ) WITHOUT ROWID;
   CREATE TABLE shard_requests (
     request_id INTEGER PRIMARY KEY, connection_id TEXT NOT NULL, kind TEXT NOT NULL, client_request_id INTEGER NOT NULL, frame TEXT NOT NULL
   );`,
];

export class SqliteShardStorage implements ShardStorage {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
  }

  loadValue(key: string): string | null {
    return this.sql.exec<{ value: string }>("SELECT value FROM shard_values WHERE key = ?", key).toArray()[0]?.value ?? null;
  }

  saveValue(key: string, value: string): void {
    this.sql.exec("INSERT OR REPLACE INTO shard_values (key, value) VALUES (?, ?)", key, value);
  }

  loadHeld(): StoredHeldQuery[] {
    return this.sql
      .exec<{ key: string; upstream_id: number; udf_path: string; args_json: string; journal: string | null; caller: string | null; hash: string | null }>(
        "SELECT key, upstream_id, udf_path, args_json, journal, caller, hash FROM shard_held",
      )
      .toArray()
      .map((row) => ({
        key: row.key,
        upstreamId: row.upstream_id,
        udfPath: row.udf_path,
        argsJson: row.args_json,
        journal: row.journal,
        caller: row.caller ? (JSON.parse(row.caller) as SessionAuth) : null,
        hash: row.hash,
      }));
  }

  saveHeld(query: StoredHeldQuery): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO shard_held (key, upstream_id, udf_path, args_json, journal, caller, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
      query.key,
      query.upstreamId,
      query.udfPath,
      query.argsJson,
      query.journal,
      query.caller ? JSON.stringify(query.caller) : null,
      query.hash,
    );
  }

  deleteHeld(key: string): void {
    this.sql.exec("DELETE FROM shard_held WHERE key = ?", key);
  }

  loadRequests(): StoredRequest[] {
    return this.sql
      .exec<{ request_id: number; connection_id: string; kind: "Mutation" | "Action"; client_request_id: number; frame: string }>(
        "SELECT request_id, connection_id, kind, client_request_id, frame FROM shard_requests ORDER BY request_id",
      )
      .toArray()
      .map((row) => ({ requestId: row.request_id, connectionId: row.connection_id, kind: row.kind, clientRequestId: row.client_request_id, frame: row.frame }));
  }

  saveRequest(request: StoredRequest): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO shard_requests (request_id, connection_id, kind, client_request_id, frame) VALUES (?, ?, ?, ?, ?)",
      request.requestId,
      request.connectionId,
      request.kind,
      request.clientRequestId,
      request.frame,
    );
  }

  deleteRequest(requestId: number): void {
    this.sql.exec("DELETE FROM shard_requests WHERE request_id = ?", requestId);
  }
}
