/**
 * A function's transaction: it reads the committed store through an overlay
 * of its own pending writes (so a mutation sees what it wrote), records what
 * it read (for queries), charges every read and write against the function's
 * budgets (`EngineLimits`), and hands its effect to the engine's commit as a
 * write-set. Nothing reaches the store until `finish()`; a throw discards it.
 * The `ctx.db` API in `database.ts` is a thin layer over this.
 *
 * A query or mutation that calls another (`ctx.runQuery`/`ctx.runMutation`,
 * into a component or its own app) runs it in a `child()`: an overlay over
 * this one, reading through its writes and recording into the same read-set.
 * When the call returns, `commitInto` merges the child's writes into this
 * transaction (they commit with the caller's, or not at all); when it throws,
 * the child is dropped and only its own writes are undone.
 */
import type { Document, Value } from "./values.ts";
import { convexToJson, describe, utf8Length, valuesEqual } from "./values.ts";
import type { KeyInterval, IndexKey } from "./keys.ts";
import { encodeKey, keySuccessor } from "./keys.ts";
import type { IndexDefinition, Schema } from "./schema.ts";
import { indexKeyOf, isSystemTable } from "./schema.ts";
import type { DocumentStore, DocumentWrite, IndexEntry, IndexWrite, Order, StoredDocument } from "./store.ts";
import type { ReadSetRecorder } from "./read-set.ts";
import type { EngineLimits } from "./limits.ts";
import { FunctionError } from "./errors.ts";
import { isDocumentId, newDocumentId } from "./ids.ts";
import { sameSearchDocument, searchDocumentOf, type SearchFilterBuilder, type SearchWrite } from "./search.ts";
import { sameVectorDocument, vectorDocumentOf, type VectorWrite } from "./vectors.ts";

interface PendingWrite {
  table: string;
  before: Document | null;
  /** `before`'s stored size in bytes (0 when it did not exist). */
  beforeBytes: number;
  after: Document | null;
  /** `after` in Convex JSON, encoded once when written (size check, then storage). */
  json: string | null;
  /** `json`'s size in UTF-8 bytes, measured once at encoding (0 when deleted). */
  afterBytes: number;
  /** What this write costs against `maxBytesWritten` (see `writeCost`). */
  cost: number;
}

/** What a write costs beyond its document (the id and row overhead), against `maxBytesWritten`. */
const ID_BYTES = 32;

/** What a transaction reads beneath its own writes: the store, or for a nested call its caller's transaction. */
export type TransactionBase = Pick<DocumentStore, "getDocument" | "scanIndex" | "search" | "lastTimestamp">;

export interface TransactionOptions {
  readSet: ReadSetRecorder | null;
  writable: boolean;
  limits: EngineLimits;
  /** Hands out `_creationTime`s for inserts (strictly increasing); writable transactions only. */
  nextCreationTime?: () => number;
  /** The snapshot this transaction reads (`getSnapshotTs`). */
  snapshotTs?: bigint;
  /** The timestamp this transaction commits at, if it commits (writable ones: nothing else commits while it runs). */
  commitTs?: bigint;
}

/** The one answer to a write from a query. */
export function queriesCannotWrite(method: string): FunctionError {
  return new FunctionError("ReadOnly", `Queries cannot write: ctx.db.${method} was called from a query. Use a mutation.`);
}

export class Transaction {
  private pending = new Map<string, PendingWrite>();
  private documentsRead = 0;
  private bytesRead = 0;
  private bytesWritten = 0;
  readonly schema: Schema;
  private readonly store: TransactionBase;
  private readonly options: TransactionOptions;
  /** The caller's transaction, for a nested call's child: its reads count against the caller's budget too. */
  private readonly parent: Transaction | null;

  constructor(schema: Schema, store: TransactionBase, options: TransactionOptions, parent: Transaction | null = null) {
    this.schema = schema;
    this.store = store;
    this.options = options;
    this.parent = parent;
  }

