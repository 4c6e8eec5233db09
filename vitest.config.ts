import { defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { manifestHash } from "./src/knobs/tiers.ts";

/** What `npm run deploy` would stamp into the local (dev) configuration's vars. */
const devStamp = { CALMSYNC_ENV: "dev", CALMSYNC_TIER: "standard", CALMSYNC_MANIFEST_HASH: manifestHash() };
// Test deployments are declared by prefix, so each test's fresh name exists from first use (as many as the tests make).
// CALMSYNC_TEST_GREETING: a Worker var that functions read through process.env (a deployment's own variable wins).
const testBindings = { ADMIN_KEY: "test-admin-key", DECLARED_DEPLOYMENTS: "default,test-*", WILDCARD_DEPLOYMENT_LIMIT: "1000000", CALMSYNC_TEST_GREETING: "from wrangler vars" };

export default defineConfig({
  test: {
    projects: [
      {
        // Pure engine tests and end-to-end tests against `wrangler dev`, in plain Node.
        test: {
          name: "node",
          include: ["src/**/*.test.ts", "test/node/**/*.test.ts", "test/browser/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Compiled Convex components import "./_generated/server" without an extension, as bundlers allow: let Vite resolve them.
          server: { deps: { inline: [/@convex-dev\//] } },
        },
      },
      {
        // Durable Object and storage tests inside the real workerd runtime.
        plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" }, miniflare: { bindings: { ...testBindings, ...devStamp } } })],
        test: {
          name: "workers",
          include: ["test/workers/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      {
        // The same Worker deployed with a stamp that disagrees with its manifest (a hand-edited tier).
        plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" }, miniflare: { bindings: { ...testBindings, ...devStamp, CALMSYNC_TIER: "free" } } })],
        test: {
          name: "workers-mis-stamped",
          include: ["test/workers-mis-stamped/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
    ],
  },
});
