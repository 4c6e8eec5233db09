/**
 * The database API handlers see (`ctx.db`) and the transaction under it.
 *
 * A `Transaction` reads the committed store through an overlay of its own
 * pending writes, so a mutation sees what it wrote; nothing reaches the store
 * until `finish()` hands the writes to the engine's commit. Queries use the
 * same transaction without write access and with a read-set recorder.
 */
import type { Document, Value } from "./values.ts";
import { convexToJson, describe, utf8Length, valuesEqual } from "./values.ts";
import { encodeKey, keySuccessor, prefixSuccessor, type IndexKey, type KeyInterval } from "./keys.ts";
import type { IndexDefinition, Schema } from "./schema.ts";
import { indexKeyOf } from "./schema.ts";
import type { DocumentStore, DocumentWrite, IndexEntry, IndexWrite, Order, StoredDocument } from "./store.ts";
import type { ReadSetRecorder } from "./read-set.ts";
import type { EngineLimits } from "./limits.ts";
import { FunctionError } from "./errors.ts";
import { isDocumentId, newDocumentId } from "./ids.ts";
import { SearchFilterBuilder, sameSearchDocument, searchDocumentOf, type SearchWrite } from "./search.ts";

interface PendingWrite {
  table: string;
  before: Document | null;
  /** `before`'s stored size in bytes (0 when it did not exist). */
  beforeBytes: number;
  after: Document | null;
  /** `after` in Convex JSON, encoded once when written (size check, then storage). */
  json: string | null;
  /** What this write costs against `maxBytesWritten` (see `writeCost`). */
  cost: number;
}

/** What a write costs beyond its document (the id and row overhead), against `maxBytesWritten`. */
const ID_BYTES = 32;

export interface TransactionOptions {
  readSet: ReadSetRecorder | null;
  writable: boolean;
  limits: EngineLimits;
  /** Hands out `_creationTime`s for inserts (strictly increasing); writable transactions only. */
  nextCreationTime?: () => number;
}

/** The one answer to a write from a query. */
function queriesCannotWrite(method: string): FunctionError {
  return new FunctionError("ReadOnly", `Queries cannot write: ctx.db.${method} was called from a query. Use a mutation.`);
}

export class Transaction {
  private pending = new Map<string, PendingWrite>();
  private documentsRead = 0;
  private bytesRead = 0;
  private bytesWritten = 0;
  readonly schema: Schema;
  private readonly store: DocumentStore;
  private readonly options: TransactionOptions;

  constructor(schema: Schema, store: DocumentStore, options: TransactionOptions) {
    this.schema = schema;
    this.store = store;
    this.options = options;
  }

  /** Charges one document read against the function's document and byte budgets. */
  private countRead(bytes: number): void {
    const limits = this.options.limits;
    if (++this.documentsRead > limits.maxDocumentsRead) {
      throw new FunctionError("LimitExceeded", `Too many documents read: more than ${limits.maxDocumentsRead} in one function (knob maxDocumentsRead)`);
    }
    this.bytesRead += bytes;
    if (this.bytesRead > limits.maxBytesRead) {
      throw new FunctionError("LimitExceeded", `Too many bytes read: ${this.bytesRead} bytes in one function, limit ${limits.maxBytesRead} (knob maxBytesRead)`);
    }
  }

  private committed(id: string): StoredDocument | null {
    return this.store.getDocument(id);
  }

  /** Current version of a document (pending writes first), its table and its size in bytes. */
  private lookup(id: string): { table: string; document: Document | null; bytes: number } | null {
    const pending = this.pending.get(id);
    if (pending) return { table: pending.table, document: pending.after, bytes: pending.json === null ? 0 : utf8Length(pending.json) };
    return this.committed(id);
  }

