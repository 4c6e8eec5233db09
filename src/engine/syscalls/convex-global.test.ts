import { describe, expect, it } from "vitest";
import { mutationGeneric, queryGeneric } from "convex/server";
import { v } from "convex/values";
import { Engine, MemoryStore, registerModules, Schema } from "../index.ts";

const functions = registerModules({
  notes: {
    add: mutationGeneric({ args: { text: v.string() }, handler: (ctx, { text }) => ctx.db.insert("notes", { text }) }),
    /** Reads one row per await, so two deployments' runs interleave between its syscalls. */
    all: queryGeneric({
      args: {},
      handler: async (ctx) => {
        const texts: string[] = [];
        for await (const note of ctx.db.query("notes")) texts.push(note.text as string);
        return texts;
      },
    }),
  },
});

describe("the Convex global", () => {
  it("routes each run's syscalls to its own deployment while several interleave in one isolate", async () => {
    const deployments = ["a", "b", "c"].map((name) => ({ name, engine: new Engine({ schema: new Schema(null), functions, store: new MemoryStore() }) }));
    // Writes and reads of all three at once: every await is a chance for another deployment's run.
    await Promise.all(
      deployments.flatMap(({ name, engine }) => Array.from({ length: 20 }, (_, i) => engine.runMutation("notes:add", { text: `${name}${i}` }))),
    );
    const results = await Promise.all(deployments.flatMap(({ engine }) => Array.from({ length: 10 }, () => engine.runQuery("notes:all", {}))));
    for (const [i, result] of results.entries()) {
      const name = deployments[Math.floor(i / 10)]!.name;
      expect(result.value).toEqual(Array.from({ length: 20 }, (_, n) => `${name}${n}`));
    }
  });

  it("refuses database calls made outside a running function", async () => {
    const engine = new Engine({ schema: new Schema(null), functions, store: new MemoryStore() });
    await engine.runQuery("notes:all", {});
    const escaped = (globalThis as unknown as { Convex: { syscall(op: string, args: string): string } }).Convex;
    expect(() => escaped.syscall("1.0/queryStream", "{}")).toThrow(/outside of a running function/);
  });
});
