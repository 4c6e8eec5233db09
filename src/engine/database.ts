/**
 * The database API handlers see (`ctx.db`): query builders over a
 * `Transaction` (transaction.ts), and the reader and writer. Terminal methods
 * run synchronously against one snapshot and record exactly the keys they
 * consumed.
 */
import type { Document, Value } from "./values.ts";
import { describe } from "./values.ts";
import { keySuccessor, type IndexKey, type KeyInterval } from "./keys.ts";
import type { IndexDefinition } from "./schema.ts";
import type { Order } from "./store.ts";
import { FunctionError } from "./errors.ts";
import { SearchFilterBuilder } from "./search.ts";
import { queriesCannotWrite, type Transaction } from "./transaction.ts";
import { IndexRangeBuilder, type IndexRange } from "./index-range.ts";

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