  /**
   * The transaction of a nested call: it sees this one's writes (and records
   * its reads in the same read-set), but its own writes stay its own until
   * `commitInto(this)`. A query's child cannot write; a mutation's can unless
   * `writable` is false (a mutation calling a query).
   */
  child(writable: boolean): Transaction {
    const base: TransactionBase = {
      getDocument: (id) => {
        const found = this.lookup(id);
        return found?.document ? { table: found.table, document: found.document, json: found.json!, bytes: found.bytes } : null;
      },
      scanIndex: (index, interval, order, expectedRows) => this.merged(this.schema.indexes.get(index)!, interval, order, expectedRows, false),
      search: this.store.search,
      lastTimestamp: () => this.snapshotTs,
    };
    return new Transaction(this.schema, base, { ...this.options, writable: this.options.writable && writable }, this);
  }

  /**
   * A nested `snapshotQuery`'s transaction: it reads the committed snapshot,
   * not the caller's pending writes (as Convex's), into the same read-set.
   */
  snapshotChild(): Transaction {
    let root: Transaction = this;
    while (root.parent) root = root.parent;
    return new Transaction(this.schema, root.store, { ...this.options, writable: false }, this);
  }

  /** Applies a finished child's writes to this transaction, charged to this one's write budgets. */
  commitInto(parent: Transaction): void {
    if (this.parent !== parent) throw new Error("A nested transaction commits into the transaction it was made from");
    for (const [id, write] of this.pending) {
      parent.write(id, write.table, write.after, write.json === null ? null : { json: write.json, bytes: write.afterBytes });
    }
    this.pending.clear();
  }

  get writable(): boolean {
    return this.options.writable;
  }

  /** The budgets this transaction runs under. */
  get limits(): EngineLimits {
    return this.options.limits;
  }

  /** What `ctx.db.vars.commitTs` stands for in a written document: the commit's timestamp, known before the commit because commits are serialized. */
  get commitTs(): bigint {
    if (this.options.commitTs === undefined) throw new FunctionError("BadRequest", "ctx.db.vars.commitTs can only be written by a mutation");
    return this.options.commitTs;
  }

  get snapshotTs(): bigint {
    return this.options.snapshotTs ?? this.store.lastTimestamp();
  }

  /** The table of an existing document (for ids that do not name theirs), or null. */
  tableOf(id: string): string | null {
    return this.lookup(id)?.table ?? null;
  }

  /** Documents in `table` (Convex's `count`): reads, and depends on, the whole table. */
  count(table: string): number {
    if (!this.schema.isTableName(table)) throw new FunctionError("BadRequest", `Invalid table name ${describe(table)}`);
    const index = this.schema.table(table).indexes.get("by_creation_time")!;
    const everything = { start: "", end: null };
    let count = 0;
    for (const _entry of this.scan(index, everything, "asc")) count++;
    this.recordRead(index, everything);
    return count;
  }

  /** Charges one document read against the function's document and byte budgets. */
  private countRead(bytes: number): void {
    this.parent?.countRead(bytes);
    const limits = this.options.limits;
    if (++this.documentsRead > limits.maxDocumentsRead) {
      throw new FunctionError("LimitExceeded", `Too many documents read: more than ${limits.maxDocumentsRead} in one function (knob maxDocumentsRead)`);
    }
    this.bytesRead += bytes;
    if (this.bytesRead > limits.maxBytesRead) {
      throw new FunctionError(
        "LimitExceeded",
        `Too many bytes read: ${this.bytesRead} bytes in one function, limit ${limits.maxBytesRead} (knob maxBytesRead)`,
      );
    }
  }

  private committed(id: string): StoredDocument | null {
    return this.store.getDocument(id);
  }

  /** Current version of a document (pending writes first), its table, stored JSON and size in bytes. */
  private lookup(id: string): { table: string; document: Document | null; json: string | null; bytes: number } | null {
    const pending = this.pending.get(id);
    if (pending) return { table: pending.table, document: pending.after, json: pending.json, bytes: pending.afterBytes };
    return this.committed(id);
  }

  /** A document by id, with its stored JSON, or null; records the read. */
  get(id: string): { document: Document; json: string } | null {
    if (typeof id !== "string" || !isDocumentId(id)) {
      throw new FunctionError("BadRequest", `Invalid argument \`id\` for \`db.get\`: ${describe(id as Value)} is not a document id`);
    }
    const found = this.lookup(id);
    if (this.options.readSet) {
      const table = found?.table;
      // A miss still depends on the id: record it against every table's by_id would be
      // wasteful, and ids are never reused, so a miss records nothing a write could hit.
      if (table) {
        const key = encodeKey([id]);
        this.options.readSet.record(`${table}.by_id`, { start: key, end: keySuccessor(key) });
      }
    }
    if (!found?.document) return null;
    this.countRead(found.bytes);
    return { document: found.document, json: found.json! };
  }

