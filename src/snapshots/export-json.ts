/**
 * Documents as Convex writes them in a snapshot ZIP (its "export JSON",
 * announced by `"uniform"` in `<table>/generated_schema.jsonl`): plain JSON
 * where an int64 is a number without a fraction (`42`), a float64 one with a
 * fraction or exponent (`42.0`, `1e300`), and only what JSON cannot say keeps
 * Convex's `$` form (`{"$bytes": ...}`, non-finite `{"$float": ...}`).
 *
 * Stored documents are Convex JSON (`$integer` for int64, plain numbers for
 * floats), so both directions convert, and the number's source text decides
 * its type on the way in (JSON.parse's reviver sees it).
 */
import { jsonToConvex, MAX_VALUE_DEPTH, validateFieldName, ValueError, type JSONValue, type Value } from "../engine/index.ts";

/** A stored document's Convex JSON text as one line of a snapshot's `documents.jsonl`. */
export function exportLine(storedJson: string): string {
  return writeExport(JSON.parse(storedJson) as JSONValue);
}

function writeExport(json: JSONValue): string {
  if (typeof json === "number") return floatText(json);
  if (json === null || typeof json !== "object") return JSON.stringify(json);
  if (Array.isArray(json)) return `[${json.map(writeExport).join(",")}]`;
  const keys = Object.keys(json);
  if (keys.length === 1 && keys[0] === "$integer") return String(jsonToConvex(json) as bigint);
  if (keys.length === 1 && keys[0] === "$float") {
    // -0 is finite: export JSON writes it as a number; NaN and the infinities keep Convex's form.
    const n = jsonToConvex(json) as number;
    return Number.isFinite(n) ? floatText(n) : JSON.stringify(json);
  }
  if (keys.length === 1 && keys[0]!.startsWith("$")) return JSON.stringify(json);
  return `{${keys.map((key) => `${JSON.stringify(key)}:${writeExport(json[key]!)}`).join(",")}}`;
}

/** A finite float64 as export JSON writes it: always with a fraction or an exponent, so it never reads back as an int64. */
function floatText(n: number): string {
  if (Object.is(n, -0)) return "-0.0";
  const text = String(n);
  return /[.eE]/.test(text) ? text : `${text}.0`;
}

/** One line of export JSON as a value: integers are int64, numbers with a fraction or exponent float64. */
export function parseExportLine(text: string): Value {
  const parsed = JSON.parse(text, (_key, value: unknown, context?: { source?: string }) => {
    if (typeof value !== "number") return value;
    const source = context?.source ?? String(value);
    if (/[.eE]/.test(source)) return value;
    const integer = BigInt(source);
    if (integer < -(2n ** 63n) || integer > 2n ** 63n - 1n) throw new ValueError(`${source} does not fit into a 64-bit signed integer`);
    return integer;
  }) as unknown;
  return fromRevived(parsed);
}

/** The revived tree (int64s already bigints) as a Convex value; `$` objects decoded as Convex JSON. */
function fromRevived(value: unknown, depth = 0): Value {
  if (typeof value === "bigint" || value === null || typeof value !== "object") return typeof value === "bigint" ? value : jsonToConvex(value);
  if (depth >= MAX_VALUE_DEPTH) throw new ValueError(`Value is nested more than ${MAX_VALUE_DEPTH} levels deep`);
  if (Array.isArray(value)) return value.map((item) => fromRevived(item, depth + 1));
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0]!.startsWith("$")) return jsonToConvex(value);
  const out: Record<string, Value> = {};
  for (const key of keys) {
    validateFieldName(key);
    Object.defineProperty(out, key, {
      value: fromRevived((value as Record<string, unknown>)[key], depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
