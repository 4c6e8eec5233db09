/**
 * The dashboard's logs panel in headless Chromium against `wrangler dev`
 * (issue 26 item 5): a function's console.log shows up live, the function
 * and level filters narrow the tail; environment variables show by name and
 * never by value (item 2). Without Chromium this test alone is skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import type { Browser } from "playwright-core";
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { startDevServer, TEST_ADMIN_KEY, type DevServer } from "../../scripts/lib/wrangler-dev.ts";
import { CHROMIUM, launchChromium, warnIfNoChromium } from "./chromium.ts";

warnIfNoChromium("the dashboard logs test");
const APP = fileURLToPath(new URL("../../convex", import.meta.url));
const PROBE = fileURLToPath(new URL("../fixtures/ops-probe/envprobe.ts", import.meta.url));

describe.skipIf(!CHROMIUM)("the dashboard's logs panel in headless Chromium (wrangler dev)", () => {
  let server: DevServer;
  let browser: Browser;
  beforeAll(async () => {
    [server, browser] = await Promise.all([startDevServer({ app: APP, modules: [PROBE] }), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("shows a function's console.log live, filters by function and level, and shows variables by name only", async () => {
    const secret = `s3cret-${crypto.randomUUID()}`;
    const put = await fetch(`${server.url}/api/admin/env/PROBE_TOKEN`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${TEST_ADMIN_KEY}`, "Content-Type": "application/json" },
      body: JSON.stringify({ value: secret }),
    });
    expect(put.status).toBe(200);
    const http = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
    await http.mutation(anyApi.envprobe!.chatter!, { word: "before-the-page" });

    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const rows = (filter = "") => page.locator(`#logs .run${filter}`);
    try {
      await page.goto(`${server.url}/dashboard#key=${TEST_ADMIN_KEY}`);
      // The backlog, then a run as it happens.
      await page.waitForFunction(() => document.querySelector("#logs")?.textContent?.includes("[LOG] chatter says before-the-page"), null, { timeout: 15_000 });
      await page.waitForFunction(() => document.querySelector("#log-state")?.textContent === "live", null, { timeout: 15_000 });
      await http.mutation(anyApi.envprobe!.chatter!, { word: "while-watching" });
      await http.mutation(anyApi.messages!.send!, { chatId: "dash", author: "ann", body: "hi" });
      await page.waitForFunction(() => document.querySelector("#logs .run")?.getAttribute("data-path") === "messages:send", null, { timeout: 15_000 });
      expect(await rows('[data-path="envprobe:chatter"]').first().textContent()).toContain("[WARN] chatter warns while-watching");
      expect(await rows('[data-path="envprobe:chatter"]').first().getAttribute("data-level")).toBe("warn");

      // Function filter: only the probe's runs.
      await page.fill("#log-function", "envprobe:");
      await page.dispatchEvent("#log-function", "change");
      await page.waitForFunction(() => document.querySelectorAll("#logs .run").length === 2, null, { timeout: 15_000 });
      expect(await rows('[data-path="messages:send"]').count()).toBe(0);

      // Level filter: errors only; a failing run arrives live with its message.
      await page.selectOption("#log-level", "error");
      await page.waitForFunction(
        () => document.querySelectorAll("#logs .run").length === 0 && document.querySelector("#log-state")?.textContent === "live",
        null,
        { timeout: 15_000 },
      );
      await expect(http.mutation(anyApi.envprobe!.fail!, {})).rejects.toThrow();
      await http.mutation(anyApi.envprobe!.chatter!, { word: "not-an-error" });
      await page.waitForFunction(() => document.querySelector("#logs")?.textContent?.includes("error: Uncaught Error: probe failure"), null, {
        timeout: 15_000,
      });
      expect(await rows().count()).toBe(1);
      expect(await rows().first().textContent()).toContain("[ERROR] about to fail");

      // Variables: the name shows, the value never reaches the page.
      await page.waitForFunction(() => document.querySelector("#environment")?.textContent === "environment variables: PROBE_TOKEN", null, { timeout: 15_000 });
      expect(await page.content()).not.toContain(secret);
    } finally {
      await page.close();
    }
  });
});