  /**
   * Index entries in `interval`, merged with pending writes, in `order`.
   * Lazy: reading stops when the caller stops iterating.
   */
  scan(index: IndexDefinition, interval: KeyInterval, order: Order, expectedRows?: number): Generator<IndexEntry> {
    return this.merged(index, interval, order, expectedRows, true);
  }

  /** `scan`; `charged` false for a child's view of this transaction (the child charges its own reads, and through it this one). */
  private *merged(index: IndexDefinition, interval: KeyInterval, order: Order, expectedRows: number | undefined, charged: boolean): Generator<IndexEntry> {
    const removed = new Set<IndexKey>();
    const added: IndexEntry[] = [];
    for (const write of this.pending.values()) {
      if (write.table !== index.table) continue;
      if (write.before) removed.add(indexKeyOf(index, write.before));
      if (write.after) {
        const key = indexKeyOf(index, write.after);
        if (key >= interval.start && (interval.end === null || key < interval.end))
          added.push({ key, document: write.after, json: write.json!, bytes: write.afterBytes });
      }
    }
    added.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (order === "desc") added.reverse();
    const before = (a: IndexKey, b: IndexKey) => (order === "asc" ? a < b : a > b);
    let next = 0;
    for (const entry of this.store.scanIndex(index.qualifiedName, interval, order, expectedRows)) {
      while (next < added.length && before(added[next]!.key, entry.key)) {
        if (charged) this.countRead(added[next]!.bytes);
        yield added[next++]!;
      }
      if (removed.size > 0 && removed.has(entry.key)) continue;
      if (charged) this.countRead(entry.bytes);
      yield entry;
    }
    while (next < added.length) {
      if (charged) this.countRead(added[next]!.bytes);
      yield added[next++]!;
    }
  }

  recordRead(index: IndexDefinition, interval: KeyInterval): void {
    this.options.readSet?.record(index.qualifiedName, interval);
  }

  /**
   * Runs a text search and yields the matching documents in relevance order,
   * at most `limits.searchMaxScanned`. Records the search read. Inside a
   * mutation, documents it changed appear in their pending version (deleted
   * ones are skipped); the ranking itself is that of the committed index.
   */
  *search(builder: SearchFilterBuilder): Generator<{ document: Document; json: string }> {
    const backend = this.store.search;
    if (!backend) throw new FunctionError("BadRequest", "Text search is not available on this store");
    const limits = this.options.limits;
    const { request, read } = builder.build(
      {
        maxTerms: limits.searchMaxTerms,
        maxFilters: limits.searchMaxFilters,
        maxScanned: limits.searchMaxScanned,
        minPrefixLength: limits.searchMinPrefixLength,
      },
      limits.searchMaxScanned,
    );
    this.options.readSet?.recordSearch(read);
    const { hits, truncated } = backend.search(request);
    for (const hit of hits) {
      const found = this.lookup(hit.id);
      if (!found?.document) continue;
      this.countRead(found.bytes);
      yield { document: found.document, json: found.json! };
    }
    if (truncated) {
      throw new FunctionError(
        "LimitExceeded",
        `Search scanned more than ${limits.searchMaxScanned} results (knob searchMaxScanned); use take() with fewer results or more selective terms`,
      );
    }
  }

  private requireWritable(method: string): void {
    if (!this.options.writable) throw queriesCannotWrite(method);
  }

  private checkFields(table: string, fields: Record<string, Value | undefined>, method: string): void {
    for (const name of Object.keys(fields)) {
      if (name.startsWith("_")) throw new FunctionError("InvalidArgument", `db.${method}: system field ${name} cannot be written`);
    }
    const problem = this.schema.validateDocument(table, fields);
    if (problem)
      throw new FunctionError("InvalidArgument", `Failed to ${method} in table "${table}" because the document does not match the schema: ${problem}`);
  }

