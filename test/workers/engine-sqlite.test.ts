import { describe, it } from "vitest";
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { engineCases } from "../contract/engine-cases.ts";
import { SqliteStore } from "../../src/deployment/sqlite-store.ts";
import type { Env } from "../../src/env.ts";

// The same engine cases as in Node, on real Durable Object SQLite (one fresh object per case).
describe("Engine on SqliteStore (workerd)", () => {
  for (const [name, run] of Object.entries(engineCases)) {
    it(name, async () => {
      const stub = (env as Env).DEPLOYMENTS.getByName(`test-engine-case-${crypto.randomUUID()}`);
      await runInDurableObject(stub, (_instance, state) => run(new SqliteStore(state.storage)));
    });
  }
});
