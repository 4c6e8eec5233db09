/**
 * Findings of the static security review of 2026-12-03 (issue "Reliability
 * round 3", numbered as there), each checked where it was found; each test
 * fails on the code before its fix. Finding 6 (claims overwriting the
 * identity) is in src/engine/auth/auth.test.ts.
 */
import { describe, expect, it } from "vitest";
import { fresh, worker } from "./helpers.ts";

describe("the review's findings", () => {
  it("7. a client cannot pass its socket upgrade off as an HTTP action from the Worker", async () => {
    const deployment = fresh("internal-header");
    const response = await worker.fetch(`http://t/d/${deployment}/api/1.49.0/sync`, { headers: { Upgrade: "websocket", "x-calmsync-http-action": "1" } });
    // Before the fix the object ran the app's HTTP router on it (a 404 "No HttpAction routed").
    expect(response.status).toBe(101);
    response.webSocket!.accept();
    response.webSocket!.close(1000, "done");
  });

  it("8. the dev issuer mints only for its own origin and JSON bodies: a page elsewhere cannot get a token", async () => {
    const deployment = fresh("dev-token-origin");
    const mint = (headers: Record<string, string>, body = JSON.stringify({ name: "victim" })) =>
      worker.fetch(`http://127.0.0.1:8787/d/${deployment}/api/auth/dev-token`, { method: "POST", headers, body });
    // A form post from another site (no preflight) and a JSON post from another site (preflight answered by CORS *).
    const form = await mint({ "Content-Type": "text/plain", Origin: "https://evil.example" });
    expect(form.status).toBe(403);
    const crossSite = await mint({ "Content-Type": "application/json", Origin: "https://evil.example" });
    expect(crossSite.status).toBe(403);
    expect(await crossSite.json()).toMatchObject({ code: "DevIssuerRefused", message: expect.stringMatching(/only pages of its own origin \(http:\/\/127\.0\.0\.1:8787\)/) });
    // Not JSON, even without an Origin: 415.
    expect((await mint({ "Content-Type": "text/plain" })).status).toBe(415);
    // The chat page itself (same origin) and tools without an Origin still sign in.
    expect((await mint({ "Content-Type": "application/json", Origin: "http://127.0.0.1:8787" })).status).toBe(200);
    expect((await mint({ "Content-Type": "application/json" })).status).toBe(200);
  });
});
