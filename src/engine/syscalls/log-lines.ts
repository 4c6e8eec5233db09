/**
 * What a function prints with `console.*`, collected per run as Convex's
 * `logLines` ("[LOG] text", "[WARN] text", ...), which the official client
 * prints in the browser's console beside the call. Bounded like Convex's:
 * at most `MAX_LINES` lines and `MAX_CHARACTERS` characters per run; past
 * that one line says the rest was dropped.
 */
const MAX_LINES = 256;
const MAX_CHARACTERS = 32_768;
const LEVELS = { log: "LOG", info: "INFO", warn: "WARN", error: "ERROR", debug: "DEBUG" } as const;
export type ConsoleMethod = keyof typeof LEVELS;
export const CONSOLE_METHODS = Object.keys(LEVELS) as ConsoleMethod[];

function format(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.stack ?? `${value.name}: ${value.message}`;
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value !== "object" || value === null) return String(value);
  try {
    return JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? `${item}n` : item instanceof ArrayBuffer ? `<bytes(${item.byteLength})>` : item));
  } catch {
    return String(value);
  }
}

export class LogLines {
  /**
   * What the caller gets: this run's lines and, where they were printed, those
   * of the queries and mutations it called (`ctx.runQuery`/`ctx.runMutation`,
   * a component's functions among them), as Convex's logLines carry them.
   */
  readonly lines: string[] = [];
  /** This run's own lines: the operator's log has an entry for each run, a nested one its own. */
  readonly own: string[] = [];
  private characters = 0;
  private overflowed = false;

  add(method: ConsoleMethod, args: readonly unknown[]): void {
    const line = `[${LEVELS[method]}] ${args.map(format).join(" ")}`;
    const full = this.overflowed;
    if (this.push(line)) this.own.push(line);
    // The line saying the rest was dropped goes to the operator's log too, once.
    else if (!full) this.own.push(this.lines.at(-1)!);
  }

  /** The lines of a function this run called, once it has returned or thrown (this run waited for it, so they come in order). */
  adopt(lines: readonly string[]): void {
    for (const line of lines) if (!this.push(line)) return;
  }

  /** Adds a line for the caller within the limits; false once they are reached. */
  private push(line: string): boolean {
    if (this.overflowed) return false;
    if (this.lines.length >= MAX_LINES - 1 || this.characters + line.length > MAX_CHARACTERS) {
      this.overflowed = true;
      this.lines.push(`[ERROR] Log overflow (maximum ${MAX_LINES} lines or ${MAX_CHARACTERS} characters per function); later lines were dropped`);
      return false;
    }
    this.characters += line.length;
    this.lines.push(line);
    return true;
  }
}
