import { defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-plugin";

export default defineConfig({
  test: {
    projects: [
      {
        // Pure engine tests and end-to-end tests against `wrangler dev`, in plain Node.
        test: {
          name: "node",
          include: ["src/**/*.test.ts", "test/node/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        // Durable Object and storage tests inside the real workerd runtime.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            // Test deployments are declared by prefix, so each test's fresh name exists from first use.
            miniflare: { bindings: { ADMIN_KEY: "test-admin-key", DECLARED_DEPLOYMENTS: "default,test-*" } },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/workers/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
    ],
  },
});
