/**
 * Values stored in documents and passed to and from functions, and their
 * Convex JSON encoding (the one the official `convex` client speaks on the wire).
 *
 * float64 is a JS `number`, int64 a `bigint`, bytes an `ArrayBuffer`.
 */

export type Value = null | boolean | number | bigint | string | ArrayBuffer | Value[] | { [key: string]: Value | undefined };

export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };

/** A stored document: user fields plus the system fields `_id` and `_creationTime`. */
export type Document = { _id: string; _creationTime: number; [key: string]: Value | undefined };

const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;
const MAX_FIELD_NAME_LENGTH = 1024;
/**
 * Deepest nesting the codec accepts (Convex's own limit; the `maxValueDepth`
 * knob may lower it for functions). It also bounds the recursion below, so a
 * hostile 5,000-level value is a clear error, never a stack overflow.
 */
export const MAX_VALUE_DEPTH = 64;

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

/** A u64 as the sync protocol writes timestamps: base64 of its 8 little-endian bytes. */
export function u64ToBase64(value: bigint): string {
  return eightBytes((view) => view.setBigUint64(0, value, true));
}

/** The inverse of `u64ToBase64`; a `ValueError` for anything but 8 bytes of base64. */
export function base64ToU64(base64: string): bigint {
  return readEightBytes(base64, "A u64").getBigUint64(0, true);
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

function tooDeep(limit: number): ValueError {
  return new ValueError(`Value is nested more than ${limit} levels deep`);
}

/** Encodes a value as Convex JSON (`{"$integer": ...}`, `{"$bytes": ...}`, `{"$float": ...}` for special floats). */
export function convexToJson(value: Value, depth = 0): JSONValue {
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
  if (depth >= MAX_VALUE_DEPTH) throw tooDeep(MAX_VALUE_DEPTH);
  if (Array.isArray(value)) return value.map((item) => convexToJson(item, depth + 1));
  if (isPlainObject(value)) {
    const out: Record<string, JSONValue> = {};
    for (const key of Object.keys(value).sort()) {
      const field = value[key];
      if (field === undefined) continue;
      validateFieldName(key);
      defineField(out, key, convexToJson(field, depth + 1));
    }
    return out;
  }
  throw new ValueError(`${describe(value)} is not a supported value`);
}

/** Decodes Convex JSON into a value; rejects malformed special objects with a message naming them. */
export function jsonToConvex(json: unknown, depth = 0): Value {
  if (json === null || typeof json === "boolean" || typeof json === "string") return json;
  if (typeof json === "number") return json;
  if ((Array.isArray(json) || isPlainObject(json)) && depth >= MAX_VALUE_DEPTH) throw tooDeep(MAX_VALUE_DEPTH);
  if (Array.isArray(json)) return json.map((item) => jsonToConvex(item, depth + 1));
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
      defineField(out, key, jsonToConvex(json[key], depth + 1));
    }
    return out;
  }
  throw new ValueError(`${describe(json)} is not valid Convex JSON`);
}

/** Whether JSON nests arrays and objects more than `max` levels deep (it never recurses further than that). */
export function nestedDeeperThan(json: unknown, max: number): boolean {
  if (typeof json !== "object" || json === null) return false;
  if (max === 0) return true;
  for (const item of Array.isArray(json) ? json : Object.values(json)) if (nestedDeeperThan(item, max - 1)) return true;
  return false;
}

/** Sets an own field, even one named `__proto__` (a plain assignment would replace the prototype). */
function defineField<T>(target: Record<string, T>, key: string, value: T): void {
  if (key === "__proto__") Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/**
 * The UTF-8 size of a JSON text, checking in the same pass that its arrays
 * and objects nest at most `maxDepth` levels (a `ValueError` past that):
 * what a function's encoded result is measured by, without parsing it.
 */
export function jsonTextSize(text: string, maxDepth: number): number {
  let depth = 0;
  let inString = false;
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0x80) {
      // Only inside strings; counted as utf8Length does (a surrogate pair is 4 bytes for 2 units).
      if (unit < 0x800) bytes += 1;
      else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        bytes += 2;
        i++;
      } else bytes += 2;
    } else if (inString) {
      if (unit === 0x5c)
        i++; // a backslash: the escaped unit is ASCII
      else if (unit === 0x22) inString = false;
    } else if (unit === 0x22) inString = true;
    else if (unit === 0x5b || unit === 0x7b) {
      if (++depth > maxDepth) throw new ValueError(`Value is nested more than ${maxDepth} levels deep`);
    } else if (unit === 0x5d || unit === 0x7d) depth--;
  }
  return bytes;
}

/** The length of `text` in UTF-8 bytes, as TextEncoder would write it, without encoding it. */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) bytes += 1;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: 4 bytes for 2 units
      i++;
    } else bytes += 2; // 3 bytes (a lone surrogate becomes U+FFFD, also 3)
  }
  return bytes;
}

/**
 * The size of a value as Convex JSON in UTF-8 bytes, closely estimated without
 * encoding it (numbers count 8 bytes), for the argument and result budgets.
 * Throws `ValueError` past `maxDepth` levels of arrays and objects.
 */
export function valueSize(value: Value | undefined, maxDepth: number, depth = 0): number {
  if (value === null || value === undefined) return 4;
  switch (typeof value) {
    case "boolean":
      return 5;
    case "number":
      return 8;
    case "bigint":
      return 26;
    case "string":
      return utf8Length(value) + 2;
  }
  if (value instanceof ArrayBuffer) return 12 + Math.ceil(value.byteLength / 3) * 4;
  if (depth >= maxDepth) throw tooDeep(maxDepth);
  let size = 2;
  if (Array.isArray(value)) {
    for (const item of value) size += valueSize(item, maxDepth, depth + 1) + 1;
    return size;
  }
  for (const key of Object.keys(value)) {
    const field = (value as Record<string, Value | undefined>)[key];
    if (field !== undefined) size += utf8Length(key) + 4 + valueSize(field, maxDepth, depth + 1);
  }
  return size;
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
