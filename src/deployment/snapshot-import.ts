/**
 * Snapshot imports on the deployment object (docs/SNAPSHOTS.md). The Worker
 * streams the upload and hands this object documents in batches of at most
 * `snapshotBatchBytes`; each is checked and staged in SQLite, never applied.
 * Only `finish` applies them, in the function lock throughout (no function
 * sees an import half done): every staged document is checked against the
 * schema once the ids it references are known, and only then is the import
 * marked as applying and written in transactions of bounded size, each
 * committed before the next, so the apply's memory does not grow with the
 * snapshot. A failure before the mark (a bad line, a schema violation, a file
 * missing or cut short, the upload cut off) leaves the deployment as it was:
 * the staged rows are dropped and the files stored for the import deleted
 * from R2. After the mark the import only rolls forward, at the object's next
 * start if this one ends first. One commit is announced, rewriting the
 * written tables wholesale.
 */
import {
  convexToJson,
  indexKeyOf,
  jsonToConvex,
  keyToBytes,
  newDocumentId,
  nextUp,
  searchDocumentOf,
  utf8Length,
  vectorDocumentOf,
  type Document,
  type Engine,
  type Schema,
  type Value,
} from "../engine/index.ts";
import type { KnobValues } from "../knobs/knob-table.ts";
import type { SearchIndexes } from "../search/search-indexes.ts";
import type { VectorIndexes } from "../vectors/vector-indexes.ts";
import { signCode } from "../vectors/binary-codes.ts";
import { readDocumentLine, rewriteReferences, STORAGE_TABLE, type LineEncoding } from "../snapshots/documents.ts";
import { ImportProblem } from "../snapshots/import-problem.ts";
import type { ImportOptions } from "../snapshots/layout.ts";
import type { R2BlobStore } from "./r2-blob-store.ts";
import type { SqliteStore } from "./sqlite-store.ts";

/** What a finished import wrote. */
export interface ImportReport {
  /** Documents written, by table. */
  tables: Record<string, number>;
  files: number;
  /** The commit's timestamp. */
  ts: string;
}

/** An answer over RPC: an import problem travels as a message (errors lose their class on the way). */
export type ImportAnswer<T> = ({ ok: true } & T) | { ok: false; error: string };

export interface SnapshotImportsOptions {
  storage: DurableObjectStorage;
  schema: Schema;
  engine: Engine;
  store: SqliteStore;
  search: SearchIndexes;
  vectors: VectorIndexes;
  blobs: R2BlobStore | null;
  knobs: () => KnobValues;
  now: () => number;
  /** A hop through the runtime's event queue: the object commits the writes made before it (an output gate opens). */
  yieldToEvents: () => Promise<void>;
  /** Resets the object (an apply that failed half done: the next start finishes it). */
  restart: (reason: string) => void;
}

/** A staged document as the apply reads it. */
type StagedRow = {
  seq: number;
  table_name: string;
  id: string;
  json: string;
  file: string;
  line: number;
};

/** The mark of an import being applied (table `snapshot_import_applying`): what the object's next start needs to finish it. */
interface Applying {
  /** The commit timestamp it takes, reserved when it was marked. */
  ts: bigint;
  /** Documents staged, by table: the tables it writes, and its report. */
  tables: Record<string, number>;
  mode: ImportOptions["mode"];
  /** A replace first empties the tables ("clear"), then every import writes its documents ("insert"). */
  phase: "clear" | "insert";
  /** The last staged row written (those up to it are dropped as they are written). */
  cursor: number;
  /** Documents added less those deleted so far (the deployment's count moves by it at the end). */
  documentsDelta: number;
  files: number;
}

interface ImportRecord {
  options: ImportOptions;
  rows: number;
  lastCreationTime: number;
}

/** Imports not finished after this long are someone's abandoned upload: the next import clears them away. */
const ABANDONED_AFTER_MS = 24 * 3_600_000;

