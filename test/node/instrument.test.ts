/**
 * Codegen's guarded copies (scripts/lib/guarded-copies.ts, instrument.ts) in plain Node: a small app
 * with loops of every kind is copied, imported and run. Its functions answer as before, imports
 * between its files still work, and a loop that never yields is stopped by the engine's guard.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { instrument, GUARD_NAME } from "../../scripts/lib/instrument.ts";
import { writeGuardedCopies } from "../../scripts/lib/guarded-copies.ts";
import { GuardedRun, syncGuard } from "../../src/engine/sync-guard.ts";

const LOOPS = `
import { double, LIMIT } from "./lib/math";
import { VERSION } from "./_generated/constants.js";
export { VERSION };
export function sums(n: number): number[] {
  let a = 0, b = 0, c = 0, d = 0, e = 0;
  for (let i = 0; i < n; i++) a += i;
  for (const x of [1, 2, 3]) b += x;
  for (const k in { p: 1, q: 2 }) c += k.length;
  let j = 0;
  while (j < n) j++, d++;
  do e++; while (e < n);
  return [a, b, c, d, e];
}
export const arrows = (xs: number[]) => xs.map((x) => double(x)).filter((x) => x < LIMIT);
export class Counter { total = 0; add(...xs: number[]) { for (const x of xs) this.total += x; return this; } }
export function strict() { "use strict"; return (function (this: unknown) { return this; })(); }
export function nested(n: number) { let count = 0; outer: for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { if (j > i) continue outer; count++; } return count; }
export function spin(): never { while (true) {} }
export const lazy = () => import("./lib/math");
`;

describe("guarded copies of an app's files", () => {
  let dir: string;
  let app: Record<string, any>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "calmsync-instrument-"));
    mkdirSync(join(dir, "lib"));
    mkdirSync(join(dir, "_generated"));
    writeFileSync(join(dir, "loops.ts"), LOOPS);
    writeFileSync(join(dir, "lib", "math.ts"), "export const LIMIT = 10;\nexport function double(x: number): number { return x * 2; }\n");
    writeFileSync(join(dir, "_generated", "constants.js"), "export const VERSION = 7;\n");
    writeGuardedCopies(dir, (path, text) => writeFileSync(path, text));
    app = await import(pathToFileURL(join(dir, "_generated", "guarded", "loops.js")).href);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("puts a guard at every loop body and function entry", () => {
    const code = readFileSync(join(dir, "_generated", "guarded", "loops.js"), "utf8");
    // Loops: 5 in sums, 1 in add, 2 in nested, 1 in spin. Functions: sums, arrows and its 2 callbacks, add, strict and
    // the function inside it, nested, spin, lazy.
    expect(code.split(`${GUARD_NAME}()`).length - 1).toBe(9 + 10);
    expect(code).toContain(`from "../guard.js"`);
    expect(code).toContain(`"use strict";${GUARD_NAME}();`);
    expect(code).toContain(`from "./lib/math.js"`);
    expect(code).toContain(`from "../constants.js"`);
    // No new lines: the copy keeps esbuild's lines, so its source map still holds.
    expect(code.split("\n")[0]).toMatch(/^import \{ tick as __calmsync_guard \} from "\.\.\/guard\.js";import/);
  });

  it("leaves what the code does unchanged, imports between the app's files included", async () => {
    expect(app.sums(4)).toEqual([6, 6, 2, 4, 4]);
    expect(app.arrows([1, 3, 5, 7])).toEqual([2, 6]);
    expect(new app.Counter().add(1, 2, 3).total).toBe(6);
    expect(app.strict()).toBeUndefined();
    expect(app.nested(4)).toBe(10);
    expect(app.VERSION).toBe(7);
    expect((await app.lazy()).double(21)).toBe(42);
  });

  it("lets the engine's guard stop a loop that never yields, naming the run", async () => {
    const run = new GuardedRun("loops:spin", { maxSyncRunMs: 50, maxSyncRunSteps: 1e12 });
    const started = Date.now();
    expect(() => syncGuard.run(run, () => app.spin())).toThrow(/^loops:spin ran for more than 50 ms without yielding and was stopped \(knob maxSyncRunMs\)$/);
    expect(Date.now() - started).toBeLessThan(1_000);
    // The same code outside any run is left alone.
    expect(app.sums(1_000)[0]).toBe(499_500);
  });

  it("writes only what changed, and deletes the copies of files that are gone", () => {
    const copy = join(dir, "_generated", "guarded", "lib", "math.js");
    const written: string[] = [];
    const writeIfChanged = (path: string, text: string) => {
      if (readFileSync(path, { encoding: "utf8", flag: "a+" }) !== text) (written.push(path), writeFileSync(path, text));
    };
    const before = statSync(copy).mtimeMs;
    writeGuardedCopies(dir, writeIfChanged);
    expect(written).toEqual([]);
    expect(statSync(copy).mtimeMs).toBe(before);
    rmSync(join(dir, "lib", "math.ts"));
    writeGuardedCopies(dir, writeIfChanged);
    expect(() => statSync(copy)).toThrow();
    expect(() => statSync(join(dir, "_generated", "guarded", "lib"))).toThrow();
  });

  it("compiles TypeScript and JSX away and keeps a function's directives first", () => {
    const out = instrument("export const f = <T,>(x: T): T => { 'use strict'; return x; };", "ts", { sourcefile: "f.ts", guardModule: "./guard.js" });
    expect(out).toContain(`"use strict";${GUARD_NAME}();`);
    expect(out).not.toContain(": T");
  });
});
