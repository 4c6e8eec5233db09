import { describe, expect, it } from "vitest";
import { expectedTier, manifestHash, MANIFEST, TIERS, tierReport } from "./tiers.ts";
import { DEFAULT_KNOBS, isKnobName, KNOB_INVARIANTS, KNOBS } from "./knob-table.ts";

const stamp = (overrides = {}) => ({ CALMSYNC_ENV: "production", CALMSYNC_TIER: "standard", CALMSYNC_MANIFEST_HASH: manifestHash(), ...overrides });

describe("tiers and the manifest", () => {
  it("every tier's knob defaults are knobs, within their ranges, and keep the rules between knobs", () => {
    for (const [name, tier] of Object.entries(TIERS)) {
      for (const [knob, value] of Object.entries(tier.knobs)) {
        expect(isKnobName(knob), `${name}.${knob}`).toBe(true);
        const definition = KNOBS[knob as keyof typeof KNOBS];
        expect(value, `${name}.${knob}`).toBeGreaterThanOrEqual(definition.min);
        expect(value, `${name}.${knob}`).toBeLessThanOrEqual(definition.max);
      }
      const values = { ...DEFAULT_KNOBS, ...tier.knobs };
      for (const invariant of KNOB_INVARIANTS) expect(invariant.holds(values), `${name}: ${invariant.rule}`).toBe(true);
    }
  });

  it("a deployment gets its own tier, else its environment's", () => {
    expect(expectedTier("production", "big-customer")).toBe("dedicated");
    expect(expectedTier("production", "someone-else")).toBe(MANIFEST.environments.production.tier);
    expect(expectedTier("dev", "demo-free")).toBe("free");
  });

  it("the manifest hash is stable and changes with the manifest", () => {
    expect(manifestHash()).toMatch(/^[0-9a-f]{16}$/);
    expect(manifestHash()).toBe(manifestHash(TIERS, MANIFEST));
    // Moving one deployment to another tier is a different manifest, so its stamp no longer matches.
    const moved = { environments: { ...MANIFEST.environments, production: { ...MANIFEST.environments.production, deployments: { default: "free" } } } };
    expect(manifestHash(TIERS, moved)).not.toBe(manifestHash());
  });

  it("reports no mismatch for a correct stamp, and names each kind of mismatch", () => {
    expect(tierReport(stamp(), "big-customer")).toMatchObject({ name: "dedicated", mismatch: [] });
    expect(tierReport({}, "x").mismatch).toEqual([expect.stringMatching(/not stamped/)]);
    expect(tierReport(stamp({ CALMSYNC_TIER: "free" }), "x").mismatch).toEqual([
      expect.stringMatching(/environment tier: stamped "free", manifest says "standard" for production/),
    ]);
    expect(tierReport(stamp({ CALMSYNC_MANIFEST_HASH: "0000000000000000" }), "x").mismatch).toEqual([
      expect.stringMatching(/manifest hash: stamped 0000000000000000/),
    ]);
    expect(tierReport(stamp({ CALMSYNC_TIER_OVERRIDE: "emergency fix, INC-42" }), "x").mismatch).toEqual([
      expect.stringMatching(/past a failed tier check: emergency fix, INC-42/),
    ]);
    expect(tierReport(stamp({ CALMSYNC_ENV: "moon" }), "x").mismatch[0]).toMatch(/CALMSYNC_ENV "moon" is not an environment/);
  });
});
