import { describe, it } from "vitest";
import { componentCases } from "../../test/contract/component-cases.ts";
import { MemoryStore } from "./memory-store.ts";

describe("Components on MemoryStore", () => {
  for (const [name, run] of Object.entries(componentCases)) it(name, () => run(new MemoryStore()));
});
