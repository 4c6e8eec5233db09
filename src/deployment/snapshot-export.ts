/**
 * Snapshot exports on the deployment object: which tables there are, and
 * their documents a page at a time (at most `snapshotBatchBytes`, resuming
 * after the last key), so the Worker streams a snapshot of any size while
 * this object holds one page. Pages follow `by_creation_time`, so an import
 * of the snapshot stages documents in the order they were made.
 *
 * Pages are read in separate calls: a commit between two of them shows in
 * the later pages (a snapshot of a deployment that is being written is not
 * one point in time; see docs/SNAPSHOTS.md).
 */
import { isSystemTable } from "../engine/index.ts";

/** System tables a snapshot carries (scheduled functions and crons are the deployment's own, as on Convex). */
const EXPORTED_SYSTEM_TABLES = new Set(["_storage"]);

export function exportTables(sql: SqlStorage): { name: string; documents: number }[] {
  return sql
    .exec<{ index_name: string; documents: number }>(
      "SELECT index_name, count(*) AS documents FROM index_entries WHERE index_name LIKE '%.by_id' GROUP BY index_name ORDER BY index_name",
    )
    .toArray()
    .map((row) => ({ name: row.index_name.slice(0, -".by_id".length), documents: row.documents }))
    .filter((table) => !isSystemTable(table.name) || EXPORTED_SYSTEM_TABLES.has(table.name));
}

export interface ExportPage {
  /** Stored documents (Convex JSON), in `by_creation_time` order. */
  documents: string[];
  /** Where the next page starts (the last key read), or null after the last page. */
  next: ArrayBuffer | null;
}

export function exportPage(sql: SqlStorage, table: string, after: ArrayBuffer | null, maxBytes: number): ExportPage {
  const documents: string[] = [];
  let bytes = 0;
  let last: ArrayBuffer | null = null;
  const rows = sql.exec<{ key: ArrayBuffer; json: string }>(
    `SELECT e.key AS key, d.json AS json FROM index_entries e JOIN documents d ON d.id = e.doc_id
     WHERE e.index_name = ? AND e.key > ? ORDER BY e.key LIMIT 10000`,
    `${table}.by_creation_time`,
    after ?? new ArrayBuffer(0),
  );
  for (const row of rows) {
    documents.push(row.json);
    last = row.key;
    bytes += row.json.length;
    if (bytes >= maxBytes) return { documents, next: last };
  }
  // Fewer rows than the statement's limit: the table ends here.
  return { documents, next: documents.length === 10000 ? last : null };
}
