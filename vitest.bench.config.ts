/**
 * Benchmarks that must run inside workerd (the local runtime), e.g. fan-out to
 * 10,000 sockets, which would exhaust file descriptors through `wrangler dev`'s
 * proxy on loopback. Run by `npm run bench`, never by `npm test`.
 */
import { defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-plugin";

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          ADMIN_KEY: "bench-admin-key",
          DECLARED_DEPLOYMENTS: "*",
          BENCH_FANOUT_SHARDS: process.env.BENCH_FANOUT_SHARDS ?? "",
          BENCH_LOAD_BUDGETS: process.env.BENCH_LOAD_BUDGETS ?? "",
          // Set by `npm run bench -- profile` (scripts/bench/workerd-profile.ts): the benchmarks open profile windows.
          BENCH_PROFILE: process.env.BENCH_PROFILE ?? "",
        },
      },
    }),
  ],
  test: {
    name: "bench-workerd",
    include: ["scripts/bench/workerd/**/*.bench-run.ts"],
    testTimeout: 900_000,
    fileParallelism: false,
    reporters: ["default"],
  },
});
