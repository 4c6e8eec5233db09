/**
 * Vector search as the engine sees it: a document's indexed view in a vector
 * index, the write-set a commit hands its store, the query `ctx.vectorSearch`
 * sends (validated here, one place for its errors), and the backend contract a
 * store implements (`src/vectors/` provides it within a memory budget).
 *
 * Semantics follow Convex: only actions search; results are `{ _id, _score }`
 * by cosine similarity, best first; a filter is `q.eq(field, value)` or
 * `q.or(...)` of them over the index's filter fields; a document whose vector
 * is missing or of the wrong length is stored but not indexed.
 */
import type { Document, JSONValue, Value } from "./values.ts";
import { encodeKey, type IndexKey } from "./keys.ts";
import { readField, type Schema, type VectorIndexDefinition } from "./schema.ts";
import { FunctionError } from "./errors.ts";
import { wireToValue } from "./syscalls/filter-expression.ts";

/** Convex's bounds on one vector search. */
export const VECTOR_SEARCH_LIMITS = { defaultLimit: 10, maxLimit: 256, maxFilterExpressions: 64 } as const;

/** The indexed view of one document version: its vector, and each filter field's value as an index key. */
export interface VectorDocument {
  readonly vector: Float32Array;
  /** In `filterFields` order (a missing field is the key of `undefined`). */
  readonly filterKeys: readonly IndexKey[];
}

/** One written document in one vector index: its indexed view before and after (null: not indexed). */
export interface VectorWrite {
  readonly index: string;
  readonly id: string;
  readonly old: VectorDocument | null;
  readonly new: VectorDocument | null;
}

/** A validated search: the query vector, how many results, and the filter as (field position, key) alternatives. */
export interface VectorRequest {
  readonly index: VectorIndexDefinition;
  readonly vector: Float32Array;
  readonly limit: number;
  /** Documents matching any of these pass; null means no filter. */
  readonly anyOf: readonly (readonly [position: number, key: IndexKey])[] | null;
}

export interface VectorHit {
  readonly id: string;
  /** Cosine similarity with the query vector, in [-1, 1]. */
  readonly score: number;
}

/**
 * The vector indexes behind a store. `recordWrites` runs inside the commit's
 * transaction (persist what must survive); `applyWrites` runs after it
 * committed (update what is in memory).
 */
export interface VectorBackend {
  search(request: VectorRequest): VectorHit[];
  recordWrites(writes: readonly VectorWrite[]): void;
  applyWrites(writes: readonly VectorWrite[]): void;
}

/** A document's view in `index`, or null when its vector field is not an array of `dimensions` numbers. */
export function vectorDocumentOf(index: VectorIndexDefinition, document: Document): VectorDocument | null {
  const value = readField(document, index.vectorField);
  if (!Array.isArray(value) || value.length !== index.dimensions) return null;
  const vector = new Float32Array(index.dimensions);
  for (let i = 0; i < value.length; i++) {
    const x = value[i];
    if (typeof x !== "number" || !Number.isFinite(x)) return null;
    vector[i] = x;
  }
  return { vector, filterKeys: index.filterFields.map((field) => encodeKey([readField(document, field)])) };
}

/** Whether two views index identically (then the index needs no update). */
export function sameVectorDocument(a: VectorDocument | null, b: VectorDocument | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.filterKeys.some((key, i) => key !== b.filterKeys[i])) return false;
  for (let i = 0; i < a.vector.length; i++) if (a.vector[i] !== b.vector[i]) return false;
  return true;
}

function fail(index: string, message: string): never {
  throw new FunctionError("BadRequest", `Vector search on ${index}: ${message}`);
}

/** Reads `{ indexName, vector, limit, expressions }` as `convex/server` sends it, refusing what Convex refuses. */
/** `ctx.vectorSearch`'s query as convex/server sends it, unchecked. */
export interface VectorQueryArgument {
  indexName?: unknown;
  vector?: unknown;
  limit?: unknown;
  expressions?: unknown;
}

export function parseVectorQuery(schema: Schema, query: VectorQueryArgument): VectorRequest {
  const name = typeof query.indexName === "string" ? query.indexName : "";
  const dot = name.indexOf(".");
  const tableName = name.slice(0, dot);
  const index = dot > 0 && schema.isTableName(tableName) ? schema.table(tableName).vectorIndexes.get(name.slice(dot + 1)) : undefined;
  if (!index) throw new FunctionError("BadRequest", `Vector search: no vector index ${JSON.stringify(name)} in the schema`);
  const where = index.qualifiedName;
  const { vector } = query;
  if (!Array.isArray(vector) || vector.some((x) => typeof x !== "number" || !Number.isFinite(x))) fail(where, "`vector` must be an array of finite numbers");
  if (vector.length !== index.dimensions) fail(where, `the vector has ${vector.length} dimensions; the index has ${index.dimensions}`);
  const limit = query.limit ?? VECTOR_SEARCH_LIMITS.defaultLimit;
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > VECTOR_SEARCH_LIMITS.maxLimit) {
    fail(where, `\`limit\` must be an integer from 1 to ${VECTOR_SEARCH_LIMITS.maxLimit}, got ${JSON.stringify(limit)}`);
  }
  const anyOf = query.expressions == null ? null : filterAlternatives(index, query.expressions as JSONValue);
  return { index, vector: Float32Array.from(vector as number[]), limit, anyOf };
}

/** `q.eq(field, value)` or `q.or(...)` of them, as (field position, value key) pairs. */
function filterAlternatives(index: VectorIndexDefinition, expression: JSONValue): [number, IndexKey][] {
  const where = index.qualifiedName;
  const shape = (e: JSONValue) =>
    e !== null && typeof e === "object" && !Array.isArray(e) ? e : fail(where, "a filter must be q.eq(field, value) or q.or(...) of them");
  const alternatives: [number, IndexKey][] = [];
  const add = (e: JSONValue): void => {
    const or = shape(e).$or;
    if (Array.isArray(or)) return or.forEach(add);
    const eq = shape(e).$eq;
    if (!Array.isArray(eq) || eq.length !== 2) fail(where, "only q.eq(field, value) and q.or(...) of them can filter a vector search");
    const field = (shape(eq[0]!) as { $field?: unknown }).$field;
    if (typeof field !== "string") fail(where, "q.eq must name a field first");
    const position = index.filterFields.indexOf(field);
    if (position < 0) fail(where, `"${field}" is not a filter field (filter fields: ${index.filterFields.join(", ") || "none"})`);
    const literal = shape(eq[1]!) as { $literal?: JSONValue };
    if (!("$literal" in literal)) fail(where, "q.eq compares a field with a value");
    alternatives.push([position, encodeKey([wireToValue(literal.$literal as JSONValue) as Value | undefined])]);
  };
  add(expression);
  if (alternatives.length > VECTOR_SEARCH_LIMITS.maxFilterExpressions) {
    fail(where, `too many filter expressions: ${alternatives.length}, limit ${VECTOR_SEARCH_LIMITS.maxFilterExpressions}`);
  }
  return alternatives;
}