  /** Encodes the document for storage, refusing it past the size limit (in UTF-8 bytes, as SQLite counts its row limit). */
  private encode(document: Document): { json: string; bytes: number } {
    const json = JSON.stringify(convexToJson(document));
    const bytes = utf8Length(json);
    if (bytes > this.options.limits.maxDocumentBytes) {
      throw new FunctionError("LimitExceeded", `Document is too large: ${bytes} bytes, limit ${this.options.limits.maxDocumentBytes} (knob maxDocumentBytes)`);
    }
    return { json, bytes };
  }

  /**
   * What a write costs against `maxBytesWritten`: the new document, plus for
   * each search index of its table a log entry, charged as the old and new
   * documents it indexes (an upper bound, so search maintenance needs no
   * second encoding to be bounded by the same budget).
   */
  private writeCost(table: string, beforeBytes: number, afterBytes: number): number {
    const searchIndexes = this.schema.table(table).searchIndexes.size;
    return afterBytes + searchIndexes * (beforeBytes + afterBytes) + ID_BYTES;
  }

  /**
   * `earlier`: what the id held before, when the caller already knows (null for an id an insert just
   * minted; the version `existing()` found for a patch, replace or delete), so the store is not asked
   * again (issue 27: one read less per write); left out, it is looked up.
   */
  private write(
    id: string,
    table: string,
    after: Document | null,
    encoded: { json: string; bytes: number } | null = null,
    earlier?: { document: Document | null; bytes: number } | null,
  ): void {
    const pending = this.pending.get(id);
    if (!pending && this.pending.size >= this.options.limits.maxDocumentsWritten) {
      throw new FunctionError(
        "LimitExceeded",
        `Too many writes: more than ${this.options.limits.maxDocumentsWritten} documents in one mutation (knob maxDocumentsWritten)`,
      );
    }
    const before = pending ? null : earlier !== undefined ? earlier : this.committed(id);
    const beforeBytes = pending ? pending.beforeBytes : (before?.bytes ?? 0);
    const cost = this.writeCost(table, beforeBytes, encoded?.bytes ?? 0);
    const total = this.bytesWritten - (pending?.cost ?? 0) + cost;
    // Checked before anything changes: a handler that catches this error keeps a consistent overlay.
    if (total > this.options.limits.maxBytesWritten) {
      throw new FunctionError(
        "LimitExceeded",
        `Too many bytes written: ${total} bytes in one mutation, limit ${this.options.limits.maxBytesWritten} (knob maxBytesWritten)`,
      );
    }
    this.bytesWritten = total;
    const json = encoded?.json ?? null;
    const afterBytes = encoded?.bytes ?? 0;
    if (pending) Object.assign(pending, { after, json, afterBytes, cost });
    else this.pending.set(id, { table, before: before?.document ?? null, beforeBytes, after, json, afterBytes, cost });
  }

  private existing(id: string, method: string, system = false): { table: string; document: Document; bytes: number } {
    if (typeof id !== "string" || !isDocumentId(id)) {
      throw new FunctionError("BadRequest", `Invalid argument \`id\` for \`db.${method}\`: ${describe(id as Value)} is not a document id`);
    }
    const found = this.lookup(id);
    if (!found?.document)
      throw new FunctionError("BadRequest", `${method === "delete" ? "Delete" : method === "patch" ? "Update" : "Replace"} on nonexistent document ID ${id}`);
    if (!system && isSystemTable(found.table))
      throw new FunctionError("BadRequest", `System tables (prefixed with \`_\`) are read-only: db.${method} on ${id}`);
    return { table: found.table, document: found.document, bytes: found.bytes };
  }

  /** A document the engine itself writes into a system table (a scheduled job; a file, under the id its bytes were stored by). */
  insertSystem(table: string, fields: Record<string, Value>, id: string = newDocumentId(table)): string {
    this.requireWritable("insert");
    const document = { ...fields, _id: id, _creationTime: this.options.nextCreationTime!() } as Document;
    this.write(id, table, document, this.encode(document));
    return id;
  }

  insert(table: string, fields: Record<string, Value | undefined>): string {
    this.requireWritable("insert");
    if (typeof table !== "string" || isSystemTable(table) || !this.schema.isTableName(table)) {
      throw new FunctionError("BadRequest", `db.insert: invalid table name ${describe(table)}`);
    }
    this.checkFields(table, fields, "insert");
    const id = newDocumentId(table);
    const document = { ...stripUndefined(fields), _id: id, _creationTime: this.options.nextCreationTime!() } as Document;
    this.write(id, table, document, this.encode(document), null);
    return id;
  }

