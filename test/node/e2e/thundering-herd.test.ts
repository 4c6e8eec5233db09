import { describe, expect, it } from "vitest";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import WebSocket from "ws";
import { anyApi } from "convex/server";
import { devServerForFile } from "./dev-server.ts";
import { adminStatus, createDeployment, setKnobs } from "../../../scripts/lib/admin.ts";

const server = devServerForFile();

// Node's built-in WebSocket (undici) fires no close event when an upgrade is refused (it stays
// CONNECTING), so the official client would only retry after its 60 s inactivity timeout.
// Browsers, and the `ws` package used here, fire close 1006 and the client backs off as designed.
describe("official clients against session admission (wrangler dev)", () => {
  it("40 ConvexClients arriving at once against 10 sessions/s all get in and get their results", async () => {
    const url = await createDeployment(server.url, "herd");
    // Refusals, not the waiting room (test/node/e2e/waiting-room.test.ts): how the official client handles a 429.
    await setKnobs(url, { sessionAdmitRate: 10, sessionAdmitBurst: 10, maxWaitingSessions: 0 });
    await new ConvexHttpClient(url, { skipConvexDeploymentUrlCheck: true }).mutation(anyApi.messages!.send!, { chatId: "herd", author: "a", body: "welcome" });

    const started = Date.now();
    const clients = Array.from(
      { length: 40 },
      () =>
        new ConvexClient(url, { skipConvexDeploymentUrlCheck: true, logger: false, webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket }),
    );
    const results: (string | undefined)[] = new Array(40).fill(undefined);
    clients.forEach((client, i) =>
      client.onUpdate(anyApi.messages!.list!, { chatId: "herd" }, (messages: { body: string }[]) => (results[i] = messages[0]?.body)),
    );
    try {
      const deadline = Date.now() + 45_000;
      while (results.some((r) => r !== "welcome")) {
        if (Date.now() > deadline) throw new Error(`only ${results.filter((r) => r === "welcome").length} of 40 clients got in`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const elapsed = Date.now() - started;
      const status = await adminStatus<{ sessions: number; limits: { admissions: { admitted: number; refused: number } } }>(url);
      expect(status.sessions).toBe(40);
      expect(status.limits.admissions.admitted).toBe(40);
      expect(status.limits.admissions.refused).toBeGreaterThan(0);
      // 10 at once, then 30 at 10/s: at least about 3 s however eagerly the clients retry.
      expect(elapsed).toBeGreaterThan(2_500);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });
});
