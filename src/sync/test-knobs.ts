/** Knobs for live sync's plain-Node tests: the table's defaults, with budgets no test means to hit. */
import { DEFAULT_KNOBS, type KnobValues } from "../deployment/knob-table.ts";

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