  /** Shallow-merges `fields` (undefined deletes a field); `system` lets the engine update its own tables. */
  patch(id: string, fields: Record<string, Value | undefined>, { system = false } = {}): void {
    this.requireWritable("patch");
    const found = this.existing(id, "patch", system);
    const { table, document } = found;
    const merged: Record<string, Value | undefined> = { ...document };
    for (const [name, value] of Object.entries(fields)) {
      if (name === "_id" || name === "_creationTime") {
        if (valuesEqual(value, document[name])) continue;
        throw new FunctionError("InvalidArgument", `ctx.db.patch: system field ${name} cannot be changed`);
      }
      if (value === undefined) delete merged[name];
      else merged[name] = value;
    }
    const { _id, _creationTime, ...userFields } = merged;
    if (!system) this.checkFields(table, userFields, "patch");
    const next = { ...userFields, _id: document._id, _creationTime: document._creationTime } as Document;
    this.write(id, table, next, this.encode(next), found);
  }

  replace(id: string, fields: Record<string, Value | undefined>): void {
    this.requireWritable("replace");
    const found = this.existing(id, "replace");
    const { table, document } = found;
    const { _id, _creationTime, ...userFields } = fields;
    if ((_id !== undefined && _id !== id) || (_creationTime !== undefined && _creationTime !== document._creationTime)) {
      throw new FunctionError("InvalidArgument", "ctx.db.replace: system fields cannot be changed");
    }
    this.checkFields(table, userFields, "replace");
    const next = { ...stripUndefined(userFields), _id: document._id, _creationTime: document._creationTime } as Document;
    this.write(id, table, next, this.encode(next), found);
  }

  delete(id: string, { system = false } = {}): void {
    this.requireWritable("delete");
    const found = this.existing(id, "delete", system);
    this.write(id, found.table, null, null, found);
  }

  /**
   * The mutation's effect: changed documents and, for every index of their
   * tables, the old and new key, computed here once. Writes that changed
   * nothing (a patch to the same values, an insert deleted again) are dropped.
   */
  finish(): { documents: DocumentWrite[]; indexWrites: IndexWrite[]; searchWrites: SearchWrite[]; vectorWrites: VectorWrite[] } {
    const documents: DocumentWrite[] = [];
    const indexWrites: IndexWrite[] = [];
    const searchWrites: SearchWrite[] = [];
    const vectorWrites: VectorWrite[] = [];
    for (const [id, { table, before, after, json, afterBytes }] of this.pending) {
      if (before === null && after === null) continue;
      if (before !== null && after !== null && valuesEqual(before, after)) continue;
      documents.push({ id, table, document: after, json, bytes: afterBytes, existedBefore: before !== null });
      for (const index of this.schema.table(table).indexes.values()) {
        indexWrites.push({
          index: index.qualifiedName,
          id,
          oldKey: before ? indexKeyOf(index, before) : null,
          newKey: after ? indexKeyOf(index, after) : null,
        });
      }
      for (const index of this.schema.table(table).searchIndexes.values()) {
        const old = before ? searchDocumentOf(index, before) : null;
        const next = after ? searchDocumentOf(index, after) : null;
        const reindex = old === null || next === null || !sameSearchDocument(old, next);
        searchWrites.push({ index: index.qualifiedName, id, old, new: next, reindex });
      }
      // Only changes to what a vector index holds reach it: most writes (a title edit) leave the vector alone.
      for (const index of this.schema.table(table).vectorIndexes.values()) {
        const old = before ? vectorDocumentOf(index, before) : null;
        const next = after ? vectorDocumentOf(index, after) : null;
        if (!sameVectorDocument(old, next)) vectorWrites.push({ index: index.qualifiedName, id, old, new: next });
      }
    }
    return { documents, indexWrites, searchWrites, vectorWrites };
  }
}

function stripUndefined(fields: Record<string, Value | undefined>): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const [k, value] of Object.entries(fields)) if (value !== undefined) out[k] = value;
  return out;
}

/** Bounds on one index, built by `withIndex(name, q => q.eq(..).gt(..))`. */