export class SnapshotImports {
  private readonly o: SnapshotImportsOptions;
  private readonly sql: SqlStorage;

  constructor(options: SnapshotImportsOptions) {
    this.o = options;
    this.sql = options.storage.sql;
  }

  /** Starts an import: its id, and how much the Worker may send in one batch and one line. */
  async begin(options: ImportOptions): Promise<{ importId: string; batchBytes: number; maxLineBytes: number }> {
    for (const { import_id } of this.sql
      .exec<{ import_id: string }>(
        "SELECT import_id FROM snapshot_imports WHERE started_at < ? AND import_id NOT IN (SELECT import_id FROM snapshot_import_applying)",
        this.o.now() - ABANDONED_AFTER_MS,
      )
      .toArray()) {
      await this.abort(import_id);
    }
    const importId = crypto.randomUUID();
    this.sql.exec(
      "INSERT INTO snapshot_imports (import_id, options, started_at, rows, last_creation_time) VALUES (?, ?, ?, 0, 0)",
      importId,
      JSON.stringify(options),
      this.o.now(),
    );
    const knobs = this.o.knobs();
    return { importId, batchBytes: knobs.snapshotBatchBytes, maxLineBytes: maxLineBytes(knobs) };
  }

  private record(importId: string): ImportRecord {
    const row = this.sql
      .exec<{ options: string; rows: number; last_creation_time: number }>(
        "SELECT options, rows, last_creation_time FROM snapshot_imports WHERE import_id = ?",
        importId,
      )
      .toArray()[0];
    if (!row) throw new ImportProblem("import", null, "no such import in progress (it finished, failed or was abandoned)");
    return { options: JSON.parse(row.options) as ImportOptions, rows: row.rows, lastCreationTime: row.last_creation_time };
  }

  /** Checks and stages one batch of a documents file's lines; a bad line fails it (and the import) naming the line. */
  stage(importId: string, file: string, table: string, encoding: LineEncoding, lines: { line: number; text: string }[]): void {
    const record = this.record(importId);
    if (!this.o.schema.isTableName(table)) throw new ImportProblem(file, null, `${JSON.stringify(table)} is not a valid table name`);
    const maxBytes = maxLineBytes(this.o.knobs());
    let { rows, lastCreationTime } = record;
    this.o.storage.transactionSync(() => {
      for (const { line, text } of lines) {
        if (utf8Length(text) > maxBytes) throw new ImportProblem(file, line, `is longer than ${maxBytes} bytes`);
        const staged = readDocumentLine(file, line, text, encoding, table);
        // A document without a creation time gets the import's time, strictly increasing as Convex's are.
        const creationTime = staged.creationTime ?? (lastCreationTime = Math.max(this.o.now(), nextUp(lastCreationTime)));
        lastCreationTime = Math.max(lastCreationTime, creationTime);
        // A file whose id is live here gets a new one (its references are rewritten like a Convex id's): its bytes
        // go to R2 under its id while the upload runs, and must not overwrite the live file's, nor be deleted with
        // them by a refused import's abort or a replace's clean-up.
        const id = table === STORAGE_TABLE && staged.id === staged.sourceId && this.isLive(staged.id) ? newDocumentId(STORAGE_TABLE) : staged.id;
        const document = { ...staged.fields, _id: id, _creationTime: creationTime };
        try {
          this.sql.exec(
            "INSERT INTO snapshot_import_rows (import_id, seq, table_name, source_id, id, json, file, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            importId,
            ++rows,
            table,
            staged.sourceId,
            id,
            JSON.stringify(convexToJson(document)),
            file,
            line,
          );
        } catch (error) {
          if (!/UNIQUE/i.test(String(error))) throw error;
          const first = this.sql
            .exec<{ file: string; line: number }>(
              "SELECT file, line FROM snapshot_import_rows WHERE import_id = ? AND source_id = ?",
              importId,
              staged.sourceId,
            )
            .one();
          throw new ImportProblem(file, line, `has the _id ${staged.sourceId}, which ${first.file} line ${first.line} has too`);
        }
      }
      this.sql.exec("UPDATE snapshot_imports SET rows = ?, last_creation_time = ? WHERE import_id = ?", rows, lastCreationTime, importId);
    });
  }

