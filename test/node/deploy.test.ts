import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { appProject } from "../../scripts/lib/wrangler-dev.ts";

const root = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "calmsync-tiers-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** wrangler.toml with `edit` applied, written where main and assets still resolve (absolute paths). */
function config(name: string, edit: (toml: string) => string = (t) => t): string {
  const toml = readFileSync(join(root, "wrangler.toml"), "utf8")
    .replace('main = "src/worker.ts"', `main = "${join(root, "src/worker.ts")}"`)
    .replace('directory = "./public"', `directory = "${join(root, "public")}"`)
    .replace("[build]\n", `[build]\ncwd = "${root}"\n`);
  const path = join(dir, `${name}.toml`);
  writeFileSync(path, edit(toml));
  return path;
}

function run(script: string, ...args: string[]) {
  const result = spawnSync(process.execPath, [join(root, "scripts", script), ...args], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  return { status: result.status, output: `${result.stdout}\n${result.stderr}` };
}

describe("plain wrangler from a fresh checkout", () => {
  it("`wrangler deploy --dry-run` builds the app's registry and the chat page first (wrangler.toml's [build])", () => {
    const project = appProject(join(root, "convex"), { generated: false });
    try {
      expect(existsSync(join(project, "convex/_generated/modules.js"))).toBe(false);
      expect(existsSync(join(project, "public/build/chat.js"))).toBe(false);
      const result = spawnSync(
        process.execPath,
        [join(root, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", join(project, "out")],
        {
          cwd: project,
          encoding: "utf8",
          env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
        },
      );
      expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0);
      expect(result.stdout).toMatch(/codegen: \d+ module\(s\) in convex/);
      expect(readFileSync(join(project, "convex/_generated/modules.js"), "utf8")).toMatch(/"attachments": \(\) => import\("\.\/guarded\/attachments\.js"\)/);
      expect(existsSync(join(project, "public/build/chat.js"))).toBe(true);
      expect(readFileSync(join(project, "out/worker.js"), "utf8")).toMatch(/generateUploadUrl/);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });
});

describe("tiers enforced at deploy time", () => {
  it("a correct configuration passes check:tiers, and deploy --dry-run runs wrangler's own dry run with the stamp", () => {
    const path = config("ok");
    const check = run("check-tiers.ts", "--config", path);
    expect(check.status, check.output).toBe(0);
    expect(check.output).toMatch(/dev, staging, production match their tiers/);
    const deploy = run("deploy.ts", "production", "--dry-run", "--config", path);
    expect(deploy.status, deploy.output).toBe(0);
    expect(deploy.output).toMatch(/Tier check: production matches its tier/);
    expect(deploy.output).toMatch(/--var CALMSYNC_TIER:standard --var CALMSYNC_MANIFEST_HASH:[0-9a-f]{16}/);
    expect(deploy.output).toMatch(/env\.DEPLOYMENTS \(Deployment\)\s+Durable Object/);
    expect(deploy.output).toMatch(/env\.FILES \(calmsync-files\)\s+R2 Bucket/);
    expect(deploy.output).toMatch(/--dry-run: exiting now/);
  });

  const edits: [string, (toml: string) => string, RegExp][] = [
    [
      "cpu_ms edited by hand",
      (t) => t.replace("[env.production]\nlimits = { cpu_ms = 300000 }", "[env.production]\nlimits = { cpu_ms = 30000 }"),
      /production: limits\.cpu_ms: expected 300000, found 30000/,
    ],
    [
      "the Durable Object binding dropped (wrangler only warns)",
      (t) => t.replace(/\[env\.staging\]([\s\S]*?)durable_objects\.bindings = .*\n/, "[env.staging]$1"),
      /staging: durable_objects\.bindings: expected \[\{"name":"DEPLOYMENTS","class_name":"Deployment"\},\{"name":"SYNC_SHARDS","class_name":"SyncShard"\},\{"name":"DIRECTORY","class_name":"DeploymentDirectory"\}\], found \[\]/,
    ],
    [
      "production's files in the staging bucket",
      (t) =>
        t.replace(
          'r2_buckets = [{ binding = "FILES", bucket_name = "calmsync-files" }]',
          'r2_buckets = [{ binding = "FILES", bucket_name = "calmsync-files-staging" }]',
        ),
      /production: r2_buckets: expected \[\{"binding":"FILES","bucket_name":"calmsync-files"\}\], found \[\{"binding":"FILES","bucket_name":"calmsync-files-staging"\}\]/,
    ],
    [
      "a tier var written by hand",
      (t) => t.replace('vars = { CALMSYNC_ENV = "staging" }', 'vars = { CALMSYNC_ENV = "staging", CALMSYNC_TIER = "free" }'),
      /staging: vars\.CALMSYNC_TIER: expected "standard", found "free"/,
    ],
  ];
  for (const [what, edit, message] of edits) {
    it(`refuses ${what}, naming the field, in check:tiers and in deploy`, () => {
      const path = config(what.replaceAll(" ", "-"), edit);
      const check = run("check-tiers.ts", "--config", path);
      expect(check.status).toBe(1);
      expect(check.output).toMatch(message);
      const env = message.source.startsWith("production") ? "production" : "staging";
      const deploy = run("deploy.ts", env, "--dry-run", "--config", path);
      expect(deploy.status).toBe(1);
      expect(deploy.output).toMatch(/Refusing to deploy/);
      expect(deploy.output).toMatch(message);
      expect(deploy.output).not.toMatch(/--dry-run: exiting now/);
    });
  }

  it("going past a failed check needs a reason, which is printed loudly and stamped", () => {
    const path = config("override", edits[0]![1]);
    const bare = run("deploy.ts", "production", "--dry-run", "--config", path, "--override-tier-check");
    expect(bare.status).toBe(2);
    expect(bare.output).toMatch(/--override-tier-check needs a reason/);
    const forced = run("deploy.ts", "production", "--dry-run", "--config", path, "--override-tier-check", "INC-42 emergency rollback");
    expect(forced.status, forced.output).toBe(0);
    expect(forced.output).toMatch(/DEPLOYING PRODUCTION PAST A FAILED TIER CHECK: INC-42 emergency rollback/);
    expect(forced.output).toMatch(/--var CALMSYNC_TIER_OVERRIDE:INC-42 emergency rollback/);
  });
});
