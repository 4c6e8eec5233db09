/**
 * Bytes to numbered lines, chunk by chunk: a JSONL file is never held whole.
 * A line longer than `maxLineBytes` is an error naming it (no document can be
 * that large), so a file without newlines cannot grow memory without bound.
 */
import { ImportProblem } from "./import-problem.ts";

export interface NumberedLine {
  /** 1-based, as editors count. */
  readonly line: number;
  readonly text: string;
}

export class LineSplitter {
  private readonly decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  private partial = "";
  private nextLine = 1;
  private readonly file: string;
  private readonly maxLineBytes: number;

  constructor(file: string, maxLineBytes: number) {
    this.file = file;
    this.maxLineBytes = maxLineBytes;
  }

  /** The complete lines in `chunk` (blank ones skipped, their numbers counted). */
  push(chunk: Uint8Array): NumberedLine[] {
    return this.split(this.decode(chunk, true), false);
  }

  /** The last line, which may lack its newline. */
  end(): NumberedLine[] {
    return this.split(this.decode(new Uint8Array(), false), true);
  }

  private decode(chunk: Uint8Array, stream: boolean): string {
    try {
      return this.decoder.decode(chunk, { stream });
    } catch {
      throw new ImportProblem(this.file, this.nextLine, "is not valid UTF-8");
    }
  }

  private split(text: string, last: boolean): NumberedLine[] {
    const out: NumberedLine[] = [];
    let start = 0;
    let buffered = this.partial;
    for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
      this.emit(out, buffered + text.slice(start, end));
      buffered = "";
      start = end + 1;
    }
    this.partial = buffered + text.slice(start);
    // Characters, not bytes: a UTF-8 byte count is at least this, so the check never lets more through.
    if (this.partial.length > this.maxLineBytes) throw new ImportProblem(this.file, this.nextLine, `is longer than ${this.maxLineBytes} bytes`);
    if (last && this.partial !== "") {
      this.emit(out, this.partial);
      this.partial = "";
    }
    return out;
  }

  private emit(out: NumberedLine[], raw: string): void {
    const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const line = this.nextLine++;
    if (line === 1 && text.startsWith("\uFEFF"))
      throw new ImportProblem(this.file, line, "starts with a UTF-8 byte order mark, which Convex's import refuses too: save the file without it");
    if (text.length > this.maxLineBytes) throw new ImportProblem(this.file, line, `is longer than ${this.maxLineBytes} bytes`);
    if (text.trim() !== "") out.push({ line, text });
  }
}
