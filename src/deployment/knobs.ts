/**
 * Every limit of a deployment, in one typed table: name (unit in the name),
 * default, safe range and what it does. Read through one accessor
 * (`knobs.values`), so a limit is never a constant buried in code.
 *
 * Adding a knob: add a row here and read it from `values`. Keep the doc line
 * honest about what happens at each end of the range.
 */
import { DEFAULT_ENGINE_LIMITS, type EngineLimits } from "../engine/index.ts";
import type { SyncKnobs } from "../sync/sync-server.ts";

export interface KnobDefinition {
  default: number;
  min: number;
  max: number;
  unit: "bytes" | "ms" | "count";
  doc: string;
}

export const KNOBS = {
  maxDocumentsRead: {
    default: DEFAULT_ENGINE_LIMITS.maxDocumentsRead,
    min: 100,
    max: 1_000_000,
    unit: "count",
    doc: "Documents one query or mutation may read. Low: legitimate scans fail; high: one function can hog the object.",
  },
  maxReadIntervals: {
    default: DEFAULT_ENGINE_LIMITS.maxReadIntervals,
    min: 16,
    max: 65_536,
    unit: "count",
    doc: "Index ranges one function's read-set may hold. High values make subscriptions costlier to index.",
  },
  maxDocumentsWritten: {
    default: DEFAULT_ENGINE_LIMITS.maxDocumentsWritten,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "Documents one mutation may write. High values make single commits long and their write-sets large.",
  },
  maxDocumentBytes: {
    default: DEFAULT_ENGINE_LIMITS.maxDocumentBytes,
    min: 1_024,
    max: 1_900_000,
    unit: "bytes",
    doc: "Encoded size of one document. Capped below SQLite's 2 MB row limit on Durable Objects.",
  },
  maxFrameBytes: {
    default: 1_048_576,
    min: 1_024,
    max: 33_554_432,
    unit: "bytes",
    doc: "Largest WebSocket frame a client may send; larger ones close that socket with a FatalError. workerd does not enforce one locally.",
  },
  idlePingMs: {
    default: 30_000,
    min: 2_000,
    max: 80_000,
    unit: "ms",
    doc: "Alarm period for idle Pings; sessions sent nothing for half of it get a Ping. The official client reconnects after 60 s of silence, so keep 1.5x this under 60 s.",
  },
  maxClockAheadMs: {
    default: 60_000,
    min: 0,
    max: 86_400_000,
    unit: "ms",
    doc: "How far past the wall clock a client's maxObservedTimestamp may move the deployment's timestamp; further is refused as an internal error.",
  },
  mutationResultRetentionMs: {
    default: 3_600_000,
    min: 60_000,
    max: 604_800_000,
    unit: "ms",
    doc: "How long a socket mutation's outcome is kept so a retry after reconnect is applied once. Longer costs storage (one row per mutation).",
  },
} as const satisfies Record<string, KnobDefinition>;

export type KnobName = keyof typeof KNOBS;
export type KnobValues = { [K in KnobName]: number };

export const DEFAULT_KNOBS: Readonly<KnobValues> = Object.fromEntries(Object.entries(KNOBS).map(([name, knob]) => [name, knob.default])) as KnobValues;

/** The one accessor. Overrides (set at runtime, persisted) arrive with the knob API. */
export class Knobs {
  private current: KnobValues = { ...DEFAULT_KNOBS };

  get values(): Readonly<KnobValues> {
    return this.current;
  }

  engineLimits(): EngineLimits {
    const { maxDocumentsRead, maxReadIntervals, maxDocumentsWritten, maxDocumentBytes } = this.current;
    return { maxDocumentsRead, maxReadIntervals, maxDocumentsWritten, maxDocumentBytes };
  }

  sync(): SyncKnobs {
    return this.current;
  }
}