  /**
   * Where a snapshot's file goes: the id its `_storage` row was given and the size it declares (the
   * Worker streams exactly that many bytes to R2 under that id). Remembered first, so an abort deletes it.
   */
  fileTarget(importId: string, sourceId: string, entry: string): { storageId: string; size: number } {
    this.record(importId);
    if (!this.o.blobs) throw new ImportProblem(entry, null, "this deployment has no file storage (the R2 binding FILES)");
    const row = this.sql
      .exec<{ id: string; json: string }>(
        "SELECT id, json FROM snapshot_import_rows WHERE import_id = ? AND source_id = ? AND table_name = ?",
        importId,
        sourceId,
        STORAGE_TABLE,
      )
      .toArray()[0];
    if (!row)
      throw new ImportProblem(
        entry,
        null,
        `has no row in _storage/documents.jsonl before it (a snapshot lists its files' rows first, as Convex's export does)`,
      );
    this.sql.exec(
      "INSERT OR REPLACE INTO snapshot_import_files (import_id, source_id, storage_id, sha256, size) VALUES (?, ?, ?, NULL, NULL)",
      importId,
      sourceId,
      row.id,
    );
    return { storageId: row.id, size: (JSON.parse(row.json) as { size: number }).size };
  }

  /** A file's bytes are in R2, with this digest. */
  fileStored(importId: string, sourceId: string, sha256: string, size: number): void {
    this.sql.exec("UPDATE snapshot_import_files SET sha256 = ?, size = ? WHERE import_id = ? AND source_id = ?", sha256, size, importId, sourceId);
  }

  /** Forgets an import and deletes the files it stored; the deployment is as it was. An import already applying only rolls forward: left alone. */
  async abort(importId: string): Promise<void> {
    if (this.applying(importId)) return;
    const stored = this.sql.exec<{ storage_id: string }>("SELECT storage_id FROM snapshot_import_files WHERE import_id = ?", importId).toArray();
    this.o.storage.transactionSync(() => this.forgetRows(importId));
    for (const { storage_id } of stored)
      await this.o.blobs
        ?.delete(storage_id)
        .catch((error: unknown) => console.error(`import ${importId}: file ${storage_id} could not be deleted (orphaned in R2):`, error));
  }

  /** Drops everything recorded of an import (its files' bytes stay in R2: they are the deployment's once it is applied). */
  private forgetRows(importId: string): void {
    this.sql.exec("DELETE FROM snapshot_import_rows WHERE import_id = ?", importId);
    this.sql.exec("DELETE FROM snapshot_import_files WHERE import_id = ?", importId);
    this.sql.exec("DELETE FROM snapshot_imports WHERE import_id = ?", importId);
    this.sql.exec("DELETE FROM snapshot_import_applying WHERE import_id = ?", importId);
  }

  /**
   * Applies a staged import, in the function lock from the first check to the last write (no function
   * sees it half done): every staged document is checked (schema, size, ids) and the files' digests,
   * and only then is the import marked as applying; it is written in transactions of at most
   * `snapshotApplyBatchDocuments` documents, each committed before the next, and made visible at the
   * timestamp the mark reserved, announced as one commit over the tables it wrote. A problem found
   * before the mark applies nothing and aborts the import; after it, the import only rolls forward
   * (here, or at the object's next start: `resume`).
   */
  async finish(importId: string): Promise<ImportReport> {
    let marked = false;
    try {
      const report = await this.o.engine.exclusive(async () => {
        await this.check(importId);
        marked = true;
        return this.rollForward(importId);
      });
      await this.deleteOrphanedFiles();
      return report;
    } catch (error) {
      if (!marked) await this.abort(importId);
      // Half applied, and the lock is let go: the object starts again, and its start finishes the apply.
      else this.o.restart(`import ${importId} failed while applying (the object's next start finishes it): ${String(error)}`);
      throw error;
    }
  }

