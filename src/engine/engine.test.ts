import { describe, it } from "vitest";
import { engineCases } from "../../test/contract/engine-cases.ts";
import { MemoryStore } from "./memory-store.ts";

describe("Engine on MemoryStore", () => {
  for (const [name, run] of Object.entries(engineCases)) it(name, () => run(new MemoryStore()));
});
