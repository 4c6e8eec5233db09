/**
 * Issue 28, item 1: a module that throws while it loads costs only its own
 * functions. The example app with a broken module beside it, under
 * `wrangler dev`: the app's functions and the admin API answer, a call into
 * the broken module names it and why, and the runtime's log says so.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { startDevServer, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";
import { adminStatus } from "../../../scripts/lib/admin.ts";

const APP = fileURLToPath(new URL("../../../convex", import.meta.url));
const BROKEN = fileURLToPath(new URL("../../fixtures/bad-module/broken.ts", import.meta.url));

describe("a module that throws at load", () => {
  let server: DevServer;
  beforeAll(async () => {
    server = await startDevServer({ app: APP, modules: [BROKEN] });
  });
  afterAll(() => server?.stop());

  it("leaves every other function, the status and the admin API answering; calls into it name the module and the error", async () => {
    const http = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
    await http.mutation(anyApi.messages!.send!, { chatId: "up", author: "ann", body: "still here" });
    expect(await http.query(anyApi.messages!.list!, { chatId: "up" })).toMatchObject([{ body: "still here" }]);
    await expect(http.query(anyApi.broken!.answer!, {})).rejects.toThrow(
      /broken:answer cannot run: its module convex\/broken failed to load \(Error: OPENAI_API_KEY is not set\)/,
    );
    const started = Date.now();
    expect(await adminStatus<Record<string, unknown>>(server.url)).toMatchObject({
      documents: 1,
      moduleErrors: { broken: "Error: OPENAI_API_KEY is not set" },
    });
    expect(Date.now() - started).toBeLessThan(1_000);
    // The runtime's log reaches us through wrangler's pipe a little after the requests.
    for (let i = 0; i < 50 && !/convex\/broken failed to load/.test(server.output()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.output()).toMatch(/convex\/broken failed to load, so its functions cannot run: Error: OPENAI_API_KEY is not set/);
  });
});