  /**
   * At the object's start: an import an earlier run left applying (an eviction, a crash, a deploy) is
   * finished first (the lock is taken before anything else can queue for it), then the files' bytes a
   * committed replace orphaned are deleted.
   */
  async resume(): Promise<void> {
    const applying = this.sql.exec<{ import_id: string }>("SELECT import_id FROM snapshot_import_applying").toArray();
    for (const { import_id } of applying) {
      await this.o.engine.exclusive(async () => {
        console.log(`import ${import_id}: an earlier run of this object left it applying; finishing it`);
        await this.rollForward(import_id);
      });
    }
    await this.deleteOrphanedFiles();
  }

  private applying(importId: string): Applying | null {
    const row = this.sql
      .exec<{ ts: string; tables: string; mode: string; phase: string; cursor: number; documents_delta: number; files: number }>(
        "SELECT ts, tables, mode, phase, cursor, documents_delta, files FROM snapshot_import_applying WHERE import_id = ?",
        importId,
      )
      .toArray()[0];
    if (!row) return null;
    return {
      ts: BigInt(row.ts),
      tables: JSON.parse(row.tables) as Record<string, number>,
      mode: row.mode as ImportOptions["mode"],
      phase: row.phase as Applying["phase"],
      cursor: row.cursor,
      documentsDelta: row.documents_delta,
      files: row.files,
    };
  }

  /**
   * Everything that can refuse an import, before anything is applied: the files and their digests, the
   * tables' emptiness, and every staged document (its references rewritten to the ids given, checked
   * against the schema and the size limit, its id against the deployment's), a page at a time. Then
   * the mark, committed alone: from here the import applies whatever happens.
   */
  private async check(importId: string): Promise<void> {
    const { options } = this.record(importId);
    const tables = this.sql
      .exec<{ table_name: string; count: number }>(
        "SELECT table_name, count(*) AS count FROM snapshot_import_rows WHERE import_id = ? GROUP BY table_name",
        importId,
      )
      .toArray();
    if (options.table !== null && tables.length === 0) tables.push({ table_name: options.table, count: 0 });
    this.checkFiles(importId);
    for (const { table_name } of tables) {
      if (options.mode === "requireEmpty" && this.hasDocuments(table_name)) {
        throw new ImportProblem(
          table_name,
          null,
          `table ${table_name} already has documents: import with --replace to replace them, or --append to add to them`,
        );
      }
    }
    const renames =
      this.sql
        .exec<{ n: number }>("SELECT count(*) AS n FROM snapshot_import_rows WHERE import_id = ? AND source_id IS NOT NULL AND source_id != id", importId)
        .one().n > 0;
    const replaced = new Set(options.mode === "replace" ? tables.map((t) => t.table_name) : []);
    for (let after = 0; ;) {
      const page = this.stagedPage(importId, after);
      if (page.length === 0) break;
      after = page.at(-1)!.seq;
      // A page that stored rewritten references commits before the next (reading alone holds nothing).
      if (this.o.storage.transactionSync(() => this.checkPage(importId, page, renames, replaced))) await this.o.yieldToEvents();
    }
    const files = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM snapshot_import_files WHERE import_id = ?", importId).one().n;
    this.sql.exec(
      "INSERT INTO snapshot_import_applying (import_id, ts, tables, mode, phase, cursor, documents_delta, files) VALUES (?, ?, ?, ?, ?, 0, 0, ?)",
      importId,
      this.o.engine.nextCommitTimestamp().toString(),
      JSON.stringify(Object.fromEntries(tables.map((t) => [t.table_name, t.count]))),
      options.mode,
      options.mode === "replace" ? "clear" : "insert",
      files,
    );
    await this.o.yieldToEvents();
  }

