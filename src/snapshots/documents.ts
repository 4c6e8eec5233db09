/**
 * What an import accepts of one document line, before anything is stored:
 * the id it came with, its creation time and its fields, checked as Convex's
 * import checks them (an object; `_id` a string; `_creationTime` a number;
 * no other system field). Ids are decided here too: an id this deployment
 * could have made for the table is kept; any other (a Convex deployment's,
 * whose ids carry a table number rather than the table's name) gets a new one,
 * and references to it are rewritten when the import applies.
 */
import { isPlainObject, jsonToConvex, newDocumentId, tableOfId, ValueError, type Value } from "../engine/index.ts";
import { parseExportLine } from "./export-json.ts";
import { ImportProblem } from "./import-problem.ts";

/** How a line's numbers read: snapshot ZIPs are export JSON (42 is an int64), single-table files Convex JSON (42 is a float64). */
export type LineEncoding = "export" | "convex";

export interface StagedDocument {
  /** The `_id` the line came with, or null. */
  readonly sourceId: string | null;
  /** The id it will have: `sourceId` when this deployment could have made it for `table`, else a new one. */
  readonly id: string;
  readonly creationTime: number | null;
  readonly fields: Record<string, Value>;
}

export const STORAGE_TABLE = "_storage";

export function readDocumentLine(file: string, line: number, text: string, encoding: LineEncoding, table: string): StagedDocument {
  const fail = (problem: string) => new ImportProblem(file, line, problem);
  let value: Value;
  try {
    value = encoding === "export" ? parseExportLine(text) : jsonToConvex(JSON.parse(text));
  } catch (error) {
    throw fail(
      error instanceof SyntaxError ? `is not valid JSON (${error.message})` : error instanceof ValueError ? error.message : `cannot be read: ${String(error)}`,
    );
  }
  if (!isPlainObject(value)) throw fail("is not a JSON object (each line holds one document)");
  const { _id: sourceId, _creationTime: creation, ...fields } = value as Record<string, Value>;
  if (sourceId !== undefined && typeof sourceId !== "string") throw fail("has an _id that is not a string");
  if (creation !== undefined && typeof creation !== "number" && typeof creation !== "bigint") throw fail("has a _creationTime that is not a number");
  const creationTime = creation === undefined ? null : Number(creation);
  if (creationTime !== null && !(Number.isFinite(creationTime) && creationTime > 0))
    throw fail("has a _creationTime that is not a positive time in milliseconds");
  if (table === STORAGE_TABLE) {
    // Convex's export adds `internalId` (its blob store's key); the file's identity here is the row's id.
    delete fields.internalId;
    const problem = storageRowProblem(fields);
    if (problem) throw fail(problem);
    if (sourceId === undefined) throw fail("is a _storage row without an _id, so no file can be matched to it");
  } else {
    const system = Object.keys(fields).find((name) => name.startsWith("_"));
    if (system !== undefined) throw fail(`has a field ${system}: fields starting with "_" are reserved for the system`);
  }
  const id = sourceId !== undefined && tableOfId(sourceId) === table ? sourceId : newDocumentId(table);
  return { sourceId: sourceId ?? null, id, creationTime, fields };
}

/** Null when `fields` are a `_storage` row's (`sha256`, `size`, optional `contentType`), else what is wrong. */
function storageRowProblem(fields: Record<string, Value>): string | null {
  if (typeof fields.sha256 !== "string") return "is a _storage row without a sha256 (base64) string";
  if (typeof fields.size === "bigint") fields.size = Number(fields.size);
  if (typeof fields.size !== "number" || !Number.isInteger(fields.size) || fields.size < 0) return "is a _storage row without a size in bytes";
  if (fields.contentType === null) delete fields.contentType;
  if (fields.contentType !== undefined && typeof fields.contentType !== "string") return "is a _storage row whose contentType is not a string";
  const other = Object.keys(fields).find((name) => !["sha256", "size", "contentType"].includes(name));
  return other === undefined ? null : `is a _storage row with an unknown field ${other}`;
}

/** Crockford base32 of Convex's id encoding (a table number, random bytes and a checksum): 31 to 37 characters. */
const CONVEX_ID = /^[0-9a-hjkmnp-tv-z]{31,37}$/;

/** Whether a string could be another deployment's id that this import gave a new one. */
function mayBeForeignId(text: string): boolean {
  return CONVEX_ID.test(text) || tableOfId(text) !== null;
}

/**
 * `value` with every string that is an id the import replaced (`renamed` answers it) written as the
 * new id: references between imported documents survive the new ids. Only strings shaped like ids are asked.
 */
export function rewriteReferences(value: Value, renamed: (id: string) => string | null): Value {
  if (typeof value === "string") return mayBeForeignId(value) ? (renamed(value) ?? value) : value;
  if (Array.isArray(value)) return value.map((item) => rewriteReferences(item, renamed));
  if (isPlainObject(value)) {
    const out: Record<string, Value> = {};
    for (const [key, field] of Object.entries(value)) if (field !== undefined) out[key] = rewriteReferences(field, renamed);
    return out;
  }
  return value;
}
