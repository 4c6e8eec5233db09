/**
 * Findings of the static security review of 2026-12-03 (issue "Reliability
 * round 3", numbered as there), each checked where it was found; each test
 * fails on the code before its fix. Finding 6 (claims overwriting the
 * identity) is in src/engine/auth/auth.test.ts.
 */
import { describe, expect, it } from "vitest";
import { fresh, setKnobs, worker } from "./helpers.ts";

describe("the review's findings", () => {
  it("3. an HTTP action's body is limited (declared or streamed), and read before the action takes a slot", async () => {
    const deployment = fresh("http-body");
    await setKnobs(deployment, { maxHttpActionBodyBytes: 65_536, maxConcurrentActions: 1 });
    const post = (body: BodyInit, headers: Record<string, string> = {}) =>
      worker.fetch(`http://t/d/${deployment}/http/messages`, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body, duplex: "half" } as RequestInit);
    const message = (n: number) => JSON.stringify({ chatId: "hook", author: "ann", body: "x".repeat(n) });
    const declared = await post(message(100_000));
    expect(declared.status).toBe(413);
    expect(await declared.json()).toMatchObject({ code: "RequestTooLarge", message: expect.stringMatching(/larger than 65536 bytes \(knob maxHttpActionBodyBytes\)/) });
    // No Content-Length: counted as it streams.
    const chunks = [message(100_000)];
    const streamed = await post(new ReadableStream({ pull: (controller) => (chunks.length ? controller.enqueue(new TextEncoder().encode(chunks.shift())) : controller.close()) }));
    expect(streamed.status).toBe(413);
    // A slow upload holds no slot: with one slot, another action runs while its body is still arriving.
    let finish!: () => void;
    const slowBody = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"chatId": "hook", "author": "slow", '));
        finish = () => {
          controller.enqueue(new TextEncoder().encode('"body": "at last"}'));
          controller.close();
        };
      },
    });
    const slow = post(slowBody);
    await new Promise((resolve) => setTimeout(resolve, 50)); // let the slow request reach the object
    const quick = await post(message(10));
    expect(quick.status).toBe(201);
    finish();
    expect((await slow).status).toBe(201);
  });

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
