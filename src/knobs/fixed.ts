/**
 * Fixed values: the ones that are not knobs, named in one place with why.
 * A value an operator could want to change per deployment is a knob
 * (`knob-table.ts`); these are either read before any deployment's knobs
 * are (the Worker's per-isolate caches) or set by a protocol or a client.
 */

/** Deployment names each Worker isolate remembers (known to exist, their shard counts, their base URLs): a bound, not a tuning. */
export const MAX_REMEMBERED_DEPLOYMENTS = 10_000;

/** How long a Worker isolate believes a deployment name does not exist, so a name an operator creates is reachable from every isolate soon after. */
export const UNKNOWN_DEPLOYMENT_TTL_MS = 10_000;

/**
 * How long a Worker isolate trusts a deployment's shard count before asking
 * again. Per isolate, not per deployment: the isolate that changes the knob
 * forgets at once, the others within this.
 */
export const SHARD_COUNT_TTL_MS = 10_000;

/** The shortest wait between two waiting-room turns, so a refilled admission bucket lets a wave in rather than one session a poll. */
export const WAITING_ROOM_MIN_TURN_MS = 100;

/**
 * A session told to come back later (shed, or refused at `maxSessions`) is
 * given a wait spread over this window, so the ones closed together do not
 * return together. The official client backs off from 3 s on its own.
 */
export const COME_BACK_WINDOW_MS = { min: 3_000, spread: 12_000 } as const;

/** A wait drawn from `COME_BACK_WINDOW_MS`. */
export function comeBackMs(random: () => number): number {
  return COME_BACK_WINDOW_MS.min + Math.floor(random() * COME_BACK_WINDOW_MS.spread);
}

/**
 * A single-table JSON import is one array, parsed whole in the Worker: at
 * most this many bytes (Convex's own limit for JSON arrays). JSONL and CSV
 * stream and have no such limit.
 */
export const JSON_ARRAY_MAX_BYTES = 8 * 1_048_576;

/**
 * Bytes of a ZIP upload pushed into the unzipper at once: what one push
 * inflates is handled (staged, or streamed to R2) before the next, so this
 * bounds the memory a highly compressed entry can take in between.
 */
export const MAX_UNZIP_INPUT_CHUNK = 16_384;

/**
 * How long a cached query result that read the clock (`Date.now()`, `new Date()`) answers one-shot calls:
 * past it the query runs again even though nothing it read changed. Convex's query cache uses the same bound
 * (`MAX_CACHE_AGE`, 5 s); live subscriptions are not re-run for time, there or here.
 */
export const QUERY_CACHE_CLOCK_MAX_AGE_MS = 5_000;
