/**
 * Runs the queries `convex/server` serializes (`{source, operators}`) over a
 * transaction: an index range or a full table scan read lazily in key order,
 * or a text search in relevance order, then the operators in order (`filter`,
 * `limit`). A stream records exactly what it consumed when it closes: the
 * whole range when it ran out, else up to the last key it read, so a
 * `take(20)` subscription depends on its 20 keys and nothing older.
 */
import type { Document, JSONValue, Value } from "../values.ts";
import { describe } from "../values.ts";
import { keySuccessor, type IndexKey, type KeyInterval } from "../keys.ts";
import type { IndexDefinition } from "../schema.ts";
import type { Order } from "../store.ts";
import type { Transaction } from "../transaction.ts";
import { FunctionError } from "../errors.ts";
import { IndexRangeBuilder } from "../index-range.ts";
import { SearchFilterBuilder } from "../search.ts";
import { passes, wireToValue, type Expression } from "./filter-expression.ts";

export type SerializedSource =
  | { type: "FullTableScan"; tableName: string; order: Order | null }
  | { type: "IndexRange"; indexName: string; range: { type: "Eq" | "Gt" | "Gte" | "Lt" | "Lte"; fieldPath: string; value: JSONValue }[]; order: Order | null }
  | { type: "Search"; indexName: string; filters: { type: "Search" | "Eq"; fieldPath: string; value: JSONValue }[] };

export type SerializedOperator = { filter: Expression } | { limit: number };

/** A row a query yields: the document, and its stored JSON (handed to user code as is). */
export interface Row {
  readonly document: Document;
  readonly json: string;
}

export interface SerializedQuery {
  source: SerializedSource;
  operators: SerializedOperator[];
}

/** Narrows an index scan for pagination: strictly after `after`, up to and including `upTo`. */
export interface PageBounds {
  after: IndexKey | null;
  upTo: IndexKey | null;
}

/** A serialized range condition -> the `IndexRangeBuilder` method that applies it. */
const RANGE_METHODS: Record<string, "eq" | "gt" | "gte" | "lt" | "lte"> = { Eq: "eq", Gt: "gt", Gte: "gte", Lt: "lt", Lte: "lte" };

function badQuery(message: string): never {
  throw new FunctionError("BadRequest", message);
}

/** `"messages.by_chat"` -> its definition, or Convex's "Index ... not found." */
function indexNamed(tx: Transaction, qualifiedName: string): IndexDefinition {
  const dot = qualifiedName.indexOf(".");
  const table = qualifiedName.slice(0, dot);
  const index = dot > 0 && tx.schema.isTableName(table) ? tx.schema.table(table).indexes.get(qualifiedName.slice(dot + 1)) : undefined;
  if (!index) badQuery(`Index ${qualifiedName} not found.`);
  return index;
}

/** The index and key interval an index source selects, narrowed by page bounds. */
export function indexSource(
  tx: Transaction,
  source: SerializedSource,
  bounds: PageBounds | null,
): { index: IndexDefinition; interval: KeyInterval; order: Order } {
  if (source.type === "Search") return badQuery("A search query has no index range");
  let index: IndexDefinition;
  let interval: KeyInterval = { start: "", end: null };
  if (source.type === "FullTableScan") {
    if (!tx.schema.isTableName(source.tableName)) badQuery(`Invalid table name ${describe(source.tableName)}`);
    index = tx.schema.table(source.tableName).indexes.get("by_creation_time")!;
  } else {
    index = indexNamed(tx, source.indexName);
    const builder = new IndexRangeBuilder(index);
    for (const condition of source.range) {
      const method = RANGE_METHODS[condition.type];
      if (!method) badQuery(`Unknown index range condition ${describe(condition.type)}`);
      builder[method](condition.fieldPath, wireToValue(condition.value) as Value);
    }
    interval = builder.interval();
  }
  const order = source.order ?? "asc";
  if (bounds) interval = narrow(interval, bounds, order);
  return { index, interval, order };
}

