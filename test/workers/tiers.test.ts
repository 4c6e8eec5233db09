import { describe, expect, it } from "vitest";
import { admin, fresh, setKnobs, status, worker } from "./helpers.ts";

async function knob(deployment: string, name: string) {
  const response = await worker.fetch(`http://t/d/${deployment}/api/admin/knobs`, { headers: admin });
  const { knobs } = (await response.json()) as { knobs: { name: string; value: number; default: number; tierDefault?: number; source: string }[] };
  return knobs.find((k) => k.name === name);
}

describe("each deployment runs on its tier", () => {
  it("a deployment of the standard tier, correctly stamped, reports its tier and no mismatch", async () => {
    const deployment = fresh("tier-standard");
    expect((await status(deployment)).tier).toMatchObject({
      name: "standard",
      expected: { environment: "dev", tier: "standard" },
      stamped: { tier: "standard" },
      mismatch: [],
    });
    expect(await knob(deployment, "maxSessions")).toMatchObject({ value: 30_000, source: "default" });
  });

  it("a deployment the manifest puts on the free tier gets its knob defaults; an override beats them", async () => {
    const created = await worker.fetch("http://t/d/demo-free/api/admin/deployment", { method: "POST", headers: admin });
    expect(created.status).toBeLessThan(300);
    expect((await status("demo-free")).tier).toMatchObject({ name: "free", mismatch: [] });
    expect(await knob("demo-free", "maxSessions")).toMatchObject({ value: 1_000, default: 30_000, tierDefault: 1_000, source: "tier" });
    expect((await status("demo-free")).limits.sessions.limit).toBe(1_000);
    await setKnobs("demo-free", { maxSessions: 500 });
    expect(await knob("demo-free", "maxSessions")).toMatchObject({ value: 500, tierDefault: 1_000, source: "override" });
    expect(await knob("demo-free", "maxDocumentBytes")).toMatchObject({ source: "default" });
  });

  it("names sizing knobs overridden below the tier (the wrong-hardware mistake made at runtime)", async () => {
    const deployment = fresh("tier-below");
    expect((await status(deployment)).tier.belowTier).toEqual([]);
    await setKnobs(deployment, { maxSessions: 1_000, sessionAdmitRate: 50, maxDocumentBytes: 10_000 });
    // maxDocumentBytes is no tier's sizing knob: lowering it is not "below tier".
    expect((await status(deployment)).tier.belowTier).toEqual(["maxSessions 1000 (tier: 30000)", "sessionAdmitRate 50 (tier: 500)"]);
    await setKnobs(deployment, { maxSessions: 30_000, sessionAdmitRate: 500 });
    expect((await status(deployment)).tier.belowTier).toEqual([]);
  });
});
