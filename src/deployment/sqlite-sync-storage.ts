/** `SyncStorage` on Durable Object SQLite (tables from migration 2). */
import type { HeldMutation, SessionAuth } from "../sync/session.ts";
import {
  readSetFromJson,
  readSetToJson,
  searchReadsFromJson,
  searchReadsToJson,
  type StoredInstance,
  type StoredMutationResult,
  type StoredQuery,
  type SyncStorage,
} from "../sync/storage.ts";

export class SqliteSyncStorage implements SyncStorage {
  private readonly sql: SqlStorage;
  private readonly retentionMs: () => number;

  constructor(sql: SqlStorage, retentionMs: () => number) {
    this.sql = sql;
    this.retentionMs = retentionMs;
  }

  saveQuery(query: StoredQuery): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO sync_queries (connection_id, query_id, instance_key, caller) VALUES (?, ?, ?, ?)",
      query.connectionId,
      query.queryId,
      query.instanceKey,
      query.caller ? JSON.stringify(query.caller) : null,
    );
  }

  deleteQuery(connectionId: string, queryId: number): void {
    this.sql.exec("DELETE FROM sync_queries WHERE connection_id = ? AND query_id = ?", connectionId, queryId);
  }

  deleteConnection(connectionId: string): void {
    this.sql.exec("DELETE FROM sync_queries WHERE connection_id = ?", connectionId);
    this.sql.exec("DELETE FROM sync_held_mutations WHERE connection_id = ?", connectionId);
  }

  loadQueries(): StoredQuery[] {
    return this.sql
      .exec<{ connection_id: string; query_id: number; instance_key: string; caller: string | null }>(
        "SELECT connection_id, query_id, instance_key, caller FROM sync_queries",
      )
      .toArray()
      .map((row) => ({
        connectionId: row.connection_id,
        queryId: row.query_id,
        instanceKey: row.instance_key,
        ...(row.caller ? { caller: JSON.parse(row.caller) as SessionAuth } : {}),
      }));
  }

  saveInstance(instance: StoredInstance): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO query_instances (instance_key, udf_path, args_json, read_set, search_reads, result_hash, journal) VALUES (?, ?, ?, ?, ?, ?, ?)",
      instance.key,
      instance.udfPath,
      instance.argsJson,
      readSetToJson(instance.readSet),
      searchReadsToJson(instance.searchReads),
      instance.resultHash,
      instance.journal,
    );
  }

  deleteInstance(key: string): void {
    this.sql.exec("DELETE FROM query_instances WHERE instance_key = ?", key);
  }

  loadInstances(): StoredInstance[] {
    return this.sql
      .exec<{ instance_key: string; udf_path: string; args_json: string; read_set: string; search_reads: string; result_hash: string; journal: string | null }>(
        "SELECT instance_key, udf_path, args_json, read_set, search_reads, result_hash, journal FROM query_instances",
      )
      .toArray()
      .map((row) => ({
        key: row.instance_key,
        udfPath: row.udf_path,
        argsJson: row.args_json,
        readSet: readSetFromJson(row.read_set),
        searchReads: searchReadsFromJson(row.search_reads),
        resultHash: row.result_hash,
        journal: row.journal,
      }));
  }

  findMutationResult(sessionId: string, requestId: number): StoredMutationResult | null {
    const row = this.sql
      .exec<{ result_json: string; ts: string; fingerprint: string }>(
        "SELECT result_json, ts, fingerprint FROM mutation_results WHERE session_id = ? AND request_id = ?",
        sessionId,
        requestId,
      )
      .toArray()[0];
    return row ? { resultJson: row.result_json, ts: BigInt(row.ts), fingerprint: row.fingerprint } : null;
  }

  recordMutationResult(sessionId: string, requestId: number, result: StoredMutationResult, nowMs: number): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO mutation_results (session_id, request_id, result_json, ts, recorded_at, fingerprint) VALUES (?, ?, ?, ?, ?, ?)",
      sessionId,
      requestId,
      result.resultJson,
      result.ts.toString(),
      nowMs,
      result.fingerprint,
    );
    this.sql.exec("DELETE FROM mutation_results WHERE recorded_at < ?", nowMs - this.retentionMs());
  }

  holdMutation(held: HeldMutation): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO sync_held_mutations (connection_id, seq, message, auth) VALUES (?, ?, ?, ?)",
      held.connectionId,
      held.seq,
      JSON.stringify(held.message),
      held.auth ? JSON.stringify(held.auth) : null,
    );
  }

  releaseMutation(connectionId: string, seq: number): void {
    this.sql.exec("DELETE FROM sync_held_mutations WHERE connection_id = ? AND seq = ?", connectionId, seq);
  }

  loadHeldMutations(): HeldMutation[] {
    return this.sql
      .exec<{ connection_id: string; seq: number; message: string; auth: string | null }>(
        "SELECT connection_id, seq, message, auth FROM sync_held_mutations ORDER BY connection_id, seq",
      )
      .toArray()
      .map((row) => ({
        connectionId: row.connection_id,
        seq: row.seq,
        message: JSON.parse(row.message) as HeldMutation["message"],
        auth: row.auth ? (JSON.parse(row.auth) as SessionAuth) : null,
      }));
  }
}
