/**
 * A live tail of the log ring as NDJSON (one JSON object a line): the
 * entries after `since` that pass the filter, then each new one as it comes,
 * until `maxMs` has passed (then an `end` line says where to resume). Lines:
 *
 *   {"type":"run", seq, ts, requestId, path, kind, outcome, error, durationMs, level, lines}
 *   {"type":"missed","count":n}   runs evicted before this reader got to them
 *   {"type":"end","next":seq,"reason":"caught-up"|"time"|"replaced"}   resume with ?since=<next>
 *
 * "replaced": the deployment's tails were at their limit and a newer one
 * took this one's place (a reader that went away cannot be told apart from
 * a quiet one until something is written to it, so the newest reader wins).
 *
 * A connection costs a cursor, not a queue: the stream is pulled, so it
 * holds at most one batch while its reader is slow, and a reader that falls
 * behind the ring is told how many runs it missed.
 */
import { isLogLevel, type LogFilter, type LogRing } from "./log-ring.ts";

/** Entries per chunk: small enough that a slow reader holds little, large enough that a backlog goes out in few writes. */
const BATCH_ENTRIES = 100;

export interface LogStreamRequest {
  /** Entries after this `seq`; null: everything the ring holds. */
  since: number | null;
  filter: LogFilter;
  /** Keep the stream open for new entries (else it ends once caught up). */
  follow: boolean;
}

/** `?since=&function=&level=&follow=` of `/api/admin/logs`, or why not. */
export function parseLogStreamRequest(params: URLSearchParams): LogStreamRequest | { error: string } {
  const sinceText = params.get("since");
  const since = sinceText === null || sinceText === "" ? null : Number(sinceText);
  if (since !== null && !Number.isSafeInteger(since)) return { error: `since must be an entry's seq (an integer), got ${JSON.stringify(sinceText)}` };
  const level = params.get("level") || undefined;
  if (level !== undefined && !isLogLevel(level)) return { error: `level must be one of debug, log, info, warn, error; got ${JSON.stringify(level)}` };
  const fn = params.get("function") || undefined;
  const follow = !["0", "false", "no"].includes(params.get("follow") ?? "");
  return { since, filter: { ...(fn ? { function: fn } : {}), ...(level ? { level } : {}) }, follow };
}

export interface LogStreamOptions {
  /** How long a stream stays open (knob logStreamMaxMs). */
  maxMs: number;
  /** Called once when the stream ends, however it ends. */
  onEnd?: () => void;
  /** Schedules `fn` after `ms`; returns how to cancel it (injected: tests end a stream without waiting). */
  after?: (ms: number, fn: () => void) => () => void;
}

const realTimer = (ms: number, fn: () => void) => {
  const timer = setTimeout(fn, ms);
  return () => clearTimeout(timer);
};

export type LogStreamEnd = "caught-up" | "time" | "replaced";

/** The stream, and how to end it early (it says so in its last line). */
export interface LogTail {
  body: ReadableStream<Uint8Array>;
  close(reason: "replaced"): void;
}

export function logStream(ring: LogRing, request: LogStreamRequest, { maxMs, onEnd, after = realTimer }: LogStreamOptions): LogTail {
  const encoder = new TextEncoder();
  const line = (value: object) => `${JSON.stringify(value)}\n`;
  let cursor = request.since ?? ring.oldestSequence - 1;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let ended = false;
  let wake: (() => void) | null = null;
  const notify = () => {
    const waiting = wake;
    wake = null;
    waiting?.();
  };
  const unsubscribe = ring.subscribe(notify);
  let cancelTimer = () => {};
  const end = () => {
    if (ended) return;
    ended = true;
    unsubscribe();
    cancelTimer();
    onEnd?.();
    // A pull waiting for news returns (and writes nothing more).
    notify();
  };
  /** Says why and where to resume, then ends: written at once, whether or not anyone is pulling. */
  const finish = (reason: LogStreamEnd) => {
    if (ended) return;
    try {
      controller.enqueue(encoder.encode(line({ type: "end", next: cursor, reason })));
      controller.close();
    } catch {
      // The reader is gone already: nothing to tell.
    }
    end();
  };
  cancelTimer = after(maxMs, () => finish("time"));

  const body = new ReadableStream<Uint8Array>(
    {
      start(streamController) {
        controller = streamController;
      },
      async pull() {
        while (!ended) {
          const { entries, next, missed } = ring.after(cursor, request.filter, BATCH_ENTRIES);
          cursor = next;
          if (entries.length > 0 || missed > 0) {
            const text = (missed > 0 ? line({ type: "missed", count: missed }) : "") + entries.map((entry) => line({ type: "run", ...entry })).join("");
            controller.enqueue(encoder.encode(text));
            return;
          }
          if (!request.follow) return finish("caught-up");
          await new Promise<void>((resolve) => (wake = resolve));
        }
      },
      cancel: end,
    },
    // One batch ahead at most: a reader that stops reading stops the pulls.
    { highWaterMark: 1 },
  );
  return { body, close: finish };
}
