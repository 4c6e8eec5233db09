import { describe, it } from "vitest";
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { componentCases } from "../contract/component-cases.ts";
import { SqliteStore } from "../../src/deployment/sqlite-store.ts";
import type { Env } from "../../src/env.ts";

// The component cases of src/engine/components.test.ts on real Durable Object SQLite (one fresh object per case).
describe("Components on SqliteStore (workerd)", () => {
  for (const [name, run] of Object.entries(componentCases)) {
    it(name, async () => {
      const stub = (env as Env).DEPLOYMENTS.getByName(`test-components-case-${crypto.randomUUID()}`);
      await runInDurableObject(stub, (_instance, state) => run(new SqliteStore(state.storage)));
    });
  }
});