/** `interval` ∩ (after, upTo] in scan order: for a descending scan "after" is the upper side. */
function narrow(interval: KeyInterval, { after, upTo }: PageBounds, order: Order): KeyInterval {
  let { start, end } = interval;
  const lower = order === "asc" ? after && keySuccessor(after) : upTo;
  const upper = order === "asc" ? upTo && keySuccessor(upTo) : after;
  if (lower !== null && lower > start) start = lower;
  if (upper !== null && (end === null || upper < end)) end = upper;
  return { start, end };
}

/** An index scan that records the consumed interval when closed. */
class IndexScan {
  private last: { readonly key: IndexKey } | null = null;
  exhausted = false;
  private readonly entries: Iterator<Row & { key: IndexKey }>;
  private closed = false;
  private readonly tx: Transaction;
  private readonly index: IndexDefinition;
  private readonly interval: KeyInterval;
  private readonly order: Order;

  constructor(tx: Transaction, index: IndexDefinition, interval: KeyInterval, order: Order, expectedRows?: number) {
    this.tx = tx;
    this.index = index;
    this.interval = interval;
    this.order = order;
    const empty = interval.end !== null && interval.end <= interval.start;
    this.entries = empty ? [][Symbol.iterator]() : tx.scan(index, interval, order, expectedRows)[Symbol.iterator]();
  }

  next(): (Row & { readonly key: IndexKey }) | null {
    const step = this.entries.next();
    if (step.done) {
      this.exhausted = true;
      return null;
    }
    this.last = step.value;
    return step.value;
  }

  /** The key of the last entry read (decoded only when asked). */
  get lastKey(): IndexKey | null {
    return this.last?.key ?? null;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const { start, end } = this.interval;
    const lastKey = this.lastKey;
    if (this.exhausted || lastKey === null) this.tx.recordRead(this.index, this.interval);
    else if (this.order === "asc") this.tx.recordRead(this.index, { start, end: keySuccessor(lastKey) });
    else this.tx.recordRead(this.index, { start: lastKey, end });
  }
}

/** The operators, applied in order to each row: filters drop it, a reached limit ends the stream. */
class Operators {
  private readonly counts: number[];
  private finished = false;
  private readonly operators: readonly SerializedOperator[];

  constructor(operators: readonly SerializedOperator[]) {
    this.operators = operators;
    this.counts = operators.map(() => 0);
    for (const operator of operators) {
      if ("limit" in operator && (!Number.isInteger(operator.limit) || operator.limit < 0))
        badQuery(`limit must be a non-negative integer, got ${describe(operator.limit)}`);
    }
    if (operators.some((operator) => "limit" in operator && operator.limit === 0)) this.finished = true;
  }

  /** How many rows the scan will read, when a limit comes before any filter (`take(n)`); else unknown. */
  get expectedRows(): number | undefined {
    for (const operator of this.operators) return "limit" in operator ? operator.limit : undefined;
    return undefined;
  }

  /** No row can pass any more: a limit was reached. */
  get done(): boolean {
    return this.finished;
  }

  /** Whether `row` comes out of the operators (and counts towards their limits). */
  admit(row: Row): boolean {
    for (let i = 0; i < this.operators.length; i++) {
      const operator = this.operators[i]!;
      if ("filter" in operator) {
        if (!passes(operator.filter, row.document)) return false;
      } else if (++this.counts[i]! >= operator.limit) {
        this.finished = true;
      }
    }
    return true;
  }
}

/** One `ctx.db.query(...)` being iterated (`queryStream` / `queryStreamNext` / `queryCleanup`). */
export class QueryStream {
  private readonly scan: IndexScan | null;
  private readonly search: Iterator<Row> | null;
  private readonly operators: Operators;

