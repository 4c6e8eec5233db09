/**
 * `npm run auth:keys [-- --set] [--deployment NAME] [--url URL]`: a new key
 * pair for Convex Auth (`@convex-dev/auth`), as the variables
 * `JWT_PRIVATE_KEY` and `JWKS` (scripts/lib/auth-keys.ts).
 *
 * Without `--set` it prints them (`NAME=value` lines, for a `.dev.vars` file
 * or a secret store); with `--set` it sets both on the deployment through the
 * admin API, as `npm run env -- set` does, and prints nothing secret. A new
 * pair signs out everyone: tokens signed with the old key no longer verify.
 * `CONVEX_SITE_URL` needs no setting: calmsync gives it to functions.
 */
import { parseArgs } from "node:util";
import { AdminError, adminCall, adminTarget } from "./lib/admin.ts";
import { dotenvLines, generateConvexAuthKeys } from "./lib/auth-keys.ts";

const USAGE = "Usage: npm run auth:keys [-- --set [--deployment NAME] [--url URL]]";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      set: { type: "boolean" },
      deployment: { type: "string", short: "d" },
      url: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void console.log(USAGE);
  const keys = await generateConvexAuthKeys();
  if (!values.set) {
    process.stdout.write(`${dotenvLines(keys).join("\n")}\n`);
    return;
  }
  const target = adminTarget({ url: values.url, deployment: values.deployment });
  for (const [name, value] of Object.entries(keys)) {
    await adminCall(target, `env/${encodeURIComponent(name)}`, { method: "PUT", body: JSON.stringify({ value }) });
  }
  console.log(`JWT_PRIVATE_KEY and JWKS set on ${target.deploymentUrl} (tokens signed with a previous key no longer verify)`);
}

main().catch((error: unknown) => {
  console.error(error instanceof AdminError || error instanceof Error ? error.message : error);
  process.exit(1);
});
