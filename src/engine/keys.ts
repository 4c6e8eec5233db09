/**
 * Order-preserving byte encoding of values for index keys.
 *
 * Comparing two encodings byte by byte gives the same answer as comparing the
 * values, with one total order across types (Convex's):
 *
 *   missing < null < int64 < float64 < boolean < string < bytes < array < object
 *
 * Every encoding is self-delimiting, so a tuple of values is just the
 * concatenation of their encodings and the tuple order is lexicographic.
 *
 * Keys are held in memory as "byte strings": JS strings whose code units are
 * all < 256, one per byte. JS compares those code unit by code unit, which is
 * byte order, so keys compare with `<` and can be Map keys without copying.
 * Storage converts them to BLOBs (`keyToBytes`), where SQLite's memcmp order
 * is the same.
 */
import type { Value } from "./values.ts";
import { isPlainObject, ValueError, describe } from "./values.ts";

/** An encoded index key (a byte string, see module doc). */
export type IndexKey = string;

const TAG_MISSING = 0x00;
const TAG_NULL = 0x01;
const TAG_INT64 = 0x02;
const TAG_FLOAT64 = 0x03;
const TAG_BOOLEAN = 0x04;
const TAG_STRING = 0x05;
const TAG_BYTES = 0x06;
const TAG_ARRAY = 0x07;
const TAG_OBJECT = 0x08;
/** Inside an object, each field starts with this marker; the object ends with 0x00. */
const FIELD_MARKER = 0x01;
const END = 0x00;

const utf8 = new TextEncoder();
const scratch = new DataView(new ArrayBuffer(8));

class KeyWriter {
  private parts: string[] = [];

  byte(b: number): void {
    this.parts.push(String.fromCharCode(b));
  }

  /** Bytes with 0x00 escaped as 0x00 0xFF and a 0x00 0x00 terminator, so prefixes sort first. */
  escaped(bytes: Uint8Array): void {
    let run = "";
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      run += b === 0 ? "\x00\xff" : String.fromCharCode(b);
    }
    this.parts.push(run, "\x00\x00");
  }

  raw(bytes: string): void {
    this.parts.push(bytes);
  }

  scratch8(): void {
    let s = "";
    for (let i = 0; i < 8; i++) s += String.fromCharCode(scratch.getUint8(i));
    this.parts.push(s);
  }

  toString(): IndexKey {
    return this.parts.join("");
  }
}

function asciiOnly(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80 || s.charCodeAt(i) === 0) return false;
  return true;
}

function writeValue(w: KeyWriter, value: Value | undefined): void {
  if (value === undefined) return w.byte(TAG_MISSING);
  if (value === null) return w.byte(TAG_NULL);
  switch (typeof value) {
    case "bigint":
      w.byte(TAG_INT64);
      scratch.setBigInt64(0, value);
      scratch.setUint8(0, scratch.getUint8(0) ^ 0x80);
      return w.scratch8();
    case "number": {
      w.byte(TAG_FLOAT64);
      scratch.setFloat64(0, Number.isNaN(value) ? NaN : value);
      if (scratch.getUint8(0) & 0x80) {
        for (let i = 0; i < 8; i++) scratch.setUint8(i, ~scratch.getUint8(i) & 0xff);
      } else {
        scratch.setUint8(0, scratch.getUint8(0) | 0x80);
      }
      return w.scratch8();
    }
    case "boolean":
      w.byte(TAG_BOOLEAN);
      return w.byte(value ? 1 : 0);
    case "string":
      w.byte(TAG_STRING);
      // Fast path: ASCII without NUL is its own UTF-8 and needs no escaping.
      if (asciiOnly(value)) {
        return w.raw(value + "\x00\x00");
      }
      return w.escaped(utf8.encode(value));
  }
  if (value instanceof ArrayBuffer) {
    w.byte(TAG_BYTES);
    return w.escaped(new Uint8Array(value));
  }
  if (Array.isArray(value)) {
    w.byte(TAG_ARRAY);
    for (const item of value) writeValue(w, item);
    return w.byte(END);
  }
  if (isPlainObject(value)) {
    w.byte(TAG_OBJECT);
    for (const field of Object.keys(value).sort()) {
      if (value[field] === undefined) continue;
      w.byte(FIELD_MARKER);
      w.escaped(utf8.encode(field));
      writeValue(w, value[field]);
    }
    return w.byte(END);
  }
  throw new ValueError(`${describe(value)} cannot be part of an index key`);
}

/** Encodes a tuple of values (a missing field is `undefined`) as one key. */
export function encodeKey(values: readonly (Value | undefined)[]): IndexKey {
  const w = new KeyWriter();
  for (const value of values) writeValue(w, value);
  return w.toString();
}

/** The smallest key strictly greater than `key`. */
export function keySuccessor(key: IndexKey): IndexKey {
  return key + "\x00";
}

/**
 * The smallest key greater than every key that starts with `prefix`,
 * or null when there is none (the prefix is empty or all 0xFF): unbounded.
 */
export function prefixSuccessor(prefix: IndexKey): IndexKey | null {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 0xff) end--;
  if (end === 0) return null;
  return prefix.slice(0, end - 1) + String.fromCharCode(prefix.charCodeAt(end - 1) + 1);
}

export function keyToBytes(key: IndexKey): Uint8Array {
  const bytes = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i);
  return bytes;
}

export function bytesToKey(bytes: Uint8Array): IndexKey {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return s;
}

/** Half-open interval of keys `[start, end)`; `end: null` is unbounded. */
export interface KeyInterval {
  start: IndexKey;
  end: IndexKey | null;
}

export function intervalIsEmpty(interval: KeyInterval): boolean {
  return interval.end !== null && interval.end <= interval.start;
}

/** Sorts and merges overlapping or touching intervals; drops empty ones. */
export function normalizeIntervals(intervals: readonly KeyInterval[]): KeyInterval[] {
  const sorted = intervals.filter((i) => !intervalIsEmpty(i)).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: KeyInterval[] = [];
  for (const next of sorted) {
    const last = out[out.length - 1];
    if (last && (last.end === null || next.start <= last.end)) {
      if (last.end !== null && (next.end === null || next.end > last.end)) last.end = next.end;
    } else {
      out.push({ ...next });
    }
  }
  return out;
}