  constructor(tx: Transaction, query: SerializedQuery) {
    this.operators = new Operators(query.operators ?? []);
    if (query.source.type === "Search") {
      this.scan = null;
      this.search = searchRows(tx, query.source);
    } else {
      const { index, interval, order } = indexSource(tx, query.source, null);
      this.scan = new IndexScan(tx, index, interval, order, this.operators.expectedRows);
      this.search = null;
    }
  }

  /** The next row out of the operators, or null when the stream is done. */
  next(): Row | null {
    while (!this.operators.done) {
      const row = this.scan ? this.scan.next() : (this.search!.next().value ?? null);
      if (row === null) break;
      if (this.operators.admit(row)) return row;
    }
    this.close();
    return null;
  }

  close(): void {
    this.scan?.close();
  }
}

/** The documents of a text search, in relevance order (no rows for an empty search string, as in Convex). */
function searchRows(tx: Transaction, source: Extract<SerializedSource, { type: "Search" }>): Iterator<Row> {
  const dot = source.indexName.indexOf(".");
  const table = source.indexName.slice(0, dot);
  const index = dot > 0 && tx.schema.isTableName(table) ? tx.schema.table(table).searchIndexes.get(source.indexName.slice(dot + 1)) : undefined;
  if (!index) badQuery(`Search index ${source.indexName} not found.`);
  const builder = new SearchFilterBuilder(index);
  for (const filter of source.filters) {
    if (filter.type === "Search") {
      if (typeof filter.value === "string" && filter.value.trim() === "") return [][Symbol.iterator]();
      builder.search(filter.fieldPath, filter.value as string);
    } else builder.eq(filter.fieldPath, wireToValue(filter.value) as Value);
  }
  return tx.search(builder);
}

export interface PageRequest {
  after: IndexKey | null;
  /** Inclusive end (from `endCursor` or the journal); with it, the whole range up to it is read and `pageSize` ignored. */
  upTo: IndexKey | "end" | null;
  pageSize: number;
  maximumRowsRead: number | null;
}

export interface PageRead {
  page: Row[];
  /** The position after the page: its end, the last key read, or "end" when the range ran out. */
  continueKey: IndexKey | "end";
  /** The position after the page's middle row, or null for a page of two rows or fewer. */
  splitKey: IndexKey | null;
  /** The rows-read limit stopped the page early. */
  hitReadLimit: boolean;
}

/** One page of an index query (`paginate`). Search queries have no positions, so they cannot be paged. */
export function readPage(tx: Transaction, query: SerializedQuery, request: PageRequest): PageRead {
  if (query.source.type === "Search") badQuery("paginate() is not supported on search queries yet; use take(n)");
  const upTo = request.upTo === "end" ? null : request.upTo;
  const { index, interval, order } = indexSource(tx, query.source, { after: request.after, upTo });
  const operators = new Operators(query.operators ?? []);
  const unfiltered = (query.operators ?? []).every((operator) => "limit" in operator);
  const scan = new IndexScan(tx, index, interval, order, request.upTo === null && unfiltered ? request.pageSize : operators.expectedRows);
  const page: (Row & { readonly key: IndexKey })[] = [];
  let rowsRead = 0;
  let hitReadLimit = false;
  const bounded = request.upTo !== null;
  while (!operators.done && (bounded || page.length < request.pageSize)) {
    if (request.maximumRowsRead !== null && rowsRead >= request.maximumRowsRead) {
      hitReadLimit = true;
      break;
    }
    const row = scan.next();
    if (row === null) break;
    rowsRead++;
    if (operators.admit(row)) page.push(row);
  }
  // A limit operator that ended the page ends the query too: nothing after it can pass
  // (yet the read-set stays what was consumed).
  const ranOut = scan.exhausted || operators.done;
  scan.close();
  const continueKey = request.upTo !== null && !hitReadLimit ? request.upTo : ranOut ? "end" : (scan.lastKey ?? request.after ?? "end");
  const splitKey = page.length > 2 ? page[Math.floor(page.length / 2) - 1]!.key : null;
  return { page, continueKey, splitKey, hitReadLimit };
}
