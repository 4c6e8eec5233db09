/**
 * `npm run deploy -- <env> [--dry-run] [--override-tier-check "<reason>"] [--config <path>]`:
 * the one documented way to deploy. It checks the environment's resolved
 * wrangler configuration against its tier (scripts/lib/tier-check.ts) and
 * refuses on any difference, naming each field. On success it stamps the
 * environment's tier and the manifest's hash into the Worker's vars and runs
 * `wrangler deploy --env <env>` (with `--dry-run`, wrangler's own dry run,
 * which needs no Cloudflare account). Going past a failed check needs
 * `--override-tier-check` with a reason, which is printed loudly and stamped
 * too, so the deployment's admin status and dashboard show it. An app with a
 * module that throws while it loads is refused too (scripts/check-modules.ts),
 * as Convex's push refuses it.
 */
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { isEnvironmentName } from "../src/knobs/tiers.ts";
import { checkEnvironment, DEFAULT_CONFIG, ENVIRONMENTS, envFlag, stampFlags } from "./lib/tier-check.ts";
import { describeLoadErrors, moduleLoadErrors } from "./check-modules.ts";

function fail(message: string, code = 1): never {
  console.error(message);
  process.exit(code);
}

const args = process.argv.slice(2);
const environment = args[0];
if (!environment || !isEnvironmentName(environment))
  fail(`Usage: npm run deploy -- <${ENVIRONMENTS.join("|")}> [--dry-run] [--override-tier-check "<reason>"]`, 2);
const dryRun = args.includes("--dry-run");
const configPath = args.includes("--config") ? args[args.indexOf("--config") + 1]! : DEFAULT_CONFIG;
let overrideReason: string | null = null;
if (args.includes("--override-tier-check")) {
  const reason = args[args.indexOf("--override-tier-check") + 1];
  if (!reason || reason.startsWith("--") || reason.trim().length < 5)
    fail('--override-tier-check needs a reason (at least a few words), e.g. --override-tier-check "INC-42: emergency rollback"', 2);
  overrideReason = reason.trim();
}

const problems = checkEnvironment(environment, configPath);
if (problems.length > 0) {
  if (overrideReason === null) {
    fail(
      `Refusing to deploy ${environment}: its configuration does not match its tier.\n${problems.map((p) => `  ${p}`).join("\n")}\nFix ${configPath} (or src/knobs/tiers.ts), or deploy anyway with --override-tier-check "<reason>".`,
    );
  }
  const bar = "!".repeat(78);
  console.error(
    `${bar}\n!! DEPLOYING ${environment.toUpperCase()} PAST A FAILED TIER CHECK: ${overrideReason}\n${problems.map((p) => `!!   ${p}`).join("\n")}\n!! The reason is stamped into the deployment; its dashboard will show it.\n${bar}`,
  );
} else {
  console.log(`Tier check: ${environment} matches its tier.`);
}

const convexDir = resolve("convex");
const loadErrors = await moduleLoadErrors(convexDir);
if (loadErrors.length > 0)
  fail(`Refusing to deploy ${environment}: ${loadErrors.length} module(s) of ${convexDir} fail to load.\n${describeLoadErrors(loadErrors)}`);

const env = envFlag(environment);
const wrangler = join(import.meta.dirname, "..", "node_modules", "wrangler", "bin", "wrangler.js");
const command = [
  "deploy",
  "--config",
  configPath,
  ...(env ? ["--env", env] : []),
  ...stampFlags(environment, overrideReason),
  ...(dryRun ? ["--dry-run"] : []),
];
console.log(`wrangler ${command.join(" ")}`);
const result = spawnSync(process.execPath, [wrangler, ...command], { stdio: "inherit", env: { ...process.env, WRANGLER_SEND_METRICS: "false" } });
process.exit(result.status ?? 1);
