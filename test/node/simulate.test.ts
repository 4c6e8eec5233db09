/** The simulation runs (a 10,000-client wave, about a second) and tells the strategies apart as it should. */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";

describe("npm run simulate (smoke)", () => {
  it("a 10,000-client wave: the waiting room needs one attempt per client, refusals more, the current client fewer than the old one", () => {
    const run = spawnSync(process.execPath, ["scripts/simulate.ts", "--clients", "10000"], {
      cwd: resolve(import.meta.dirname, "../.."),
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(run.status, run.stderr).toBe(0);
    const rows = new Map(
      run.stdout
        .split("\n")
        .filter((line) => /^\| (accept-then-drop|refuse-429|waiting-room) /.test(line))
        .map((line) => {
          const cells = line.split("|").map((c) => c.trim());
          return [`${cells[1]} / ${cells[2]}`, { perClient: Number(cells[5]), synced: cells[3]! }] as const;
        }),
    );
    expect(rows.size).toBe(9);
    for (const kind of ["reset-on-open (postmortem)", "convex@1.24.6", "convex (current)"]) {
      expect(rows.get(`waiting-room / ${kind}`)!.perClient).toBe(1);
      expect(rows.get(`refuse-429 / ${kind}`)!.perClient).toBeGreaterThan(1);
      expect(rows.get(`waiting-room / ${kind}`)!.synced).toMatch(/ s$/);
    }
    expect(rows.get("refuse-429 / convex (current)")!.perClient).toBeLessThan(rows.get("refuse-429 / convex@1.24.6")!.perClient);
  });
});
