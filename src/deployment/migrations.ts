/**
 * Storage schema migrations, applied in order, each in its own transaction, on
 * every object start (synchronous SQL, so no blockConcurrencyWhile needed).
 * Append new steps; never edit a step that has shipped.
 */
const MIGRATIONS: readonly string[] = [
  // 1: documents, index entries, persisted counters.
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE documents (id TEXT PRIMARY KEY, table_name TEXT NOT NULL, json TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE index_entries (
     index_name TEXT NOT NULL, key BLOB NOT NULL, doc_id TEXT NOT NULL,
     PRIMARY KEY (index_name, key)
   ) WITHOUT ROWID;`,
  // 2: live sync: query sets per connection, shared query instances, mutation outcomes for retries.
  `CREATE TABLE sync_queries (
     connection_id TEXT NOT NULL, query_id INTEGER NOT NULL, instance_key TEXT NOT NULL,
     PRIMARY KEY (connection_id, query_id)
   ) WITHOUT ROWID;
   CREATE TABLE query_instances (
     instance_key TEXT PRIMARY KEY, udf_path TEXT NOT NULL, args_json TEXT NOT NULL,
     read_set TEXT NOT NULL, result_hash TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE mutation_results (
     session_id TEXT NOT NULL, request_id INTEGER NOT NULL, result_json TEXT NOT NULL,
     ts TEXT NOT NULL, recorded_at INTEGER NOT NULL,
     PRIMARY KEY (session_id, request_id)
   ) WITHOUT ROWID;
   CREATE INDEX mutation_results_by_time ON mutation_results (recorded_at);`,
  // 3: text search: per partition a snapshot (chunks of one generation) and a log since it;
  //    search read-sets of query instances.
  `CREATE TABLE search_partitions (
     index_name TEXT NOT NULL, partition TEXT NOT NULL,
     gen INTEGER NOT NULL, snapshot_lsn INTEGER NOT NULL, last_lsn INTEGER NOT NULL,
     log_entries INTEGER NOT NULL, log_bytes INTEGER NOT NULL, format TEXT NOT NULL, failures INTEGER NOT NULL,
     PRIMARY KEY (index_name, partition)
   ) WITHOUT ROWID;
   CREATE INDEX search_partitions_by_log ON search_partitions (log_entries);
   CREATE TABLE search_chunks (
     index_name TEXT NOT NULL, partition TEXT NOT NULL, gen INTEGER NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
     PRIMARY KEY (index_name, partition, gen, seq)
   ) WITHOUT ROWID;
   CREATE TABLE search_log (
     index_name TEXT NOT NULL, partition TEXT NOT NULL, lsn INTEGER NOT NULL,
     doc_id TEXT NOT NULL, old_doc TEXT, new_doc TEXT,
     PRIMARY KEY (index_name, partition, lsn)
   ) WITHOUT ROWID;
   ALTER TABLE query_instances ADD COLUMN search_reads TEXT NOT NULL DEFAULT '[]';`,
  // 4: runtime knob overrides and their history.
  `CREATE TABLE knob_overrides (name TEXT PRIMARY KEY, value REAL NOT NULL) WITHOUT ROWID;
   CREATE TABLE knob_changes (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, old_value REAL NOT NULL, new_value REAL NOT NULL, changed_at INTEGER NOT NULL);`,
  // 5: a retried mutation must repeat its function and arguments (their hash).
  `ALTER TABLE mutation_results ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';`,
  // 6: each document's size in UTF-8 bytes, measured once when written (reads charge it to maxBytesRead).
  `ALTER TABLE documents ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
   UPDATE documents SET bytes = length(CAST(json AS BLOB));`,
  // 7: the journal of a query instance's last run (a paginated query's pinned end).
  `ALTER TABLE query_instances ADD COLUMN journal TEXT;`,
  // 8: auth providers' discovery documents and key sets (a restart does not refetch them), and the local dev issuer's key.
  `CREATE TABLE auth_documents (url TEXT PRIMARY KEY, body TEXT NOT NULL, fetched_at INTEGER NOT NULL) WITHOUT ROWID;`,
  // 9: sync shards that held internal sessions (told to open new ones when this object starts again).
  `CREATE TABLE sync_shards (name TEXT PRIMARY KEY) WITHOUT ROWID;`,
  // 10: a shard's internal session survives this object's restarts: its id and versions, and each query's caller.
  `ALTER TABLE sync_shards ADD COLUMN connection_id TEXT;
   ALTER TABLE sync_shards ADD COLUMN attachment TEXT;
   ALTER TABLE sync_queries ADD COLUMN caller TEXT;`,
  // 11: mutations sent by sessions still in the waiting room, run once they are admitted (they survive hibernation).
  `CREATE TABLE sync_held_mutations (
     connection_id TEXT NOT NULL, seq INTEGER NOT NULL, message TEXT NOT NULL, auth TEXT,
     PRIMARY KEY (connection_id, seq)
   ) WITHOUT ROWID;`,
  // 12: file storage: the upload secret and public URL, uploads streaming now, upload URLs already used (until they expire).
  `CREATE TABLE storage_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE storage_uploads (storage_id TEXT PRIMARY KEY, started_at INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE storage_used_tokens (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
   CREATE INDEX storage_used_tokens_by_expiry ON storage_used_tokens (expires_at);`,
  // 13: vector indexes: per indexed document its float32 vector, sign code and filter keys; the rowid is its slot number.
  `CREATE TABLE vector_entries (
     index_name TEXT NOT NULL, doc_id TEXT NOT NULL, vector BLOB NOT NULL, code BLOB NOT NULL, filter_keys TEXT NOT NULL,
     UNIQUE (index_name, doc_id)
   );`,
  // 14: the deployment's environment variables (process.env), and the audit of their changes (never the values).
  `CREATE TABLE environment_variables (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE environment_changes (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL, changed_at INTEGER NOT NULL);`,
  // 15: snapshot imports staged before they apply in one transaction (docs/SNAPSHOTS.md): each document with the
  //     file and line it came from and the id it keeps or gets; files stored in R2 for it; files a replace orphaned.
  `CREATE TABLE snapshot_imports (import_id TEXT PRIMARY KEY, options TEXT NOT NULL, started_at INTEGER NOT NULL, rows INTEGER NOT NULL, last_creation_time REAL NOT NULL) WITHOUT ROWID;
   CREATE TABLE snapshot_import_rows (
     import_id TEXT NOT NULL, seq INTEGER NOT NULL, table_name TEXT NOT NULL, source_id TEXT, id TEXT NOT NULL,
     json TEXT NOT NULL, file TEXT NOT NULL, line INTEGER NOT NULL,
     PRIMARY KEY (import_id, seq)
   ) WITHOUT ROWID;
   CREATE UNIQUE INDEX snapshot_import_rows_by_source ON snapshot_import_rows (import_id, source_id);
   CREATE TABLE snapshot_import_files (
     import_id TEXT NOT NULL, source_id TEXT NOT NULL, storage_id TEXT NOT NULL, sha256 TEXT, size INTEGER,
     PRIMARY KEY (import_id, source_id)
   ) WITHOUT ROWID;
   CREATE TABLE snapshot_orphaned_files (storage_id TEXT PRIMARY KEY) WITHOUT ROWID;`,
  // 16: an import being applied in several transactions (docs/SNAPSHOTS.md): written once its staging is checked whole, it
  //     makes the object's next start finish the apply (the tables it writes, its mode, the timestamp it takes, how far it got).
  `CREATE TABLE snapshot_import_applying (
     import_id TEXT PRIMARY KEY, ts TEXT NOT NULL, tables TEXT NOT NULL, mode TEXT NOT NULL, phase TEXT NOT NULL,
     cursor INTEGER NOT NULL, documents_delta INTEGER NOT NULL, files INTEGER NOT NULL
   ) WITHOUT ROWID;`,
];

/** Whether this object's storage holds a deployment (migrations ran once), read without writing anything. */
export function storageInitialized(sql: SqlStorage): boolean {
  return sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").toArray().length > 0;
}

/** Applies `steps` (the deployment's, or another object's own list) that this storage has not had yet. */
export function migrate(storage: DurableObjectStorage, steps: readonly string[] = MIGRATIONS): void {
  const sql = storage.sql;
  sql.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const current = sql.exec<{ v: number | null }>("SELECT max(version) AS v FROM schema_migrations").one().v ?? 0;
  if (current > steps.length) {
    throw new Error(`Storage schema version ${current} is newer than this code understands (${steps.length}); refusing to run`);
  }
  for (let version = current + 1; version <= steps.length; version++) {
    storage.transactionSync(() => {
      sql.exec(steps[version - 1]!);
      sql.exec("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", version, Date.now());
    });
  }
}