  /** The staged rows after `after`, in order: at most `snapshotApplyBatchDocuments`, and `snapshotBatchBytes` (at least one). */
  private stagedPage(importId: string, after: number): StagedRow[] {
    const { snapshotBatchBytes, snapshotApplyBatchDocuments } = this.o.knobs();
    const page: StagedRow[] = [];
    let bytes = 0;
    for (const row of this.sql.exec<StagedRow>(
      "SELECT seq, table_name, id, json, file, line FROM snapshot_import_rows WHERE import_id = ? AND seq > ? ORDER BY seq LIMIT ?",
      importId,
      after,
      snapshotApplyBatchDocuments,
    )) {
      page.push(row);
      bytes += row.json.length;
      if (bytes >= snapshotBatchBytes) break;
    }
    return page;
  }

  /** Checks a page of staged documents; with `renames`, stores each one's references rewritten, as it will be written (then true). */
  private checkPage(importId: string, page: StagedRow[], renames: boolean, replaced: ReadonlySet<string>): boolean {
    let wrote = false;
    const { maxDocumentBytes } = this.o.knobs();
    const schema = this.o.schema;
    const renamed = (id: string) =>
      this.sql.exec<{ id: string }>("SELECT id FROM snapshot_import_rows WHERE import_id = ? AND source_id = ?", importId, id).toArray()[0]?.id ?? null;
    for (const row of page) {
      const fail = (problem: string) => new ImportProblem(row.file, row.line, problem);
      let document = jsonToConvex(JSON.parse(row.json)) as Document;
      if (renames) document = rewriteReferences(document, renamed) as Document;
      const { _id, _creationTime, ...fields } = document;
      const problem = schema.validateDocument(row.table_name, fields as Record<string, Value>);
      if (problem) throw fail(`does not match the schema of table ${row.table_name}: ${problem}`);
      const json = renames ? JSON.stringify(convexToJson(document)) : row.json;
      const size = utf8Length(json);
      if (size > maxDocumentBytes) throw fail(`is a document of ${size} bytes, past maxDocumentBytes (${maxDocumentBytes})`);
      const existing = this.sql.exec<{ table_name: string }>("SELECT table_name FROM documents WHERE id = ?", row.id).toArray()[0];
      if (existing && !replaced.has(existing.table_name))
        throw fail(`has the _id ${row.id}, which a document of this deployment already has (appending keeps ids: import with --replace, or without _id)`);
      if (json !== row.json) {
        this.sql.exec("UPDATE snapshot_import_rows SET json = ? WHERE import_id = ? AND seq = ?", json, importId, row.seq);
        wrote = true;
      }
    }
    return wrote;
  }

  /** Applies a marked import batch by batch, yielding between them so each commits, then makes it visible. */
  private async rollForward(importId: string): Promise<ImportReport> {
    while (!this.o.storage.transactionSync(() => this.applyBatch(importId))) await this.o.yieldToEvents();
    return this.complete(importId);
  }

  /**
   * One transaction of a marked import, its progress recorded with it: a replace first deletes what the
   * tables held, a batch at a time; then a batch of staged documents is written (with their index, search
   * and vector entries) and its staged rows dropped. True when nothing is left to write.
   */
  private applyBatch(importId: string): boolean {
    const marker = this.applying(importId);
    if (!marker) throw new Error(`import ${importId} is not being applied`);
    if (marker.phase === "clear") {
      let budget = this.o.knobs().snapshotApplyBatchDocuments;
      let deleted = 0;
      for (const table of Object.keys(marker.tables)) {
        if (budget <= 0) break;
        const cleared = this.clearSome(table, budget);
        budget -= cleared.work;
        deleted += cleared.documents;
      }
      if (budget > 0) this.sql.exec("UPDATE snapshot_import_applying SET phase = 'insert' WHERE import_id = ?", importId);
      this.sql.exec("UPDATE snapshot_import_applying SET documents_delta = documents_delta - ? WHERE import_id = ?", deleted, importId);
      return false;
    }
    const page = this.stagedPage(importId, marker.cursor);
    if (page.length === 0) return true;
    const last = page.at(-1)!.seq;
    this.insertPage(page);
    this.sql.exec("DELETE FROM snapshot_import_rows WHERE import_id = ? AND seq <= ?", importId, last);
    this.sql.exec("UPDATE snapshot_import_applying SET cursor = ?, documents_delta = documents_delta + ? WHERE import_id = ?", last, page.length, importId);
    return false;
  }

