import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const SCRIPT = join(import.meta.dirname, "../../scripts/check-imports.ts");
let root: string | null = null;

/** Runs the import check on a tree of `files` (paths under src/); its exit code and what it printed. */
function check(files: Record<string, string>): { code: number; output: string } {
  root = mkdtempSync(join(tmpdir(), "check-imports-"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, "src", path)), { recursive: true });
    writeFileSync(join(root, "src", path), text);
  }
  try {
    return { code: 0, output: execFileSync(process.execPath, [SCRIPT, "--src", join(root, "src")], { encoding: "utf8", stdio: "pipe" }) };
  } catch (error) {
    const failed = error as { status: number; stderr: string };
    return { code: failed.status, output: failed.stderr };
  }
}

afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = null;
});

describe("npm run check:imports", () => {
  it("passes a layered tree", () => {
    const result = check({
      "engine/a.ts": 'import { b } from "./b.ts";\nexport const a = b;\n',
      "engine/b.ts": "export const b = 1;\n",
      "deployment/object.ts":
        'import { DurableObject } from "cloudflare:workers";\nimport { a } from "../engine/a.ts";\nexport class O extends DurableObject { x = a; }\n',
    });
    expect(result).toMatchObject({ code: 0 });
  });

  it("fails on a cycle, even through a type-only import, naming its edges", () => {
    const result = check({
      "sync/a.ts": 'import type { B } from "./b.ts";\nexport type A = { b: B };\n',
      "sync/b.ts": 'import type { A } from "./a.ts";\nexport type B = { a?: A };\n',
    });
    expect(result.code).toBe(1);
    expect(result.output).toContain("import cycle among 2 files");
    expect(result.output).toContain("src/sync/a.ts -> src/sync/b.ts");
  });

  it("fails when an agnostic room imports the Cloudflare shell", () => {
    const result = check({
      "engine/a.ts": 'import type { Env } from "../env.ts";\nexport type A = Env;\n',
      "env.ts": "export interface Env { DEPLOYMENTS: DurableObjectNamespace }\n",
    });
    expect(result.code).toBe(1);
    expect(result.output).toContain("src/engine/a.ts imports src/env.ts");
  });

  it("fails on a deployment/ file that uses nothing of Cloudflare", () => {
    const result = check({ "deployment/ring.ts": "export class Ring { items: number[] = []; }\n" });
    expect(result.code).toBe(1);
    expect(result.output).toContain("src/deployment/ring.ts uses nothing of Cloudflare");
  });
});
