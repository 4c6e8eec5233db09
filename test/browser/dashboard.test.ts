/**
 * The dashboard in a real browser: headless Chromium (Debian's `chromium`,
 * driven by `playwright-core`) opens `/dashboard` of a `wrangler dev`
 * instance, signed in through the URL fragment, while traffic runs; it must
 * show the tier and charts that move. Saves a screenshot to
 * test-results/dashboard.png. Without Chromium this test alone is skipped,
 * saying how to enable it (`.ci/run` installs it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Browser } from "playwright-core";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import WebSocket from "ws";
import { startDevServer, TEST_ADMIN_KEY, type DevServer } from "../../scripts/lib/wrangler-dev.ts";
import { setKnobs } from "../../scripts/lib/admin.ts";
import { CHROMIUM, launchChromium, warnIfNoChromium } from "./chromium.ts";

warnIfNoChromium("the browser test");

describe.skipIf(!CHROMIUM)("the dashboard in headless Chromium (wrangler dev)", () => {
  let server: DevServer;
  let browser: Browser;
  beforeAll(async () => {
    [server, browser] = await Promise.all([startDevServer(), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("signs in from the URL fragment, shows the tier, and its charts move with traffic", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(`${server.url}/dashboard#key=${TEST_ADMIN_KEY}`);
    // The key left the address bar (it was only ever in the fragment).
    expect(new URL(page.url()).hash).toBe("");
    await page.waitForFunction(() => document.querySelector("#tier")?.textContent?.includes("tier: standard"), null, { timeout: 15_000 });
    expect(await page.locator("#tier").getAttribute("class")).toBe("");

    // Traffic: a live subscriber and a stream of writes.
    const http = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
    const live = new ConvexClient(server.url, {
      skipConvexDeploymentUrlCheck: true,
      webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
      logger: false,
    });
    live.onUpdate(anyApi.messages!.list!, { chatId: "dash" }, () => undefined);
    const commits = () => page.locator('.chart[data-title="commits/s"] span').textContent();
    const points = async () => Number(await page.locator('.chart[data-title="commits/s"]').getAttribute("data-points"));
    try {
      const deadline = Date.now() + 20_000;
      let n = 0;
      while (Date.now() < deadline && ((await points()) < 3 || (await commits()) === "0")) {
        for (let i = 0; i < 5; i++) await http.mutation(anyApi.messages!.send!, { chatId: "dash", author: "bench", body: `m${n++}` });
        await page.waitForTimeout(200);
      }
      expect(await points()).toBeGreaterThanOrEqual(3);
      expect(Number((await commits())!.split(" ")[0])).toBeGreaterThan(0);
      const sessions = await page.locator('.chart[data-title="sessions"] span').textContent();
      expect(sessions).toMatch(/^1 of 30000$/);
      // The line moves: the commits chart is redrawn with more points a few seconds later.
      const before = await page.locator('.chart[data-title="commits/s"] polyline').getAttribute("points");
      for (let i = 0; i < 10; i++) await http.mutation(anyApi.messages!.send!, { chatId: "dash", author: "bench", body: `more${i}` });
      await page.waitForFunction((old) => document.querySelector('.chart[data-title="commits/s"] polyline')?.getAttribute("points") !== old, before, {
        timeout: 10_000,
      });
      expect(await page.locator("#knobs tbody tr").count()).toBeGreaterThan(30);
      // File storage's line counts a file once one is stored (the status is re-read every 5 s).
      const uploadUrl = (await http.mutation(anyApi.attachments!.generateUploadUrl!, {})) as string;
      expect((await fetch(uploadUrl, { method: "POST", headers: { "Content-Type": "image/png" }, body: new Uint8Array(2 * 1_048_576) })).status).toBe(200);
      await page.waitForFunction(() => document.querySelector("#files")?.textContent === "files: 1 · 2 MiB · uploading 0", null, { timeout: 15_000 });
      // The example app has no vector index; the vector-search test's app shows its own in status (test/node/e2e/vectors.test.ts).
      expect(await page.textContent("#vectors")).toBe("vector indexes: none");
      // With sync shards, the table of shards appears and counts the socket that landed on one.
      expect(await page.locator("#shards").isHidden()).toBe(true);
      await setKnobs(server.url, { syncShards: 2 });
      // The Worker reads syncShards at most every 10 s per isolate (it has read it for the client above).
      await page.waitForTimeout(10_500);
      const sharded = new ConvexClient(server.url, {
        skipConvexDeploymentUrlCheck: true,
        webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
        logger: false,
      });
      try {
        sharded.onUpdate(anyApi.messages!.list!, { chatId: "dash" }, () => undefined);
        await page.waitForFunction(() => [...document.querySelectorAll("#shards tbody tr td:nth-child(2)")].some((td) => td.textContent === "1"), null, {
          timeout: 30_000,
        });
      } finally {
        await sharded.close();
      }
      const dir = resolve(import.meta.dirname, "../../test-results");
      mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: join(dir, "dashboard.png"), fullPage: true });
    } finally {
      await live.close();
      await page.close();
    }
  });
});
