/**
 * The operator's log of a deployment: every function run (console lines,
 * outcome, duration, request id) in a bounded ring in memory, within
 * `logRingEntries` entries and `logRingBytes` bytes (knobs, read on every
 * add, so lowering one applies at once). The oldest entries go first. It is
 * filled on every run whatever the caller sees (deployed apps send their
 * callers no log lines, but their operator wants them), so adding is O(1)
 * apart from evictions. Lost when the object restarts: a live tail, not an
 * archive. Runtime-agnostic, like the metrics ring.
 */
import type { FunctionRun } from "../engine/engine.ts";

export type LogLevel = "debug" | "log" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 0, log: 1, info: 1, warn: 2, error: 3 };
const LEVEL_OF_PREFIX: Record<string, LogLevel> = { "[DEBUG]": "debug", "[LOG]": "log", "[INFO]": "info", "[WARN]": "warn", "[ERROR]": "error" };

export function isLogLevel(value: string): value is LogLevel {
  return Object.hasOwn(RANK, value);
}

/** A run in the ring: numbered in order (a reader resumes after the last `seq` it saw). */
export interface LogEntry extends FunctionRun {
  seq: number;
  /** The most severe of its lines; `error` for a failed run; `info` for a quiet one. */
  level: LogLevel;
}

/** Which entries a reader wants: `function` matches any part of the path (`messages:` is a module's); `level` and above. */
export interface LogFilter {
  function?: string;
  level?: LogLevel;
}

export interface LogRingLimits {
  entries: number;
  bytes: number;
}

/** What an entry is charged besides its strings: the object, its numbers and fields (an estimate, like the caches'). */
const ENTRY_OVERHEAD_BYTES = 160;

/** About what an entry holds in memory: its strings as JavaScript keeps them (UTF-16), and the object. */
export function entryBytes(run: FunctionRun): number {
  let characters = run.path.length + run.requestId.length + (run.error?.length ?? 0);
  for (const line of run.lines) characters += line.length;
  return ENTRY_OVERHEAD_BYTES + 2 * characters;
}

function levelOf(run: FunctionRun): LogLevel {
  if (run.outcome === "failure") return "error";
  let level: LogLevel = "info";
  for (const line of run.lines) {
    const found = LEVEL_OF_PREFIX[line.slice(0, line.indexOf(" "))];
    if (found && RANK[found] > RANK[level]) level = found;
  }
  return level;
}

export function matches(entry: LogEntry, filter: LogFilter): boolean {
  if (filter.function && !entry.path.includes(filter.function)) return false;
  return !filter.level || RANK[entry.level] >= RANK[filter.level];
}

export class LogRing {
  /** Oldest first, from `head` on (a moving start, so an eviction costs no copy). */
  private items: { entry: LogEntry; bytes: number }[] = [];
  private head = 0;
  private heldBytes = 0;
  private nextSeq = 1;
  private readonly listeners = new Set<() => void>();
  private readonly limits: () => LogRingLimits;
  /** Entries pushed out by newer ones since the object started. */
  evicted = 0;

  constructor(limits: () => LogRingLimits) {
    this.limits = limits;
  }

  get size(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  /** The `seq` the next entry gets; every entry before it is in the ring or evicted. */
  get nextSequence(): number {
    return this.nextSeq;
  }

  /** The oldest entry's `seq` (`nextSequence` when empty). */
  get oldestSequence(): number {
    return this.size === 0 ? this.nextSeq : this.items[this.head]!.entry.seq;
  }

  add(run: FunctionRun): LogEntry {
    const limits = this.limits();
    let bytes = entryBytes(run);
    // A run can print more than a small budget holds (32 K characters): its lines make way, so the ring still tells it ran.
    if (bytes > limits.bytes) {
      run = { ...run, lines: [`[WARN] ${run.lines.length} lines dropped: more than the log ring holds (knob logRingBytes)`] };
      bytes = entryBytes(run);
    }
    const entry: LogEntry = { ...run, seq: this.nextSeq++, level: levelOf(run) };
    this.items.push({ entry, bytes });
    this.heldBytes += bytes;
    this.trim(limits);
    for (const listener of this.listeners) listener();
    return entry;
  }

  /** Evicts the oldest entries until the ring is within `limits` (called on each add, and when the knobs change). */
  trim(limits: LogRingLimits = this.limits()): void {
    while (this.size > 0 && (this.size > limits.entries || this.heldBytes > limits.bytes)) {
      this.heldBytes -= this.items[this.head]!.bytes;
      this.items[this.head++] = undefined as never;
      this.evicted++;
    }
    if (this.head > 1_024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Up to `max` entries after `seq` that pass `filter`, oldest first; `next`
   * is where to read on from, and `missed` counts entries after `seq` that
   * were evicted before this reader got to them.
   */
  after(seq: number, filter: LogFilter, max: number): { entries: LogEntry[]; next: number; missed: number } {
    const oldest = this.oldestSequence;
    const missed = Math.max(0, oldest - 1 - seq);
    let cursor = Math.max(seq, oldest - 1);
    const entries: LogEntry[] = [];
    for (let i = this.head + (cursor + 1 - oldest); i < this.items.length && entries.length < max; i++) {
      const { entry } = this.items[i]!;
      cursor = entry.seq;
      if (matches(entry, filter)) entries.push(entry);
    }
    return { entries, next: cursor, missed };
  }

  /** Calls `listener` after every add; returns how to stop. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }
}
