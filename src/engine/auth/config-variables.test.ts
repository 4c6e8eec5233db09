import { describe, expect, it } from "vitest";
import { loadAuthConfig, resolveConfigVariables } from "./config-variables.ts";

describe("auth.config.ts variables", () => {
  it("evaluates the module with placeholders for the system variables, and fills in each deployment's values", async () => {
    const config = await loadAuthConfig(async () => ({
      default: {
        providers: [
          { domain: process.env.CONVEX_SITE_URL, applicationID: "convex" },
          { domain: `${process.env.CONVEX_CLOUD_URL}/issuer` },
          // Any other name reads the Worker's (here Node's) variables, so a config may test whether it is set.
          ...(process.env.CALMSYNC_SURELY_UNSET_NAME ? [{ domain: "never" }] : []),
        ],
      },
    }));
    const values: Record<string, string> = { CONVEX_SITE_URL: "https://a.example/http", CONVEX_CLOUD_URL: "https://a.example" };
    expect(resolveConfigVariables(config, (name) => values[name])).toEqual({
      providers: [{ domain: "https://a.example/http", applicationID: "convex" }, { domain: "https://a.example/issuer" }],
    });
    // Not yet known: undefined where it was the whole value, so the provider is reported as missing it.
    expect(resolveConfigVariables(config, () => undefined)).toEqual({
      providers: [{ domain: undefined, applicationID: "convex" }, { domain: "undefined/issuer" }],
    });
  });

  it("leaves process.env as it was outside the evaluation", async () => {
    await loadAuthConfig(async () => ({ default: null }));
    expect(process.env.CONVEX_SITE_URL).toBeUndefined();
  });
});
