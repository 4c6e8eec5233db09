/**
 * The React chat page (`convex/react`: useQuery, usePaginatedQuery,
 * useMutation) in headless Chromium against `wrangler dev`: two pages see each
 * other's messages live, signing in with the dev issuer through
 * ConvexProviderWithAuth, "load more" pages back through 50 messages with no
 * gap or duplicate while new messages arrive, an image attached in one page
 * shows in the other, and search updates live.
 * Skipped, saying why, without Chromium (`.ci/run` installs it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { ConvexHttpClient } from "convex/browser";
import { api } from "../../convex/_generated/api";
import { startDevServer, type DevServer } from "../../scripts/lib/wrangler-dev.ts";
import { CHROMIUM, launchChromium, warnIfNoChromium } from "./chromium.ts";

warnIfNoChromium("the chat browser test");

const texts = (page: Page, list: string) => page.locator(`#${list} li span`).allTextContents();

describe.skipIf(!CHROMIUM)("the React chat page in headless Chromium (wrangler dev)", () => {
  let server: DevServer;
  let browser: Browser;
  let http: ConvexHttpClient;
  beforeAll(async () => {
    [server, browser] = await Promise.all([startDevServer(), launchChromium()]);
    http = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  const open = async (chat: string) => {
    const page = await browser.newPage();
    page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
    await page.goto(`${server.url}/?chat=${chat}`);
    await page.waitForFunction(() => document.querySelector("#status")?.textContent === "live", null, { timeout: 15_000 });
    return page;
  };

  it("two pages see each other's messages live", async () => {
    const [ann, bob] = await Promise.all([open("duet"), open("duet")]);
    await ann.fill("#author", "ann");
    await ann.fill("#body", "hello from ann");
    await ann.press("#body", "Enter");
    await bob.waitForFunction(() => [...document.querySelectorAll("#messages li span")].some((s) => s.textContent === "hello from ann"), null, {
      timeout: 10_000,
    });
    await bob.fill("#body", "hi ann, bob here");
    await bob.press("#body", "Enter");
    await ann.waitForFunction(() => document.querySelector("#messages li span")?.textContent === "hi ann, bob here", null, { timeout: 10_000 });
    expect((await texts(ann, "messages")).slice(0, 2)).toEqual(["hi ann, bob here", "hello from ann"]);
    await Promise.all([ann.close(), bob.close()]);
  });

  it("signs in through ConvexProviderWithAuth with the dev issuer: messages carry the verified name, and signing out goes back to anonymous", async () => {
    const [carol, watcher] = await Promise.all([open("signed"), open("signed")]);
    await carol.fill("#sign-in-name", "carol");
    await carol.press("#sign-in-name", "Enter");
    await carol.waitForFunction(() => document.querySelector("#signed-in b")?.textContent === "carol", null, { timeout: 10_000 });
    expect(await carol.locator("#author").count()).toBe(0);
    await carol.fill("#body", "signed message");
    await carol.press("#body", "Enter");
    await watcher.waitForFunction(() => document.querySelector("#messages li span")?.textContent === "signed message", null, { timeout: 10_000 });
    expect(await watcher.locator("#messages li b").first().textContent()).toBe("carol");
    await carol.click("#signed-in button");
    await carol.waitForSelector("#sign-in-name", { timeout: 10_000 });
    await carol.fill("#author", "anon");
    await carol.fill("#body", "anonymous again");
    await carol.press("#body", "Enter");
    await watcher.waitForFunction(() => document.querySelector("#messages li span")?.textContent === "anonymous again", null, { timeout: 10_000 });
    expect(await watcher.locator("#messages li b").first().textContent()).toBe("anon");
    await Promise.all([carol.close(), watcher.close()]);
  });

  it('"load more" pages back through 50 messages with no gap or duplicate while new ones arrive', async () => {
    for (let i = 0; i < 50; i++) await http.mutation(api.messages.send, { chatId: "history", author: "seed", body: `old ${String(i).padStart(2, "0")}` });
    const page = await open("history");
    await page.waitForFunction(() => document.querySelectorAll("#history li").length === 10, null, { timeout: 10_000 });
    let arrived = 0;
    for (let round = 0; round < 10; round++) {
      // A new message lands at the top while the reader pages back.
      await http.mutation(api.messages.send, { chatId: "history", author: "live", body: `new ${arrived++}` });
      const button = page.locator("#load-more");
      if ((await button.textContent()) === "that is everything") break;
      await page.waitForFunction(() => document.querySelector("#load-more")?.textContent !== "loading…", null, { timeout: 10_000 });
      if ((await button.textContent()) === "that is everything") break;
      await button.click();
    }
    await page.waitForFunction(() => document.querySelector("#load-more")?.textContent === "that is everything", null, { timeout: 15_000 });
    await page.waitForFunction(
      (n) => [...document.querySelectorAll("#history li span")].filter((s) => s.textContent?.startsWith("new ")).length === n,
      arrived,
      { timeout: 10_000 },
    );
    const shown = await texts(page, "history");
    expect(new Set(shown).size, "no duplicate").toBe(shown.length);
    const expected = [
      ...Array.from({ length: arrived }, (_, i) => `new ${arrived - 1 - i}`),
      ...Array.from({ length: 50 }, (_, i) => `old ${String(49 - i).padStart(2, "0")}`),
    ];
    expect(shown, "every message once, newest first, no gap").toEqual(expected);
    await page.close();
  });

  it("an image attached in one page shows in the other, served with the bytes that went up", async () => {
    const [ann, bob] = await Promise.all([open("pictures"), open("pictures")]);
    // A real PNG to attach: a piece of the page itself.
    const png = await ann.screenshot({ clip: { x: 0, y: 0, width: 40, height: 30 } });
    await ann.setInputFiles("#attach", { name: "shot.png", mimeType: "image/png", buffer: png });
    await bob.waitForFunction(
      () => {
        const img = document.querySelector("#messages img.attachment");
        return img instanceof HTMLImageElement && img.complete && img.naturalWidth === 40;
      },
      null,
      { timeout: 15_000 },
    );
    const served = await fetch((await bob.locator("#messages img.attachment").getAttribute("src"))!);
    expect(served.headers.get("Content-Type")).toBe("image/png");
    expect(Buffer.from(await served.arrayBuffer()).equals(png)).toBe(true);
    await Promise.all([ann.close(), bob.close()]);
  });

  it("search results update live", async () => {
    await http.mutation(api.messages.send, { chatId: "search", author: "seed", body: "the quick brown fox" });
    const page = await open("search");
    await page.fill("#search", "zebra");
    await page.waitForFunction(() => document.querySelector("#results") !== null && document.querySelectorAll("#results li").length === 0, null, {
      timeout: 10_000,
    });
    await http.mutation(api.messages.send, { chatId: "search", author: "seed", body: "a zebra crossing" });
    await page.waitForFunction(() => document.querySelector("#results li span")?.textContent === "a zebra crossing", null, { timeout: 10_000 });
    await page.fill("#search", "fox");
    await page.waitForFunction(() => document.querySelector("#results li span")?.textContent === "the quick brown fox", null, { timeout: 10_000 });
    await page.close();
  });
});
