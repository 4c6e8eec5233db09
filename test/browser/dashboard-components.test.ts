/**
 * The dashboard's components table in headless Chromium against `wrangler dev`
 * (issue 25 item 4): the example app's component instances, each with its npm
 * package, its tables' documents and sizes, its pending jobs. Without
 * Chromium this test alone is skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Browser } from "playwright-core";
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { startDevServer, TEST_ADMIN_KEY, type DevServer } from "../../scripts/lib/wrangler-dev.ts";
import { CHROMIUM, launchChromium, warnIfNoChromium } from "./chromium.ts";

warnIfNoChromium("the dashboard components test");

describe.skipIf(!CHROMIUM)("the dashboard's components in headless Chromium (wrangler dev)", () => {
  let server: DevServer;
  let browser: Browser;
  beforeAll(async () => {
    [server, browser] = await Promise.all([startDevServer(), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("lists each component instance with its package and its tables' documents and sizes", async () => {
    // Two authors' buckets in the rate limiter's `rateLimits`.
    const http = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
    await http.mutation(anyApi.limited!.send!, { chatId: "dash", author: "ann", body: "one" });
    await http.mutation(anyApi.limited!.send!, { chatId: "dash", author: "bob", body: "two" });

    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(`${server.url}/dashboard#key=${TEST_ADMIN_KEY}`);
    await page.waitForFunction(() => document.querySelector("#components-summary")?.textContent === "components: 5 instances", null, { timeout: 15_000 });
    const row = (path: string) => page.locator(`#components tr[data-path="${path}"] td`);
    expect(await row("rateLimiter").allTextContents()).toEqual([
      "rateLimiter",
      "@convex-dev/rate-limiter@0.4.0",
      expect.stringMatching(/^rateLimits: 2 · \d+ B$/m),
      "0",
      "0",
    ]);
    expect((await row("digestPool").allTextContents()).slice(0, 2)).toEqual(["digestPool", "@convex-dev/workpool@0.5.0"]);
    expect((await row("shardedCounter").allTextContents()).slice(0, 3)).toEqual(["shardedCounter", "@convex-dev/sharded-counter@0.2.1", "counters: 0 · 0 B"]);
    expect(await page.locator("#components tbody tr").count()).toBe(5);
    const dir = resolve(import.meta.dirname, "../../test-results");
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, "dashboard-components.png"), fullPage: true });
  });
});
