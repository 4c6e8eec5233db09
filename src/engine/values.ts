/**
 * Values stored in documents and passed to and from functions, and their
 * Convex JSON encoding (the one the official `convex` client speaks on the wire).
 *
 * float64 is a JS `number`, int64 a `bigint`, bytes an `ArrayBuffer`.
 */

export type Value =
  | null
  | boolean
  | number
  | bigint
  | string
  | ArrayBuffer
  | Value[]
  | { [key: string]: Value | undefined };

export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };

/** A stored document: user fields plus the system fields `_id` and `_creationTime`. */
export type Document = { _id: string; _creationTime: number; [key: string]: Value | undefined };

const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;
const MAX_FIELD_NAME_LENGTH = 1024;

export class ValueError extends Error {
  override name = "ValueError";
}

export function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function base64ToBytes(base64: string): Uint8Array {
  let binary: string;
  try {
    binary = atob(base64);
  } catch {
    throw new ValueError(`Invalid base64: ${JSON.stringify(base64.slice(0, 40))}`);
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function eightBytes(write: (view: DataView) => void): string {
  const buffer = new ArrayBuffer(8);
  write(new DataView(buffer));
  return bytesToBase64(new Uint8Array(buffer));
}

function readEightBytes(base64: string, what: string): DataView {
  const bytes = base64ToBytes(base64);
  if (bytes.length !== 8) throw new ValueError(`${what} must be 8 bytes, got ${bytes.length}`);
  return new DataView(bytes.buffer);
}

export function isSpecialFloat(n: number): boolean {
  return !Number.isFinite(n) || Object.is(n, -0);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export function validateFieldName(name: string): void {
  if (name.length > MAX_FIELD_NAME_LENGTH) {
    throw new ValueError(`Field name is longer than ${MAX_FIELD_NAME_LENGTH} characters: ${name.slice(0, 40)}...`);
  }
  if (name.startsWith("$")) throw new ValueError(`Field name ${JSON.stringify(name)} starts with '$', which is reserved`);
}

/** Encodes a value as Convex JSON (`{"$integer": ...}`, `{"$bytes": ...}`, `{"$float": ...}` for special floats). */
export function convexToJson(value: Value): JSONValue {
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") {
    if (!isSpecialFloat(value)) return value;
    return { $float: eightBytes((view) => view.setFloat64(0, value, true)) };
  }
  if (typeof value === "bigint") {
    if (value < MIN_INT64 || value > MAX_INT64) throw new ValueError(`BigInt ${value} does not fit into a 64-bit signed integer`);
    return { $integer: eightBytes((view) => view.setBigInt64(0, value, true)) };
  }
  if (value instanceof ArrayBuffer) return { $bytes: bytesToBase64(new Uint8Array(value)) };
  if (Array.isArray(value)) return value.map(convexToJson);
  if (isPlainObject(value)) {
    const out: Record<string, JSONValue> = {};
    for (const key of Object.keys(value).sort()) {
      const field = value[key];
      if (field === undefined) continue;
      validateFieldName(key);
      out[key] = convexToJson(field);
    }
    return out;
  }
  throw new ValueError(`${describe(value)} is not a supported value`);
}

/** Decodes Convex JSON into a value; rejects malformed special objects with a message naming them. */
export function jsonToConvex(json: unknown): Value {
  if (json === null || typeof json === "boolean" || typeof json === "string") return json;
  if (typeof json === "number") return json;
  if (Array.isArray(json)) return json.map(jsonToConvex);
  if (isPlainObject(json)) {
    const keys = Object.keys(json);
    if (keys.length === 1 && keys[0]!.startsWith("$")) {
      const key = keys[0]!;
      const payload = json[key];
      if (key === "$bytes") {
        if (typeof payload !== "string") throw new ValueError("$bytes must hold a base64 string");
        return base64ToBytes(payload).slice().buffer;
      }
      if (key === "$integer") {
        if (typeof payload !== "string") throw new ValueError("$integer must hold a base64 string");
        return readEightBytes(payload, "$integer").getBigInt64(0, true);
      }
      if (key === "$float") {
        if (typeof payload !== "string") throw new ValueError("$float must hold a base64 string");
        const n = readEightBytes(payload, "$float").getFloat64(0, true);
        if (!isSpecialFloat(n)) throw new ValueError(`Float ${n} should be encoded as a number, not as $float`);
        return n;
      }
      throw new ValueError(`Unsupported special value ${JSON.stringify(key)}`);
    }
    const out: Record<string, Value> = {};
    for (const key of keys) {
      validateFieldName(key);
      out[key] = jsonToConvex(json[key]);
    }
    return out;
  }
  throw new ValueError(`${describe(json)} is not valid Convex JSON`);
}

export function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof ArrayBuffer) return `bytes(${value.byteLength})`;
  if (Array.isArray(value)) return "array";
  if (typeof value === "object") return isPlainObject(value) ? "object" : `instance of ${value.constructor?.name ?? "unknown class"}`;
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "..." : value);
  return `${typeof value} ${String(value)}`;
}

/** Structural equality over values (used to skip no-op writes and unchanged query results). */
export function valuesEqual(a: Value | undefined, b: Value | undefined): boolean {
  if (a === b) return typeof a !== "number" || !Object.is(a, -0) === !Object.is(b, -0);
  if (typeof a === "number" && typeof b === "number") return Number.isNaN(a) && Number.isNaN(b);
  if (a instanceof ArrayBuffer && b instanceof ArrayBuffer) {
    if (a.byteLength !== b.byteLength) return false;
    const x = new Uint8Array(a);
    const y = new Uint8Array(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => valuesEqual(item, b[i]));
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const aKeys = Object.keys(a).filter((k) => a[k] !== undefined);
    const bKeys = Object.keys(b).filter((k) => b[k] !== undefined);
    return aKeys.length === bKeys.length && aKeys.every((k) => valuesEqual(a[k], b[k] as Value | undefined));
  }
  return false;
}
