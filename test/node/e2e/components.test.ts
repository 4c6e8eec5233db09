/**
 * Components from npm in the example app (convex/convex.config.ts), against
 * `wrangler dev` with the official clients: @convex-dev/rate-limiter,
 * @convex-dev/workpool and @convex-dev/sharded-counter, used as their READMEs
 * show, and a component's function refused to a client.
 */
import { describe, expect, it } from "vitest";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { devServerForFile } from "./dev-server.ts";
import { createDeployment } from "../../../scripts/lib/admin.ts";
import { untilValue } from "../../../scripts/lib/until.ts";

const server = devServerForFile();
const options = { skipConvexDeploymentUrlCheck: true };

describe("components against wrangler dev", () => {
  it("rate limiter: of five sends by one author three are admitted, the others get retryAfter", async () => {
    const http = new ConvexHttpClient(await createDeployment(server.url, "components-rate"), options);
    const answers: { ok: boolean; retryAfter?: number }[] = [];
    for (let i = 0; i < 5; i++) answers.push(await http.mutation(anyApi.limited!.send!, { chatId: "c", author: "ada", body: `m${i}` }));
    expect(answers.map((answer) => answer.ok)).toEqual([true, true, true, false, false]);
    for (const refused of answers.slice(3)) expect(refused.retryAfter).toBeGreaterThan(0);
    expect(await http.query(anyApi.messages!.list!, { chatId: "c" })).toHaveLength(3);
  });

  it("workpool and sharded counter: enqueued jobs all run, at most maxParallelism at once, and a live count follows them", async () => {
    const url = await createDeployment(server.url, "components-pool");
    const client = new ConvexClient(url, options);
    try {
      const seen: number[] = [];
      let latest: { done: number; mostAtOnce: number } | undefined;
      const unsubscribe = client.onUpdate(anyApi.digests!.progress!, { chatId: "c" }, (progress: { done: number; mostAtOnce: number }) => {
        latest = progress;
        if (seen.at(-1) !== progress.done) seen.push(progress.done);
      });
      await untilValue(
        () => latest,
        (value) => value !== undefined,
        "the first count",
      );
      await client.mutation(anyApi.digests!.enqueue!, { chatId: "c", count: 6 });
      // Promptly: a component's scheduled job sets the deployment's alarm like the app's own (without that, a later alarm found them ~15 s on).
      await untilValue(
        () => latest,
        (value) => value?.done === 6,
        "all six digests",
        8_000,
      );
      unsubscribe();
      // The live query moved with the jobs, not only at the end.
      expect(seen[0]).toBe(0);
      expect(seen.length).toBeGreaterThan(2);
      expect(latest!.mostAtOnce).toBeGreaterThan(0);
      expect(latest!.mostAtOnce).toBeLessThanOrEqual(2);
    } finally {
      await client.close();
    }
  });

  it("a component's function called directly by a client is refused", async () => {
    const http = new ConvexHttpClient(await createDeployment(server.url, "components-refused"), options);
    for (const path of ["lib:checkRateLimit", "rateLimiter/lib:checkRateLimit", "public:count"]) {
      await expect(http.query(path as never, { name: "x", config: { kind: "token bucket", rate: 1, period: 1 } } as never)).rejects.toThrow(
        /Could not find public function/,
      );
    }
  });
});