  /** The last transaction: the counters and the timestamp the mark reserved, the import forgotten, and one commit announced. */
  private complete(importId: string): ImportReport {
    const marker = this.applying(importId)!;
    const { lastCreationTime } = this.record(importId);
    // Nothing commits while an apply holds the lock; should something have moved the clock past the reserved timestamp, the next one.
    const ts = marker.ts > this.o.store.lastTimestamp() ? marker.ts : this.o.engine.nextCommitTimestamp();
    this.o.engine.commitBulk(ts, () => {
      this.o.store.commitBulk(ts, () => {
        this.forgetRows(importId);
        return { documentsDelta: marker.documentsDelta, lastCreationTime };
      });
      return Object.keys(marker.tables);
    });
    // Loaded search partitions and vector indexes load again from what was written.
    this.o.search.unloadAll();
    this.o.vectors.unloadAll();
    return { tables: marker.tables, files: marker.files, ts: ts.toString() };
  }

  /** Every staged `_storage` row has its file, whole, with the digest the row says. */
  private checkFiles(importId: string): void {
    const bad = this.sql
      .exec<{ file: string; line: number; source_id: string; want: string; got: string | null; size: number | null; want_size: number }>(
        `SELECT r.file, r.line, r.source_id, json_extract(r.json, '$.sha256') AS want, f.sha256 AS got, f.size AS size, json_extract(r.json, '$.size') AS want_size
         FROM snapshot_import_rows r LEFT JOIN snapshot_import_files f ON f.import_id = r.import_id AND f.source_id = r.source_id
         WHERE r.import_id = ? AND r.table_name = ? AND (f.sha256 IS NULL OR f.sha256 != json_extract(r.json, '$.sha256')) LIMIT 1`,
        importId,
        STORAGE_TABLE,
      )
      .toArray()[0];
    if (!bad) return;
    const problem =
      bad.got === null
        ? `names the file _storage/${bad.source_id}, which the snapshot does not carry`
        : `says the file's sha256 is ${bad.want}, but its bytes' is ${bad.got}`;
    throw new ImportProblem(bad.file, bad.line, problem);
  }

  private isLive(id: string): boolean {
    return this.sql.exec("SELECT 1 FROM documents WHERE id = ?", id).toArray().length > 0;
  }

  private hasDocuments(table: string): boolean {
    return this.sql.exec("SELECT 1 FROM index_entries WHERE index_name = ? LIMIT 1", `${table}.by_id`).toArray().length > 0;
  }

