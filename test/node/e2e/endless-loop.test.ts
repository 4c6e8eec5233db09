/**
 * Issue 28, item 1: a query that never yields (`while (true) {}`) cannot take the deployment down.
 * The example app with a spinning module beside it (test/fixtures/endless-loop/convex/spin.ts),
 * under `wrangler dev`, where nothing else can stop it (workerd does not enforce `cpu_ms` locally):
 * the official client's call is answered with an error naming the function, and meanwhile the
 * app's own query, the status and the admin API answer within 1 s. Every request here gives up
 * after a few seconds, so without the guard the test fails instead of hanging.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { startDevServer, TEST_ADMIN_KEY, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";

const APP = fileURLToPath(new URL("../../../convex", import.meta.url));
const SPIN = fileURLToPath(new URL("../../fixtures/endless-loop/convex/spin.ts", import.meta.url));
/** Far past the budget (maxSyncRunMs, 500 ms): a request still unanswered by then never will be. */
const GIVE_UP_MS = 5_000;
const giveUp: typeof fetch = (input, init) => fetch(input, { ...init, signal: AbortSignal.timeout(GIVE_UP_MS) });

/** When `work` settled, in ms after `since`, and how. */
async function timed<T>(since: number, work: Promise<T>): Promise<{ ms: number; value?: T; error?: Error }> {
  try {
    const value = await work;
    return { ms: Date.now() - since, value };
  } catch (error) {
    return { ms: Date.now() - since, error: error as Error };
  }
}

describe("a query that never yields, under wrangler dev", () => {
  let server: DevServer;
  beforeAll(async () => {
    server = await startDevServer({ app: APP, modules: [SPIN] });
  });
  afterAll(() => server?.stop());

  it("is answered with an error naming it; the app's query, the status and the admin API answer within 1 s meanwhile", async () => {
    const http = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true, fetch: giveUp });
    const other = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true, fetch: giveUp });
    await http.mutation(anyApi.messages!.send!, { chatId: "up", author: "ann", body: "still here" });

    for (let round = 0; round < 2; round++) {
      const started = Date.now();
      const spinning = timed(started, http.query(anyApi.spin!.forever!, {}));
      // Sent while the spin holds the thread (the spin's request goes first).
      await new Promise((resolve) => setTimeout(resolve, 50));
      const [spun, listed, status, adminApi] = await Promise.all([
        spinning,
        timed(started, other.query(anyApi.messages!.list!, { chatId: "up" })),
        timed(
          started,
          giveUp(`${server.url}/api/status`).then((response) => response.json()),
        ),
        timed(
          started,
          giveUp(`${server.url}/api/admin/status`, { headers: { Authorization: `Bearer ${TEST_ADMIN_KEY}` } }).then((response) => response.json()),
        ),
      ]);
      expect(spun.error?.message).toMatch(
        /spin:forever (ran for more than \d+ ms|made more than \d+ loop iterations and function calls) without yielding and was stopped \(knob maxSyncRun(Ms|Steps)\)/,
      );
      expect(listed.value).toMatchObject([{ body: "still here" }]);
      expect(status.error).toBeUndefined();
      expect(adminApi.value).toMatchObject({ documents: 1 });
      for (const { ms } of [spun, listed, status, adminApi]) expect(ms).toBeLessThan(1_000);
    }
  });
});
