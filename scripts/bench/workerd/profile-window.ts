/**
 * A stretch of a workerd benchmark that `npm run bench -- profile <name>` CPU-profiles
 * (scripts/bench/workerd-profile.ts, through workerd's inspector). Without `BENCH_PROFILE`
 * it only runs `work`.
 *
 * The window is a handshake, not a guess: the benchmark prints a start line and waits until
 * the profiler, having started, sets a global in this isolate; it prints the stop line with
 * what the stretch did (`units`, e.g. commits) and waits until the profile is taken. So the
 * profile holds the stretch and the few milliseconds of the handshake, nothing else.
 */
import { env } from "cloudflare:test";

/** The global the profiler sets (Runtime.evaluate) to the window's label once it profiles, and to null once it stopped. */
const PROFILING = "__benchProfiling";

/** Whether this run is profiled (a benchmark may add stretches only worth running then). */
export const profiling = () => Boolean((env as unknown as { BENCH_PROFILE?: string }).BENCH_PROFILE);

async function untilProfiling(value: string | null): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((globalThis as Record<string, unknown>)[PROFILING] !== value) {
    if (Date.now() > deadline) throw new Error(`the profiler did not answer (${PROFILING} never became ${String(value)})`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Runs `work` inside a profile window named `label`; `units` says how many `unit`s it did (the profile's table divides by them). */
export async function profileWindow<T>(label: string, unit: string, units: number | ((result: T) => number), work: () => Promise<T>): Promise<T> {
  if (!profiling()) return work();
  console.log(`BENCH-PROFILE-START ${JSON.stringify({ label })}`);
  await untilProfiling(label);
  const result = await work();
  console.log(`BENCH-PROFILE-STOP ${JSON.stringify({ label, unit, units: typeof units === "number" ? units : units(result) })}`);
  await untilProfiling(null);
  return result;
}
