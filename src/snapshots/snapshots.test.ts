import { describe, expect, it } from "vitest";
import { convexToJson } from "../engine/index.ts";
import { exportLine, parseExportLine } from "./export-json.ts";
import { CsvDocuments, CsvParser, csvCell } from "./csv.ts";
import { LineSplitter } from "./lines.ts";
import { readDocumentLine, rewriteReferences } from "./documents.ts";
import { importOptions, snapshotEntry } from "./layout.ts";

const stored = (value: Record<string, unknown>) => JSON.stringify(convexToJson(value as never));

describe("export JSON (Convex's snapshot documents)", () => {
  it("writes int64 as an integer, float64 always with a fraction, and reads each back as its type", () => {
    const bytes = new Uint8Array([1, 2, 3]).buffer;
    const line = exportLine(stored({ i: 42n, big: -(2n ** 63n), f: 42, g: 0.5, h: -0, n: Number.NaN, b: bytes, s: "x", a: [1n, 2.5], o: { deep: 7 } }));
    expect(line).toContain('"i":42,');
    expect(line).toContain('"big":-9223372036854775808');
    expect(line).toContain('"f":42.0');
    expect(line).toContain('"h":-0.0');
    expect(line).toMatch(/"n":\{"\$float":"[^"]+"\}/);
    const back = parseExportLine(line) as Record<string, unknown>;
    expect(back).toMatchObject({ i: 42n, big: -(2n ** 63n), f: 42, g: 0.5, s: "x", a: [1n, 2.5], o: { deep: 7 } });
    expect(Object.is(back.h, -0)).toBe(true);
    expect(Number.isNaN(back.n)).toBe(true);
    expect(new Uint8Array(back.b as ArrayBuffer)).toEqual(new Uint8Array([1, 2, 3]));
  });

  it("refuses an integer outside int64 and a $-field name", () => {
    expect(() => parseExportLine('{"x": 9223372036854775808}')).toThrow(/64-bit/);
    expect(() => parseExportLine('{"$x": 1, "y": 2}')).toThrow();
  });
});

describe("reading import files", () => {
  it("splits lines across chunks, counting blank ones, and names a line past the limit", () => {
    const splitter = new LineSplitter("t.jsonl", 20);
    const bytes = new TextEncoder().encode('{"a":1}\n\n{"é":2}\r\n{"b":3}');
    const out = [...splitter.push(bytes.subarray(0, 11)), ...splitter.push(bytes.subarray(11)), ...splitter.end()];
    expect(out).toEqual([
      { line: 1, text: '{"a":1}' },
      { line: 3, text: '{"é":2}' },
      { line: 4, text: '{"b":3}' },
    ]);
    expect(() => new LineSplitter("t.jsonl", 5).push(new TextEncoder().encode("0123456789"))).toThrow("t.jsonl line 1: is longer than 5 bytes");
  });

  it("reads CSV as Convex does: a header, numbers where a cell is one, quoted cells across lines", () => {
    expect([csvCell("3"), csvCell("-2.5e3"), csvCell("abc"), csvCell(""), csvCell("1,5")]).toEqual([3, -2500, "abc", "", "1,5"]);
    const parser = new CsvParser("t.csv", 1_000);
    const documents = new CsvDocuments("t.csv");
    const records = [...parser.push('name,age\n"Ann ""A""",3'), ...parser.push('4\n"two\nlines",5\n'), ...parser.end()];
    expect(documents.lines(records)).toEqual([
      { line: 2, text: '{"name":"Ann \\"A\\"","age":34}' },
      { line: 3, text: '{"name":"two\\nlines","age":5}' },
    ]);
    expect(() => new CsvDocuments("t.csv").lines(new CsvParser("t.csv", 100).push("a,b\n1\n"))).toThrow("t.csv line 2: has 1 cells, the header 2");
  });

  it("keeps an id this deployment could have made for the table, gives any other a new one, and rewrites references to it", () => {
    const ours = readDocumentLine("m.jsonl", 1, '{"_id":"0123456789abcdefghjkmnpqrsmessages","_creationTime":5.0,"x":1}', "export", "messages");
    expect(ours).toMatchObject({
      sourceId: "0123456789abcdefghjkmnpqrsmessages",
      id: "0123456789abcdefghjkmnpqrsmessages",
      creationTime: 5,
      fields: { x: 1n },
    });
    const convex = readDocumentLine("m.jsonl", 2, '{"_id":"jd7bq5mg4vzmc1w3hy9jq7a0rn6t2vx8","x":1}', "convex", "messages");
    expect(convex.id).toMatch(/^[0-9a-z]{26}messages$/);
    expect(convex.fields).toEqual({ x: 1 });
    const renamed = rewriteReferences(
      { ref: "jd7bq5mg4vzmc1w3hy9jq7a0rn6t2vx8", text: "jd7bq5mg4vzmc1w3hy9jq7a0rn6t2vx8 said", list: ["jd7bq5mg4vzmc1w3hy9jq7a0rn6t2vx8"] },
      (id) => (id === "jd7bq5mg4vzmc1w3hy9jq7a0rn6t2vx8" ? convex.id : null),
    );
    expect(renamed).toEqual({ ref: convex.id, text: "jd7bq5mg4vzmc1w3hy9jq7a0rn6t2vx8 said", list: [convex.id] });
    expect(() => readDocumentLine("m.jsonl", 3, '{"_secret": 1}', "convex", "messages")).toThrow(
      'm.jsonl line 3: has a field _secret: fields starting with "_" are reserved for the system',
    );
    expect(() => readDocumentLine("m.jsonl", 4, "[1]", "convex", "messages")).toThrow("m.jsonl line 4: is not a JSON object");
  });

  it("knows the snapshot layout and the import options", () => {
    expect(snapshotEntry("messages/documents.jsonl")).toEqual({ kind: "documents", table: "messages" });
    expect(snapshotEntry("snapshot/_storage/kg2a6hz0tq1bm3xr2ha1yd7n9d7a4cf5.png")).toEqual({
      kind: "storageFile",
      sourceId: "kg2a6hz0tq1bm3xr2ha1yd7n9d7a4cf5",
    });
    expect(snapshotEntry("_storage/documents.jsonl")).toEqual({ kind: "documents", table: "_storage" });
    expect(snapshotEntry("_scheduled_functions/documents.jsonl")).toEqual({ kind: "ignored" });
    expect(snapshotEntry("_tables/documents.jsonl")).toEqual({ kind: "tables" });
    expect(importOptions({})).toEqual({ mode: "requireEmpty", format: "zip", table: null });
    expect(importOptions({ table: "notes" })).toEqual({ mode: "requireEmpty", format: "jsonl", table: "notes" });
    expect(importOptions({ table: "_storage", format: "csv" })).toHaveProperty("error");
    expect(importOptions({ format: "csv" })).toHaveProperty("error");
  });
});
