/**
 * Convex Auth 0.0.95 in headless Chromium against `wrangler dev`: the page in
 * test/fixtures/convex-auth-0.0.95/web/ (`convex/react` with
 * `@convex-dev/auth/react`'s ConvexAuthProvider and useAuthActions), served
 * from its own origin as an app's dev server would, signs up, sees its user through a query that calls
 * getAuthUserId, sends as that user, stays signed in across a reload (the
 * library's tokens in localStorage, refreshed by the client), signs out,
 * has a wrong password refused and signs back in. The same with Convex Auth
 * 2.0.0's page (test/fixtures/convex-auth-2.0.0/web/: its React client and
 * the username + password method's hooks), whose tokens the deployment signs.
 * Skipped, saying why, without Chromium (`.ci/run` installs it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import type { Browser, Page } from "playwright-core";
import { startDevServer, TEST_ADMIN_KEY, type DevServer } from "../../scripts/lib/wrangler-dev.ts";
import { adminCall } from "../../scripts/lib/admin.ts";
import { generateConvexAuthKeys } from "../../scripts/lib/auth-keys.ts";
import { bundleAuthPage, servePage, type PageServer } from "./auth-page.ts";
import { CHROMIUM, launchChromium, warnIfNoChromium } from "./chromium.ts";

warnIfNoChromium("the Convex Auth browser test");

const FIXTURE = resolve(import.meta.dirname, "../fixtures/convex-auth-0.0.95");

describe.skipIf(!CHROMIUM)("Convex Auth 0.0.95 in headless Chromium (convex/react + @convex-dev/auth/react, wrangler dev)", () => {
  let server: DevServer;
  let browser: Browser;
  let site: PageServer;
  beforeAll(async () => {
    [server, browser, site] = await Promise.all([
      startDevServer({ app: resolve(FIXTURE, "convex") }),
      launchChromium(),
      servePage(bundleAuthPage(resolve(FIXTURE, "web/page.tsx"), "@convex-dev/auth/react")),
    ]);
    const target = { deploymentUrl: server.url, key: TEST_ADMIN_KEY, actor: "convex-auth-browser" };
    for (const [name, value] of Object.entries(await generateConvexAuthKeys())) {
      await adminCall(target, `env/${name}`, { method: "PUT", body: JSON.stringify({ value }) });
    }
  });
  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await server?.stop();
  });

  const open = async (): Promise<Page> => {
    const page = await browser.newPage();
    page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
    await page.goto(`${site.url}/?deployment=${encodeURIComponent(server.url)}`);
    return page;
  };
  const text = (page: Page, selector: string) => page.locator(selector).textContent({ timeout: 15_000 });
  const waitText = (page: Page, selector: string, expected: string) =>
    page.waitForFunction(([s, e]) => document.querySelector(s!)?.textContent === e, [selector, expected], { timeout: 15_000 });

  const fill = async (page: Page, email: string, password: string) => {
    await page.waitForSelector("#sign-in", { timeout: 15_000 });
    await page.fill("#email", email);
    await page.fill("#password", password);
  };

  it("signs up, sees its user through getAuthUserId, sends as that user, stays signed in across a reload, signs out, and signs back in", async () => {
    const page = await open();
    await fill(page, "ann@example.com", "correct horse 1");
    await page.click("#sign-up");
    await waitText(page, "#viewer", "ann@example.com");

    await page.fill("#body", "hello from the browser");
    await page.press("#body", "Enter");
    await waitText(page, "#messages li span", "hello from the browser");
    expect(await text(page, "#messages li b")).toBe("ann@example.com");

    await page.reload();
    await waitText(page, "#viewer", "ann@example.com");

    await page.click("#sign-out");
    await page.waitForSelector("#sign-in", { timeout: 15_000 });
    expect(await page.evaluate(() => Object.keys(localStorage).filter((key) => key.includes("JWT")))).toEqual([]);

    await fill(page, "ann@example.com", "not anns password");
    await page.click("#sign-in-button");
    await page.waitForSelector("#error", { timeout: 15_000 });
    expect(await page.locator("#viewer").count()).toBe(0);

    await fill(page, "ann@example.com", "correct horse 1");
    await page.click("#sign-in-button");
    await waitText(page, "#viewer", "ann@example.com");
    await page.close();
  });
});

describe.skipIf(!CHROMIUM)("Convex Auth 2.0.0 in headless Chromium (its React client and username + password hooks, wrangler dev)", () => {
  const FIXTURE_2 = resolve(import.meta.dirname, "../fixtures/convex-auth-2.0.0");
  let server: DevServer;
  let browser: Browser;
  let site: PageServer;
  beforeAll(async () => {
    [server, browser, site] = await Promise.all([
      startDevServer({ app: resolve(FIXTURE_2, "convex") }),
      launchChromium(),
      servePage(bundleAuthPage(resolve(FIXTURE_2, "web/page.tsx"), "convex-auth-2/react")),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await server?.stop();
  });

  const waitViewer = (page: Page) => page.waitForFunction(() => /^\w+$/.test(document.querySelector("#viewer")?.textContent ?? ""), null, { timeout: 15_000 });
  const fill = async (page: Page, username: string, password: string) => {
    await page.waitForSelector("#sign-in", { timeout: 15_000 });
    await page.fill("#username", username);
    await page.fill("#password", password);
  };

  it("signs up, sees its user through getAuthUserId, sends, stays signed in across a reload, signs out, has a wrong password refused, and signs back in", async () => {
    const page = await browser.newPage();
    page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
    await page.goto(`${site.url}/?deployment=${encodeURIComponent(server.url)}`);
    await fill(page, "ann", "correct horse battery");
    await page.click("#sign-up");
    await waitViewer(page);
    const userId = await page.locator("#viewer").textContent();

    await page.fill("#body", "hello from 2.0.0");
    await page.press("#body", "Enter");
    await page.waitForFunction(() => document.querySelector("#messages li span")?.textContent === "hello from 2.0.0", null, { timeout: 15_000 });
    expect(await page.locator("#messages li b").first().textContent()).toBe(userId);

    await page.reload();
    await waitViewer(page);
    expect(await page.locator("#viewer").textContent()).toBe(userId);

    await page.click("#sign-out");
    await fill(page, "ann", "not anns password");
    await page.click("#sign-in-button");
    await page.waitForFunction(() => document.querySelector("#error")?.textContent === "INVALID_CREDENTIALS", null, { timeout: 15_000 });

    await fill(page, "ann", "correct horse battery");
    await page.click("#sign-in-button");
    await waitViewer(page);
    expect(await page.locator("#viewer").textContent()).toBe(userId);
    await page.close();
  });
});
