import { describe, expect, it } from "vitest";
import { partsOf, partsTable, type CpuProfile } from "../../scripts/bench/profile-categories.ts";

/** A profile from call stacks (root first) and the µs each was sampled for. */
function profileOf(stacks: [frames: [name: string, url: string][], us: number][]): CpuProfile {
  const nodes: CpuProfile["nodes"] = [{ id: 1, callFrame: { functionName: "(root)", url: "" }, children: [] }];
  const samples: number[] = [];
  const timeDeltas: number[] = [0];
  for (const [frames, us] of stacks) {
    let parent = nodes[0]!;
    for (const [functionName, url] of frames) {
      let child = nodes.find((node) => parent.children!.includes(node.id) && node.callFrame.functionName === functionName && node.callFrame.url === url);
      if (!child) {
        child = { id: nodes.length + 1, callFrame: { functionName, url }, children: [] };
        nodes.push(child);
        parent.children!.push(child.id);
      }
      parent = child;
    }
    samples.push(parent.id);
    timeDeltas.push(us);
  }
  return { nodes, samples, timeDeltas };
}

describe("profile parts", () => {
  const profile = profileOf([
    [[["(idle)", ""]], 500],
    // A native SQLite call counts as SQLite whoever made it; a native call the table does not know counts for its caller.
    [
      [
        ["commit", "file:///repo/src/deployment/sqlite-store.ts"],
        ["exec", ""],
      ],
      120,
    ],
    [
      [
        ["scanIndex", "file:///repo/src/deployment/sqlite-store.ts"],
        ["getRandomValues", ""],
      ],
      30,
    ],
    [[["next", "file:///repo/node_modules/convex/dist/esm/server/impl/query_impl.js"]], 80],
    [[["monkeypatchedSetTimeout", "index.mjs"]], 40],
    [
      [
        ["run", "file:///repo/src/sync/refresh-turn.ts"],
        ["toString", ""],
      ],
      10,
    ],
  ]);

  it("sums each sample into the part its innermost known frame belongs to, and leaves idle out of busy", () => {
    const { parts, busyUs, totalUs } = partsOf(profile);
    expect(Object.fromEntries(parts)).toEqual({
      idle: 500,
      "SQLite (statements)": 120,
      "deployment object (store, sockets, status)": 30,
      "convex/server (the functions' runtime)": 80,
      "vitest pool harness (absent deployed)": 40,
      // A native function named like an Object.prototype member is not a known part: its caller's.
      "sync: sessions, Transitions, refresh": 10,
    });
    expect(busyUs).toBe(280);
    expect(totalUs).toBe(780);
  });

  it("prints µs per unit and the share of busy time, windows side by side", () => {
    const table = partsTable([{ label: "calmsync", unit: "commit", units: 10, profile }]);
    expect(table).toContain("| SQLite (statements) | 12 µs (43%) |");
    expect(table).toContain("| **busy, all parts** | **28 µs** |");
    expect(table).toContain("| idle (the thread waited) | 50 µs |");
  });
});
