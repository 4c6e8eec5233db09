import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { appProject } from "../../scripts/lib/wrangler-dev.ts";

const root = resolve(import.meta.dirname, "../..");
/** The example app with a module beside it that throws while it loads (test/fixtures/bad-module). */
const broken = appProject(join(root, "convex"), { generated: false, modules: [join(root, "test/fixtures/bad-module/broken.ts")] });
afterAll(() => rmSync(broken, { recursive: true, force: true }));

function run(cwd: string, ...args: string[]) {
  const result = spawnSync(process.execPath, args, { cwd, encoding: "utf8", env: { ...process.env, WRANGLER_SEND_METRICS: "false" } });
  return { status: result.status, output: `${result.stdout}\n${result.stderr}` };
}

describe("a module that throws while it loads is reported before anything serves it", () => {
  it("npm run check:modules names the module and its error, and passes the example app", () => {
    const bad = run(broken, "scripts/check-modules.ts");
    expect(bad.status).toBe(1);
    expect(bad.output).toContain("convex/broken fails to load: Error: OPENAI_API_KEY is not set");
    expect(bad.output).not.toMatch(/convex\/messages fails/);
    expect(run(root, "scripts/check-modules.ts")).toMatchObject({ status: 0 });
  });

  it("npm run dev warns and still starts (its predev step exits 0)", () => {
    const dev = run(broken, "scripts/check-modules.ts", "--warn");
    expect(dev.status).toBe(0);
    expect(dev.output).toMatch(/WARNING: 1 module\(s\) fail to load/);
  });

  it("npm run deploy refuses, naming the module, before wrangler runs", () => {
    const deploy = run(broken, "scripts/deploy.ts", "production", "--dry-run");
    expect(deploy.status).toBe(1);
    expect(deploy.output).toContain("Refusing to deploy production: 1 module(s)");
    expect(deploy.output).toContain("convex/broken fails to load");
    expect(deploy.output).not.toMatch(/--dry-run: exiting now/);
  });
});
