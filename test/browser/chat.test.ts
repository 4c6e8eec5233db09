/**
 * The React chat page (`convex/react`: useQuery, usePaginatedQuery,
 * useMutation) in headless Chromium against `wrangler dev`: two pages see each
 * other's messages live, signing up and in with Convex Auth
 * (ConvexAuthProvider, email and password), "load more" pages back through 50 messages with no
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

  it("signs up and in with Convex Auth: messages carry the user, a reload stays signed in, signing out goes back to anonymous, a wrong password is refused", async () => {
    // Two browser contexts (playwright gives each new page its own): the writer's tokens never reach the watcher.
    const [dana, watcher] = await Promise.all([open("signed"), open("signed")]);
    const signedInAs = (page: Page, name: string) =>
      page.waitForFunction((n) => document.querySelector("#signed-in b")?.textContent === n, name, { timeout: 15_000 });
    const fill = async (page: Page, email: string, password: string) => {
      await page.fill("#email", email);
      await page.fill("#password", password);
    };
    await fill(dana, "dana@example.com", "correct horse 1");
    await dana.click("#sign-up");
    await signedInAs(dana, "dana@example.com");
    expect(await dana.locator("#signed-in").textContent()).toMatch(/^signed in as dana@example\.com/);
    expect(await dana.locator("#author").count()).toBe(0);

    await dana.fill("#body", "signed message");
    await dana.press("#body", "Enter");
    await watcher.waitForFunction(() => document.querySelector("#messages li span")?.textContent === "signed message", null, { timeout: 10_000 });
    expect(await watcher.locator("#messages li b").first().textContent()).toBe("dana@example.com");
    expect(await watcher.locator("#sign-in").count(), "the watcher is not signed in").toBe(1);

    // The library keeps its tokens in localStorage: a reload signs in again with no form.
    await dana.reload();
    await signedInAs(dana, "dana@example.com");

    await dana.click("#sign-out");
    await dana.waitForSelector("#sign-in", { timeout: 10_000 });
    await dana.fill("#author", "anon");
    await dana.fill("#body", "anonymous again");
    await dana.press("#body", "Enter");
    await watcher.waitForFunction(() => document.querySelector("#messages li span")?.textContent === "anonymous again", null, { timeout: 10_000 });
    expect(await watcher.locator("#messages li b").first().textContent()).toBe("anon");

    await fill(dana, "dana@example.com", "not danas password");
    await dana.click("#sign-in-button");
    await dana.waitForSelector("#sign-in-error", { timeout: 15_000 });
    expect(await dana.locator("#sign-in-error").textContent()).toBe("Wrong email or password.");
    expect(await dana.locator("#signed-in").count()).toBe(0);

    await fill(dana, "dana@example.com", "correct horse 1");
    await dana.click("#sign-in-button");
    await signedInAs(dana, "dana@example.com");
    await Promise.all([dana.close(), watcher.close()]);
    // Before its first request the deployment does not know CONVEX_SITE_URL, which auth.config.ts names: no fault to report.
    expect(server.output()).not.toMatch(/auth\.config\.ts is not usable/);
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

describe.skipIf(!CHROMIUM)("the chat page under plain `npx wrangler dev` (no .dev.vars, so no Convex Auth keys)", () => {
  let server: DevServer;
  let browser: Browser;
  beforeAll(async () => {
    [server, browser] = await Promise.all([startDevServer({ plain: true }), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("says why signing up failed, and the page keeps working anonymously", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${server.url}/?chat=keyless`);
    await page.waitForFunction(() => document.querySelector("#status")?.textContent === "live", null, { timeout: 15_000 });
    await page.fill("#email", "erin@example.com");
    await page.fill("#password", "correct horse 1");
    await page.click("#sign-up");
    await page.waitForSelector("#sign-in-error", { timeout: 15_000 });
    expect(await page.locator("#sign-in-error").textContent()).toMatch(/^Sign-in is not set up on this server: Convex Auth's keys \(JWT_PRIVATE_KEY, JWKS\)/);
    await page.fill("#author", "erin");
    await page.fill("#body", "still here");
    await page.press("#body", "Enter");
    await page.waitForFunction(() => document.querySelector("#messages li span")?.textContent === "still here", null, { timeout: 10_000 });
    expect(await page.locator("#messages li b").first().textContent()).toBe("erin");
    expect(errors).toEqual([]);
    await page.close();
  });
});
