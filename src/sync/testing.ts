/** What live sync's plain-Node tests share: their knobs, and reading what a client was sent. */
import { DEFAULT_KNOBS, type KnobValues } from "../knobs/knob-table.ts";

/** The table's defaults, with budgets no test means to hit. */
export const TEST_SYNC_KNOBS: KnobValues = {
  ...DEFAULT_KNOBS,
  idlePingMs: 30_000,
  resubscribeRate: 100_000,
  resubscribeBurst: 100_000,
  queryResultCacheBytes: 16_777_216,
  sessionSendBytesPerSecond: 8_388_608,
  // A shard retrying its upstream waits 1, 2, 4, 8, then 10 ms (tests inject the wait anyway).
  peerRetryMinMs: 1,
  peerRetryMaxMs: 10,
};

/** The value of query `queryId` in the latest Transition that carried it, or undefined. */
export function latestResult(frames: readonly { type: string; [key: string]: unknown }[], queryId: number): unknown {
  for (let i = frames.length - 1; i >= 0; i--) {
    const m = frames[i]!;
    if (m.type !== "Transition") continue;
    const mod = (m.modifications as { queryId: number; value: unknown }[]).find((x) => x.queryId === queryId);
    if (mod) return mod.value;
  }
  return undefined;
}
