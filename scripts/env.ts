/**
 * `npm run env -- <command> [--deployment NAME] [--url URL]`: a deployment's
 * environment variables, which `process.env` reads in its functions before
 * the Worker's vars and secrets (README, "Environment variables").
 *
 *   set NAME [VALUE]   sets it (no VALUE: read from stdin, so a secret stays out of the shell's history)
 *   get NAME           prints its value
 *   list               names, when each was set, and the latest changes (who and when; never values)
 *   remove NAME        removes it (functions fall back to the Worker's var of that name)
 *
 * The admin key comes from ADMIN_KEY or the `.dev.vars` that `npm run dev`
 * wrote; the URL defaults to the local `npm run dev` (CALMSYNC_URL too).
 */
import { parseArgs } from "node:util";
import { text } from "node:stream/consumers";
import { AdminError, adminCall, adminTarget } from "./lib/admin.ts";

const USAGE = "Usage: npm run env -- set NAME [VALUE] | get NAME | list | remove NAME  [--deployment NAME] [--url URL]";

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { deployment: { type: "string", short: "d" }, url: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  const [command, name, value] = positionals;
  if (values.help || !command) return void console.log(USAGE);
  const target = adminTarget({ url: values.url, deployment: values.deployment });
  const variable = (name: string | undefined) => {
    if (!name) throw new Error(`${command} needs a variable name\n${USAGE}`);
    return `env/${encodeURIComponent(name)}`;
  };
  switch (command) {
    case "set": {
      const path = variable(name);
      // Without a VALUE argument, stdin: `printf %s "$KEY" | npm run env -- set OPENAI_API_KEY`. One trailing newline (echo's) is not part of it.
      const given = value ?? (await text(process.stdin)).replace(/\r?\n$/, "");
      await adminCall(target, path, { method: "PUT", body: JSON.stringify({ value: given }) });
      console.log(`${name} set on ${target.deploymentUrl} (the next run of each function reads it)`);
      return;
    }
    case "get": {
      const { value: current } = (await (await adminCall(target, variable(name))).json()) as { value: string };
      process.stdout.write(`${current}\n`);
      return;
    }
    case "list": {
      const { variables, history } = (await (await adminCall(target, "env")).json()) as {
        variables: { name: string; updatedAt: number }[];
        history: { name: string; action: string; actor: string; at: number }[];
      };
      if (variables.length === 0) console.log("(no variables set on this deployment; functions see the Worker's vars only)");
      for (const v of variables) console.log(`${v.name.padEnd(40)} set ${new Date(v.updatedAt).toISOString()}`);
      if (history.length > 0) console.log("\nlatest changes:");
      for (const change of history.slice(0, 10))
        console.log(`  ${new Date(change.at).toISOString()}  ${change.action.padEnd(6)} ${change.name}  by ${change.actor}`);
      return;
    }
    case "remove": {
      await adminCall(target, variable(name), { method: "DELETE" });
      console.log(`${name} removed from ${target.deploymentUrl}`);
      return;
    }
    default:
      throw new Error(`Unknown command ${JSON.stringify(command)}\n${USAGE}`);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof AdminError || error instanceof Error ? error.message : error);
  process.exit(1);
});
