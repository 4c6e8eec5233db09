/**
 * Pagination cursors and query journals. A cursor is an index position: the
 * query's fingerprint and the key of the last row read, or "end". Being a
 * position, it survives deletes; a cursor from another query (another table,
 * index, range or filter) is refused with Convex's `InvalidCursor`, which
 * makes `usePaginatedQuery` start over. Cursors are not secret: a forged one
 * can only move the start of a page inside the query's own range, which the
 * query's range and filters still bound.
 *
 * A journal (Convex's `QueryJournal`) pins a paginated subscription's end:
 * it is the end cursor of the run's page, sent with every `QueryUpdated`,
 * reused when the subscription re-runs and when the client re-adds it after
 * a reconnect, so the first page keeps its rows and grows at its open end
 * instead of pushing its last row into the next page.
 */
import type { IndexKey } from "../keys.ts";
import { FunctionError } from "../errors.ts";
import type { SerializedQuery } from "./query-stream.ts";

const END = "end";

/** A 32-bit FNV-1a hash of the query, in hex: what ties a cursor to its query. */
export function queryFingerprint(query: SerializedQuery): string {
  const text = JSON.stringify(query);
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

export function encodeCursor(fingerprint: string, position: IndexKey | "end"): string {
  if (position === END) return `${fingerprint}.${END}`;
  // Keys are byte strings (every code unit < 256), which is what btoa encodes.
  return `${fingerprint}.${btoa(position).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "")}`;
}

function invalidCursor(): never {
  throw new FunctionError("BadRequest", "InvalidCursor: Tried to run a query starting from a cursor, but it looks like this cursor is from a different query.");
}

/** The position a cursor names (null for none), or `InvalidCursor` when it belongs to another query. */
export function decodeCursor(cursor: string | null | undefined, fingerprint: string): IndexKey | "end" | null {
  if (cursor === null || cursor === undefined) return null;
  if (typeof cursor !== "string") invalidCursor();
  const dot = cursor.indexOf(".");
  if (dot < 0 || cursor.slice(0, dot) !== fingerprint) invalidCursor();
  const body = cursor.slice(dot + 1);
  if (body === END) return END;
  try {
    return atob(body.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    return invalidCursor();
  }
}

/** A journal is the run's end cursor; anything else a client sends back is ignored. */
export function journalEndCursor(journal: string | null | undefined): string | null {
  if (typeof journal !== "string") return null;
  try {
    const parsed = JSON.parse(journal) as { end?: unknown };
    return typeof parsed.end === "string" ? parsed.end : null;
  } catch {
    return null;
  }
}

export function journalFor(endCursor: string): string {
  return JSON.stringify({ end: endCursor });
}