  /**
   * Deletes up to `budget` rows of what a table holds (a replace): its index entries (found by index
   * name), then its documents through `by_id` (a file's row orphans its bytes, deleted after the commit);
   * once it holds nothing, its search and vector indexes. Returns the rows it deleted and how many were
   * documents.
   */
  private clearSome(table: string, budget: number): { work: number; documents: number } {
    const byId = `${table}.by_id`;
    // Every index of the table but by_id, whatever the schema says now: qualified names are "<table>.<index>".
    const entries = this.sql
      .exec<{ index_name: string; key: ArrayBuffer }>(
        "SELECT index_name, key FROM index_entries WHERE index_name > ? AND index_name < ? AND index_name != ? LIMIT ?",
        `${table}.`,
        `${table}/`,
        byId,
        budget,
      )
      .toArray();
    for (const { index_name, key } of entries) this.sql.exec("DELETE FROM index_entries WHERE index_name = ? AND key = ?", index_name, key);
    const documents = this.sql
      .exec<{ key: ArrayBuffer; doc_id: string }>("SELECT key, doc_id FROM index_entries WHERE index_name = ? LIMIT ?", byId, budget - entries.length)
      .toArray();
    for (const { key, doc_id } of documents) {
      if (table === STORAGE_TABLE) this.sql.exec("INSERT OR IGNORE INTO snapshot_orphaned_files (storage_id) VALUES (?)", doc_id);
      this.sql.exec("DELETE FROM documents WHERE id = ?", doc_id);
      this.sql.exec("DELETE FROM index_entries WHERE index_name = ? AND key = ?", byId, key);
    }
    const work = entries.length + documents.length;
    if (work < budget) {
      const definition = this.o.schema.table(table);
      for (const index of definition.searchIndexes.values()) this.o.search.storage.dropIndex(index.qualifiedName);
      for (const index of definition.vectorIndexes.values()) this.o.vectors.storage.dropIndex(index.qualifiedName);
    }
    return { work, documents: documents.length };
  }

  /** Writes a page of checked staged documents as they are: the document, its index entries, search log entries and vector rows. */
  private insertPage(page: StagedRow[]): void {
    const schema = this.o.schema;
    const searchEntries = new Map<
      string,
      { index: string; partition: string; entries: { id: string; old: null; new: ReturnType<typeof searchDocumentOf> }[] }
    >();
    for (const row of page) {
      const document = jsonToConvex(JSON.parse(row.json)) as Document;
      const table = schema.table(row.table_name);
      this.sql.exec("INSERT INTO documents (id, table_name, json, bytes) VALUES (?, ?, ?, ?)", row.id, row.table_name, row.json, utf8Length(row.json));
      for (const index of table.indexes.values()) {
        this.sql.exec(
          "INSERT INTO index_entries (index_name, key, doc_id) VALUES (?, ?, ?)",
          index.qualifiedName,
          keyToBytes(indexKeyOf(index, document)).buffer,
          row.id,
        );
      }
      for (const index of table.searchIndexes.values()) {
        const version = searchDocumentOf(index, document);
        const key = `${index.qualifiedName}\u0000${version.partition}`;
        let group = searchEntries.get(key);
        if (!group) searchEntries.set(key, (group = { index: index.qualifiedName, partition: version.partition, entries: [] }));
        group.entries.push({ id: row.id, old: null, new: version });
      }
      for (const index of table.vectorIndexes.values()) {
        const view = vectorDocumentOf(index, document);
        if (view) this.o.vectors.storage.put(index.qualifiedName, row.id, view, signCode(view.vector));
      }
    }
    for (const group of searchEntries.values()) this.o.search.storage.appendLog(group.index, group.partition, group.entries);
  }

  /** Bytes of the files a replace took the rows of, deleted once that commit stands (as a mutation's deletes are). */
  private async deleteOrphanedFiles(): Promise<void> {
    for (;;) {
      const ids = this.sql
        .exec<{ storage_id: string }>("SELECT storage_id FROM snapshot_orphaned_files LIMIT 100")
        .toArray()
        .map((row) => row.storage_id);
      if (ids.length === 0) return;
      for (const id of ids)
        await this.o.blobs
          ?.delete(id)
          .catch((error: unknown) => console.error(`file ${id}: replaced by an import but its bytes could not be deleted (orphaned in R2):`, error));
      for (const id of ids) this.sql.exec("DELETE FROM snapshot_orphaned_files WHERE storage_id = ?", id);
    }
  }
}

/** The longest line an import takes: a document at the size limit, with room for its export form. */
export function maxLineBytes(knobs: KnobValues): number {
  return knobs.maxDocumentBytes * 2 + 65_536;
}
