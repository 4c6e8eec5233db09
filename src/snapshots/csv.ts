/**
 * CSV for single-table imports, as Convex reads it: a header row names the
 * fields, and each cell is a float64 when it reads as a number, else a
 * string. Records may span lines inside quotes ("a ""quoted"" word"), so the
 * parser keeps its state between chunks and never holds more than a record.
 */
import { ImportProblem } from "./import-problem.ts";

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|infinity|nan)$/i;

/** A cell's value: a number when the whole cell reads as one (Convex's rule), else the text. */
export function csvCell(text: string): number | string {
  if (!NUMBER.test(text)) return text;
  const lower = text.toLowerCase().replace(/^\+/, "");
  if (lower === "nan" || lower === "-nan") return Number.NaN;
  if (lower.endsWith("inf") || lower.endsWith("infinity")) return lower.startsWith("-") ? -Infinity : Infinity;
  return Number(text);
}

export interface CsvRecord {
  /** The line the record starts on (1-based; the header is line 1). */
  readonly line: number;
  readonly cells: string[];
}

export class CsvParser {
  private readonly file: string;
  private readonly maxRecordChars: number;
  private cells: string[] = [];
  private cell = "";
  private quoted = false;
  /** Just read a quote inside a quoted cell: either its end or the first of a doubled quote. */
  private quoteSeen = false;
  private line = 1;
  private recordLine = 1;
  private recordChars = 0;

  constructor(file: string, maxRecordChars: number) {
    this.file = file;
    this.maxRecordChars = maxRecordChars;
  }

  push(text: string): CsvRecord[] {
    const out: CsvRecord[] = [];
    for (const char of text) {
      if (++this.recordChars > this.maxRecordChars)
        throw new ImportProblem(this.file, this.recordLine, `is a record longer than ${this.maxRecordChars} characters`);
      if (this.quoted) {
        if (this.quoteSeen) {
          this.quoteSeen = false;
          if (char === '"') {
            this.cell += '"';
            continue;
          }
          this.quoted = false;
        } else if (char === '"') {
          this.quoteSeen = true;
          continue;
        } else {
          if (char === "\n") this.line++;
          this.cell += char;
          continue;
        }
      }
      if (char === '"' && this.cell === "") this.quoted = true;
      else if (char === ",") this.endCell();
      else if (char === "\n") {
        this.endRecord(out);
        this.line++;
        this.recordLine = this.line;
      } else if (char !== "\r") this.cell += char;
    }
    return out;
  }

  end(): CsvRecord[] {
    if (this.quoted && !this.quoteSeen) throw new ImportProblem(this.file, this.recordLine, "has a quoted cell that never ends");
    const out: CsvRecord[] = [];
    if (this.cell !== "" || this.cells.length > 0) this.endRecord(out);
    return out;
  }

  private endCell(): void {
    this.cells.push(this.cell);
    this.cell = "";
    this.quoteSeen = false;
    this.quoted = false;
  }

  private endRecord(out: CsvRecord[]): void {
    this.endCell();
    const blank = this.cells.length === 1 && this.cells[0] === "";
    if (!blank) out.push({ line: this.recordLine, cells: this.cells });
    this.cells = [];
    this.recordChars = 0;
  }
}

/** Turns records into documents' JSON lines (Convex JSON), checking each against the header. */
export class CsvDocuments {
  private header: string[] | null = null;
  private readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  lines(records: CsvRecord[]): { line: number; text: string }[] {
    const out: { line: number; text: string }[] = [];
    for (const record of records) {
      if (this.header === null) {
        this.header = record.cells.map((name) => name.trim());
        const bad = this.header.find((name) => name === "" || name.startsWith("$"));
        if (bad !== undefined)
          throw new ImportProblem(this.file, record.line, `the header names a field ${JSON.stringify(bad)}, which is not a valid field name`);
        continue;
      }
      if (record.cells.length !== this.header.length) {
        throw new ImportProblem(this.file, record.line, `has ${record.cells.length} cells, the header ${this.header.length}`);
      }
      const document: Record<string, unknown> = {};
      this.header.forEach((name, i) => {
        const value = csvCell(record.cells[i]!);
        // JSON has no NaN or infinity: Convex JSON spells them as $float.
        document[name] = typeof value === "number" && !Number.isFinite(value) ? specialFloat(value) : value;
      });
      out.push({ line: record.line, text: JSON.stringify(document) });
    }
    return out;
  }
}

function specialFloat(n: number): { $float: string } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, n, true);
  return { $float: btoa(String.fromCharCode(...new Uint8Array(view.buffer))) };
}
