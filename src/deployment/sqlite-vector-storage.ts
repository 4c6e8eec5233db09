/**
 * Vector index rows in the deployment's SQLite (`vector_entries`): the
 * float32 vector as a BLOB, the sign code as a BLOB, the filter keys as
 * JSON. The rowid is the row number the loaded index keeps; an upsert keeps
 * it, so a patched document stays in its slot.
 */
import type { IndexKey, VectorDocument } from "../engine/index.ts";
import type { ScoredVector, VectorRow, VectorStorage } from "../vectors/storage.ts";

/** A typed array's bytes as their own ArrayBuffer (a BLOB parameter). */
function blob(array: Float32Array | Uint32Array): ArrayBuffer {
  return array.buffer.slice(array.byteOffset, array.byteOffset + array.byteLength) as ArrayBuffer;
}

export class SqliteVectorStorage implements VectorStorage {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
  }

  put(index: string, id: string, document: VectorDocument, code: Uint32Array): number {
    return this.sql
      .exec<{ row: number }>(
        `INSERT INTO vector_entries (index_name, doc_id, vector, code, filter_keys) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (index_name, doc_id) DO UPDATE SET vector = excluded.vector, code = excluded.code, filter_keys = excluded.filter_keys
         RETURNING rowid AS row`,
        index,
        id,
        blob(document.vector),
        blob(code),
        JSON.stringify(document.filterKeys),
      )
      .one().row;
  }

  delete(index: string, id: string): number | null {
    return (
      this.sql.exec<{ row: number }>("DELETE FROM vector_entries WHERE index_name = ? AND doc_id = ? RETURNING rowid AS row", index, id).toArray()[0]?.row ??
      null
    );
  }

  *rows(index: string): Iterable<VectorRow> {
    for (const row of this.sql.exec<{ row: number; code: ArrayBuffer; filter_keys: string }>(
      "SELECT rowid AS row, code, filter_keys FROM vector_entries WHERE index_name = ?",
      index,
    )) {
      yield { row: row.row, code: new Uint32Array(row.code), filterKeys: JSON.parse(row.filter_keys) as IndexKey[] };
    }
  }

  *vectors(index: string, rows: readonly number[]): Iterable<ScoredVector> {
    // One parameter for the whole list (a statement takes at most 100). Only the rowid in the WHERE: with
    // `index_name = ?` beside it SQLite walked the index's every entry (40 ms at 100,000 rows) instead of
    // looking each rowid up; the index name is checked here.
    const cursor = this.sql.exec<{ row: number; doc_id: string; index_name: string; vector: ArrayBuffer }>(
      "SELECT rowid AS row, doc_id, index_name, vector FROM vector_entries WHERE rowid IN (SELECT value FROM json_each(?))",
      JSON.stringify(rows),
    );
    for (const row of cursor) if (row.index_name === index) yield { row: row.row, id: row.doc_id, vector: new Float32Array(row.vector) };
  }

  count(index: string): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM vector_entries WHERE index_name = ?", index).one().n;
  }

  dropIndex(index: string): void {
    this.sql.exec("DELETE FROM vector_entries WHERE index_name = ?", index);
  }
}
