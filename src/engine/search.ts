/**
 * Text search as the engine sees it: the analyzer (shared by indexing, queries
 * and read-sets, so all three agree on what a term is), search read-sets,
 * search write-sets, and the backend contract a store implements
 * (`src/search/` provides it on MiniSearch).
 *
 * Semantics follow Convex: terms are OR'd, only the last term matches as a
 * prefix, filters are equalities, results come in relevance order and ties go
 * to the newest document.
 */
import type { Document, Value } from "./values.ts";
import { encodeKey, type IndexKey } from "./keys.ts";
import type { SearchIndexDefinition } from "./schema.ts";
import { readField } from "./schema.ts";
import { FunctionError } from "./errors.ts";

/** Terms longer than this are dropped, as Convex does. */
export const MAX_TERM_LENGTH = 32;

const SPLIT = /[\n\r\p{Z}\p{P}]+/u;

/** Splits text into lowercase terms: the same function indexes documents and parses queries. */
export function tokenize(text: string): string[] {
  const terms: string[] = [];
  for (const raw of text.split(SPLIT)) {
    if (raw.length === 0 || raw.length > MAX_TERM_LENGTH) continue;
    terms.push(raw.toLowerCase());
  }
  return terms;
}

export interface SearchLimits {
  /** Terms a search may have. */
  maxTerms: number;
  /** Equality filters a search may have. */
  maxFilters: number;
  /** Results a search may scan (before `.filter()` and `take`). */
  maxScanned: number;
  /** The last term is a prefix only from this length on. */
  minPrefixLength: number;
}

/** What one search reads: enough to decide precisely whether a write can change its result. */
export interface SearchRead {
  /** Qualified search index name, e.g. `messages.search_body`. */
  index: string;
  /** Encoded value of the first filter field: the partition searched. */
  partition: IndexKey;
  /** Equality filters other than the partition: (position in filterFields, encoded value). */
  filters: [number, IndexKey][];
  /** Exact terms. */
  terms: string[];
  /** The last term when it is matched as a prefix. */
  prefix: string | null;
}

/** The indexed view of one document version in one search index. */
export interface SearchDocument {
  partition: IndexKey;
  text: string;
  /** Values of the filter fields, in `filterFields` order (the partition's first). */
  filters: (Value | undefined)[];
  creationTime: number;
}

/** One written document in one search index: its indexed view before and after. */
export interface SearchWrite {
  index: string;
  id: string;
  old: SearchDocument | null;
  new: SearchDocument | null;
  /**
   * Whether the indexed view changed (computed once at write time). When it did
   * not, the search index needs no update, but subscriptions may still be
   * affected (the document's other fields changed).
   */
  reindex: boolean;
}

export interface SearchHit {
  id: string;
  score: number;
}

/** A search as the backend runs it. */
export interface SearchRequest {
  index: SearchIndexDefinition;
  partition: IndexKey;
  /** Equality filters beyond the partition: (position in filterFields, encoded value). */
  filters: [number, IndexKey][];
  terms: string[];
  prefix: string | null;
  /** Return at most this many hits; the backend signals more with `truncated`. */
  limit: number;
}

/**
 * The search index behind a store. `recordWrites` runs inside the commit's
 * transaction (persist what must survive); `applyWrites` runs after it
 * committed (update what is in memory).
 */
export interface SearchBackend {
  search(request: SearchRequest): { hits: SearchHit[]; truncated: boolean };
  recordWrites(writes: readonly SearchWrite[]): void;
  applyWrites(writes: readonly SearchWrite[]): void;
}

export function searchDocumentOf(index: SearchIndexDefinition, document: Document): SearchDocument {
  const text = readField(document, index.searchField);
  const filters = index.filterFields.map((field) => readField(document, field));
  return { partition: encodeKey([filters[0]]), text: typeof text === "string" ? text : "", filters, creationTime: document._creationTime };
}

