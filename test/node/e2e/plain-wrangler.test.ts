/**
 * What a Workers developer types first, in a fresh clone: `npx wrangler dev`, with no
 * `npm run codegen`, no `npm run build:web` and no `.dev.vars` before it. wrangler.toml's
 * [build] must make the app's registry and the chat page's bundle, and the served app must work.
 */
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevServer, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";

let server: DevServer;
beforeAll(async () => {
  server = await startDevServer({ plain: true });
});
afterAll(async () => {
  await server?.stop();
});

describe("npx wrangler dev from a fresh clone", () => {
  it("builds first, then serves the chat page, its bundle, the status and the app's functions", async () => {
    expect(server.output()).toMatch(/codegen: \d+ module\(s\) in convex/);
    const page = await fetch(`${server.url}/`);
    expect(page.status).toBe(200);
    const script = /src="(\/build\/[^"]+\.js)"/.exec(await page.text())?.[1];
    expect(script).toBe("/build/chat.js");
    expect((await fetch(`${server.url}${script}`)).status).toBe(200);
    expect(await (await fetch(`${server.url}/api/status`)).json()).toMatchObject({ deployment: "default" });

    const client = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
    await client.mutation(anyApi.messages!.send!, { chatId: "plain", author: "dev", body: "first try" });
    expect(await client.query(anyApi.messages!.list!, { chatId: "plain" })).toMatchObject([{ author: "dev", body: "first try" }]);
  });
});