  get(id: string): Document | null {
    if (typeof id !== "string" || !isDocumentId(id)) {
      throw new FunctionError("BadRequest", `ctx.db.get expects a document id, got ${describe(id as Value)}`);
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
    if (found?.document) this.countRead(found.bytes);
    return found?.document ?? null;
  }

  /**
   * Index entries in `interval`, merged with pending writes, in `order`.
   * Lazy: reading stops when the caller stops iterating.
   */
  *scan(index: IndexDefinition, interval: KeyInterval, order: Order): Generator<IndexEntry> {
    const removed = new Set<IndexKey>();
    const added: IndexEntry[] = [];
    for (const write of this.pending.values()) {
      if (write.table !== index.table) continue;
      if (write.before) removed.add(indexKeyOf(index, write.before));
      if (write.after) {
        const key = indexKeyOf(index, write.after);
        if (key >= interval.start && (interval.end === null || key < interval.end)) added.push({ key, document: write.after, bytes: utf8Length(write.json!) });
      }
    }
    added.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (order === "desc") added.reverse();
    const before = (a: IndexKey, b: IndexKey) => (order === "asc" ? a < b : a > b);
    let next = 0;
    for (const entry of this.store.scanIndex(index.qualifiedName, interval, order)) {
      while (next < added.length && before(added[next]!.key, entry.key)) {
        this.countRead(added[next]!.bytes);
        yield added[next++]!;
      }
      if (removed.has(entry.key)) continue;
      this.countRead(entry.bytes);
      yield entry;
    }
    while (next < added.length) {
      this.countRead(added[next]!.bytes);
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
  *search(builder: SearchFilterBuilder): Generator<Document> {
    const backend = this.store.search;
    if (!backend) throw new FunctionError("BadRequest", "Text search is not available on this store");
    const limits = this.options.limits;
    const { request, read } = builder.build(
      { maxTerms: limits.searchMaxTerms, maxFilters: limits.searchMaxFilters, maxScanned: limits.searchMaxScanned, minPrefixLength: limits.searchMinPrefixLength },
      limits.searchMaxScanned,
    );
    this.options.readSet?.recordSearch(read);
    const { hits, truncated } = backend.search(request);
    for (const hit of hits) {
      const found = this.lookup(hit.id);
      if (!found?.document) continue;
      this.countRead(found.bytes);
      yield found.document;
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
      if (name.startsWith("_")) throw new FunctionError("InvalidArgument", `ctx.db.${method}: system field ${name} cannot be written`);
    }
    const problem = this.schema.validateDocument(table, fields);
    if (problem) throw new FunctionError("InvalidArgument", `ctx.db.${method} into "${table}": ${problem}`);
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

  private write(id: string, table: string, after: Document | null, encoded: { json: string; bytes: number } | null = null): void {
    const pending = this.pending.get(id);
    if (!pending && this.pending.size >= this.options.limits.maxDocumentsWritten) {
      throw new FunctionError(
        "LimitExceeded",
        `Too many writes: more than ${this.options.limits.maxDocumentsWritten} documents in one mutation (knob maxDocumentsWritten)`,
      );
    }
    const before = pending ? null : this.committed(id);
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
    if (pending) Object.assign(pending, { after, json, cost });
    else this.pending.set(id, { table, before: before?.document ?? null, beforeBytes, after, json, cost });
  }

  private existing(id: string, method: string): { table: string; document: Document } {
    if (typeof id !== "string" || !isDocumentId(id)) {
      throw new FunctionError("BadRequest", `ctx.db.${method} expects a document id, got ${describe(id as Value)}`);
    }
    const found = this.lookup(id);
    if (!found?.document) throw new FunctionError("BadRequest", `ctx.db.${method}: document ${id} does not exist`);
    return { table: found.table, document: found.document };
  }

  insert(table: string, fields: Record<string, Value | undefined>): string {
    this.requireWritable("insert");
    if (!this.schema.tables.has(table)) throw new FunctionError("BadRequest", `ctx.db.insert: table "${table}" is not in the schema`);
    this.checkFields(table, fields, "insert");
    const id = newDocumentId();
    const document = { ...stripUndefined(fields), _id: id, _creationTime: this.options.nextCreationTime!() } as Document;
    this.write(id, table, document, this.encode(document));
    return id;
  }

  patch(id: string, fields: Record<string, Value | undefined>): void {
    this.requireWritable("patch");
    const { table, document } = this.existing(id, "patch");
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
    this.checkFields(table, userFields, "patch");
    const next = { ...userFields, _id: document._id, _creationTime: document._creationTime } as Document;
    this.write(id, table, next, this.encode(next));
  }

  replace(id: string, fields: Record<string, Value | undefined>): void {
    this.requireWritable("replace");
    const { table, document } = this.existing(id, "replace");
    const { _id, _creationTime, ...userFields } = fields;
    if ((_id !== undefined && _id !== id) || (_creationTime !== undefined && _creationTime !== document._creationTime)) {
      throw new FunctionError("InvalidArgument", "ctx.db.replace: system fields cannot be changed");
    }
    this.checkFields(table, userFields, "replace");
    const next = { ...stripUndefined(userFields), _id: document._id, _creationTime: document._creationTime } as Document;
    this.write(id, table, next, this.encode(next));
  }

  delete(id: string): void {
    this.requireWritable("delete");
    const { table } = this.existing(id, "delete");
    this.write(id, table, null);
  }

  /**
   * The mutation's effect: changed documents and, for every index of their
   * tables, the old and new key, computed here once. Writes that changed
   * nothing (a patch to the same values, an insert deleted again) are dropped.
   */
  finish(): { documents: DocumentWrite[]; indexWrites: IndexWrite[]; searchWrites: SearchWrite[] } {
    const documents: DocumentWrite[] = [];
    const indexWrites: IndexWrite[] = [];
    const searchWrites: SearchWrite[] = [];
    for (const [id, { table, before, after, json }] of this.pending) {
      if (before === null && after === null) continue;
      if (before !== null && after !== null && valuesEqual(before, after)) continue;
      documents.push({ id, table, document: after, json, existedBefore: before !== null });
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
    }
    return { documents, indexWrites, searchWrites };
  }
}

function stripUndefined(fields: Record<string, Value | undefined>): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const [k, value] of Object.entries(fields)) if (value !== undefined) out[k] = value;
  return out;
}

/** Bounds on one index, built by `withIndex(name, q => q.eq(..).gt(..))`. */
export class IndexRangeBuilder {
  private equalities: Value[] = [];
  private lower: { value: Value; inclusive: boolean } | null = null;
  private upper: { value: Value; inclusive: boolean } | null = null;
  private rangeField: string | null = null;
  private readonly index: IndexDefinition;

  constructor(index: IndexDefinition) {
    this.index = index;
  }

  private fail(message: string): never {
    throw new FunctionError("BadRequest", `Index ${this.index.qualifiedName} (fields ${this.index.keyFields.join(", ")}): ${message}`);
  }

  private nextField(): string {
    const field = this.index.keyFields[this.equalities.length];
    if (field === undefined) this.fail("more conditions than index fields");
    return field;
  }

  eq(field: string, value: Value): this {
    if (this.rangeField !== null) this.fail(`eq("${field}") must come before range conditions`);
    const expected = this.nextField();
    if (field !== expected) this.fail(`eq("${field}") is out of order; the next field is "${expected}"`);
    this.equalities.push(value);
    return this;
  }

  private bound(field: string, which: "lower" | "upper", value: Value, inclusive: boolean): this {
    const expected = this.rangeField ?? this.nextField();
    if (field !== expected) this.fail(`range on "${field}" is out of order; expected "${expected}"`);
    if (this[which] !== null) this.fail(`two ${which} bounds on "${field}"`);
    this.rangeField = field;
    this[which] = { value, inclusive };
    return this;
  }

  gt(field: string, value: Value): this {
    return this.bound(field, "lower", value, false);
  }
  gte(field: string, value: Value): this {
    return this.bound(field, "lower", value, true);
  }
  lt(field: string, value: Value): this {
    return this.bound(field, "upper", value, false);
  }
  lte(field: string, value: Value): this {
    return this.bound(field, "upper", value, true);
  }

  /** The key interval these conditions select (possibly empty). */
  interval(): KeyInterval {
    const prefix = encodeKey(this.equalities);
    const withValue = (value: Value) => prefix + encodeKey([value]);
    const start = this.lower ? (this.lower.inclusive ? withValue(this.lower.value) : prefixSuccessor(withValue(this.lower.value))!) : prefix;
    const end = this.upper
      ? this.upper.inclusive
        ? prefixSuccessor(withValue(this.upper.value))
        : withValue(this.upper.value)
      : prefixSuccessor(prefix);
    return { start, end };
  }
}

export type IndexRange = (q: IndexRangeBuilder) => IndexRangeBuilder;

/**
 * What every query shape ends with: an optional predicate, then one terminal
 * method. Subclasses supply `run(limit)`: read until `limit` documents pass.
 */
abstract class TerminalQuery {
  protected readonly predicates: ((doc: Document) => boolean)[] = [];

  protected abstract run(limit: number): Document[];

  /** Keeps documents for which `predicate` is true (read-sets still cover what was scanned). */
  filter(predicate: (doc: Document) => boolean): this {
    if (typeof predicate !== "function") throw new FunctionError("BadRequest", "filter expects a predicate function");
    this.predicates.push(predicate);
    return this;
  }

  protected passes(document: Document): boolean {
    return this.predicates.every((p) => p(document));
  }

  async take(n: number): Promise<Document[]> {
    if (!Number.isInteger(n) || n < 0) throw new FunctionError("BadRequest", `take expects a non-negative integer, got ${describe(n)}`);
    return this.run(n);
  }

  async first(): Promise<Document | null> {
    return this.run(1)[0] ?? null;
  }

  async unique(): Promise<Document | null> {
    const found = this.run(2);
    if (found.length > 1) throw new FunctionError("BadRequest", `unique() found more than one document: ${found[0]!._id}, ${found[1]!._id}`);
    return found[0] ?? null;
  }

  async collect(): Promise<Document[]> {
    return this.run(Infinity);
  }
}

/**
 * `ctx.db.query(table)`: pick an index and range, an order, an optional
 * predicate, then one terminal method. Terminal methods run synchronously
 * against one snapshot and record exactly the keys they consumed.
 */
export class QueryBuilder extends TerminalQuery {
  private index: IndexDefinition;
  private range: KeyInterval;
  private direction: Order = "asc";
  private indexChosen = false;
  private used = false;
  private readonly tx: Transaction;
  private readonly table: string;

  constructor(tx: Transaction, table: string) {
    super();
    this.tx = tx;
    this.table = table;
    const resolved = tx.schema.tables.get(table);
    if (!resolved) throw new FunctionError("BadRequest", `ctx.db.query: table "${table}" is not in the schema`);
    this.index = resolved.indexes.get("by_creation_time")!;
    this.range = { start: "", end: null };
  }

  withIndex(name: string, range?: IndexRange): this {
    if (this.indexChosen) throw new FunctionError("BadRequest", "withIndex can only be called once per query");
    const index = this.tx.schema.table(this.table).indexes.get(name);
    if (!index) throw new FunctionError("BadRequest", `Index "${name}" does not exist on table "${this.table}"`);
    this.index = index;
    this.indexChosen = true;
    this.range = range ? range(new IndexRangeBuilder(index)).interval() : { start: "", end: null };
    return this;
  }

  /**
   * A text search: `withSearchIndex("search_body", q => q.search("body", text).eq("chatId", id))`.
   * Results come in relevance order; `.filter()` then `take`/`first`/`unique`/`collect` follow.
   */
  withSearchIndex(name: string, search: (q: SearchFilterBuilder) => SearchFilterBuilder): SearchQuery {
    if (this.indexChosen) throw new FunctionError("BadRequest", "withSearchIndex cannot follow withIndex");
    const index = this.tx.schema.table(this.table).searchIndexes.get(name);
    if (!index) throw new FunctionError("BadRequest", `Search index "${name}" does not exist on table "${this.table}"`);
    return new SearchQuery(this.tx, search(new SearchFilterBuilder(index)));
  }

  order(order: Order): this {
    if (order !== "asc" && order !== "desc") throw new FunctionError("BadRequest", `order must be "asc" or "desc", got ${describe(order)}`);
    this.direction = order;
    return this;
  }

  /** Reads until `limit` documents pass the filters; records only the consumed interval. */
  protected run(limit: number): Document[] {
    if (this.used) throw new FunctionError("BadRequest", "A query can only be run once");
    this.used = true;
    const results: Document[] = [];
    const { start, end } = this.range;
    if (limit <= 0 || (end !== null && end <= start)) {
      if (limit > 0) this.tx.recordRead(this.index, this.range);
      return results;
    }
    let lastKey: IndexKey | null = null;
    for (const entry of this.tx.scan(this.index, this.range, this.direction)) {
      lastKey = entry.key;
      if (this.passes(entry.document)) {
        results.push(entry.document);
        if (results.length >= limit) break;
      }
    }
    const exhausted = results.length < limit;
    if (exhausted || lastKey === null) this.tx.recordRead(this.index, this.range);
    else if (this.direction === "asc") this.tx.recordRead(this.index, { start, end: keySuccessor(lastKey) });
    else this.tx.recordRead(this.index, { start: lastKey, end });
    return results;
  }
}

/** The result of `withSearchIndex`: relevance order, an optional predicate, one terminal method. */
export class SearchQuery extends TerminalQuery {
  private readonly tx: Transaction;
  private readonly builder: SearchFilterBuilder;

  constructor(tx: Transaction, builder: SearchFilterBuilder) {
    super();
    this.tx = tx;
    this.builder = builder;
  }

  protected run(limit: number): Document[] {
    const results: Document[] = [];
    if (limit <= 0) return results;
    for (const document of this.tx.search(this.builder)) {
      if (!this.passes(document)) continue;
      results.push(document);
      if (results.length >= limit) break;
    }
    return results;
  }
}

/** `ctx.db` for queries. Write methods exist only to fail with a clear message. */
export class DatabaseReader {
  protected readonly tx: Transaction;

  constructor(tx: Transaction) {
    this.tx = tx;
  }

  async get(id: string): Promise<Document | null> {
    return this.tx.get(id);
  }

  query(table: string): QueryBuilder {
    return new QueryBuilder(this.tx, table);
  }
}

/** `ctx.db` for mutations. */
export class DatabaseWriter extends DatabaseReader {
  async insert(table: string, fields: Record<string, Value | undefined>): Promise<string> {
    return this.tx.insert(table, fields);
  }

  async patch(id: string, fields: Record<string, Value | undefined>): Promise<void> {
    this.tx.patch(id, fields);
  }

  async replace(id: string, fields: Record<string, Value | undefined>): Promise<void> {
    this.tx.replace(id, fields);
  }

  async delete(id: string): Promise<void> {
    this.tx.delete(id);
  }
}

/** A reader whose write methods throw, for code that calls them from a query. */
export function readOnlyDatabase(tx: Transaction): DatabaseReader {
  const reader = new DatabaseReader(tx) as DatabaseReader & Record<string, unknown>;
  for (const method of ["insert", "patch", "replace", "delete"]) {
    reader[method] = async () => {
      throw queriesCannotWrite(method);
    };
  }
  return reader;
}