/** Whether two versions index identically (then the search index needs no update). */
export function sameSearchDocument(a: SearchDocument, b: SearchDocument): boolean {
  return (
    a.partition === b.partition &&
    a.text === b.text &&
    a.creationTime === b.creationTime &&
    a.filters.every((value, i) => encodeKey([value]) === encodeKey([b.filters[i]]))
  );
}

/** Does this version of a document fall under this search read? (The precise invalidation test.) */
export function searchReadMatches(read: SearchRead, version: SearchDocument, versionTerms: ReadonlySet<string>, filterKeys: readonly IndexKey[]): boolean {
  if (version.partition !== read.partition) return false;
  for (const [position, key] of read.filters) if (filterKeys[position] !== key) return false;
  if (read.terms.length === 0 && read.prefix === null) return true;
  for (const term of read.terms) if (versionTerms.has(term)) return true;
  if (read.prefix !== null) for (const term of versionTerms) if (term.startsWith(read.prefix)) return true;
  return false;
}

/** `q.search(field, text).eq(field, value)...` inside `withSearchIndex`. */
export class SearchFilterBuilder {
  private readonly index: SearchIndexDefinition;
  private text: string | null = null;
  private readonly equalities = new Map<string, Value>();

  constructor(index: SearchIndexDefinition) {
    this.index = index;
  }

  private fail(message: string): never {
    throw new FunctionError("BadRequest", `Search index ${this.index.qualifiedName}: ${message}`);
  }

  search(field: string, text: string): this {
    if (field !== this.index.searchField) this.fail(`search() must name the search field "${this.index.searchField}", not "${field}"`);
    if (this.text !== null) this.fail("search() can only be called once");
    if (typeof text !== "string") this.fail("search() expects a string");
    this.text = text;
    return this;
  }

  eq(field: string, value: Value): this {
    if (!this.index.filterFields.includes(field)) this.fail(`"${field}" is not a filter field (filter fields: ${this.index.filterFields.join(", ")})`);
    if (this.equalities.has(field)) this.fail(`eq("${field}") given twice`);
    this.equalities.set(field, value);
    return this;
  }

  /** Validates against the limits and produces the backend request and the read to record. */
  build(limits: SearchLimits, limit: number): { request: SearchRequest; read: SearchRead } {
    if (this.text === null) this.fail("call search(field, text) first");
    if (this.equalities.size > limits.maxFilters) this.fail(`too many filters: ${this.equalities.size}, limit ${limits.maxFilters} (knob searchMaxFilters)`);
    // An index with no filter fields is one partition (every document's first filter value is missing).
    const partitionField = this.index.filterFields[0];
    if (partitionField !== undefined && !this.equalities.has(partitionField)) {
      this.fail(`searches must filter on "${partitionField}" with eq(): the index is partitioned by it, so an unfiltered search would load every partition`);
    }
    const terms = [...new Set(tokenize(this.text))];
    if (terms.length > limits.maxTerms) this.fail(`too many search terms: ${terms.length}, limit ${limits.maxTerms} (knob searchMaxTerms)`);
    // Only the last term typed is a prefix, and only once it is long enough to be selective
    // (a one-letter prefix would match most of a partition).
    const lastTyped = tokenize(this.text).at(-1);
    let prefix: string | null = null;
    if (lastTyped !== undefined && lastTyped.length >= limits.minPrefixLength) {
      prefix = lastTyped;
      terms.splice(terms.indexOf(lastTyped), 1);
    }
    const filters: [number, IndexKey][] = [];
    for (const [field, value] of this.equalities) {
      const position = this.index.filterFields.indexOf(field);
      if (position > 0) filters.push([position, encodeKey([value])]);
    }
    filters.sort((a, b) => a[0] - b[0]);
    const partition = encodeKey([partitionField === undefined ? undefined : this.equalities.get(partitionField)]);
    const read: SearchRead = { index: this.index.qualifiedName, partition, filters, terms, prefix };
    return { read, request: { index: this.index, partition, filters, terms, prefix, limit } };
  }
}
