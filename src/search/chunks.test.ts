import { describe, expect, it } from "vitest";
import { splitIntoChunks } from "./chunks.ts";

const utf8 = (s: string) => new TextEncoder().encode(s).length;

describe("splitIntoChunks", () => {
  it("fills ASCII chunks up to the byte limit and keeps the text intact", () => {
    const text = "a".repeat(2_500);
    const chunks = splitIntoChunks(text, 1_000);
    expect(chunks.map((c) => c.length)).toEqual([1_000, 1_000, 500]);
    expect(chunks.join("")).toBe(text);
  });

  it("keeps every non-ASCII chunk under the limit in UTF-8 bytes and never splits a surrogate pair", () => {
    const text = "é€😀x".repeat(700);
    const chunks = splitIntoChunks(text, 999);
    for (const chunk of chunks) {
      expect(utf8(chunk)).toBeLessThanOrEqual(999);
      expect(chunk.isWellFormed()).toBe(true);
    }
    expect(chunks.join("")).toBe(text);
  });
});
