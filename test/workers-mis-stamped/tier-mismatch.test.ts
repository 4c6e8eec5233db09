import { describe, expect, it } from "vitest";
import { exports } from "cloudflare:workers";

const worker = (exports as unknown as { default: Fetcher }).default;

// This project's Worker is stamped CALMSYNC_TIER "free" while the manifest says the dev
// environment is "standard" (vitest.config.ts): the postmortem's wrong hardware class.
describe("a deployment whose stamp disagrees with its manifest", () => {
  it("reports the mismatch in its admin status, and still runs with the manifest's tier", async () => {
    const response = await worker.fetch("http://t/api/admin/status", { headers: { Authorization: "Bearer test-admin-key" } });
    expect(response.status).toBe(200);
    const { tier } = (await response.json()) as { tier: { name: string; expected: { tier: string }; stamped: { tier: string }; mismatch: string[] } };
    expect(tier).toMatchObject({ name: "standard", expected: { tier: "standard" }, stamped: { tier: "free" } });
    expect(tier.mismatch).toEqual([expect.stringMatching(/environment tier: stamped "free", manifest says "standard" for dev/)]);
  });
});
