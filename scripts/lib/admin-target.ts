/**
 * Where an operator command (`npm run export`, `npm run import`) sends its
 * admin calls: `--url` (or CALMSYNC_URL; default the local `npm run dev`),
 * with the admin key from CALMSYNC_ADMIN_KEY, else the ADMIN_KEY of
 * `.dev.vars` (what `npm run dev` uses).
 */
import { existsSync, readFileSync } from "node:fs";

export interface AdminTarget {
  /** The deployment's base URL (`<url>/d/<name>`). */
  deploymentUrl: string;
  headers: Record<string, string>;
}

/** Removes `--name value` from `args` and returns the value. */
export function takeOption(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  if (at === -1) return undefined;
  const [, value] = args.splice(at, 2);
  if (value === undefined) throw new Error(`${name} needs a value`);
  return value;
}

export function adminTarget(deployment: string, url = process.env.CALMSYNC_URL ?? "http://127.0.0.1:8787"): AdminTarget {
  const key = process.env.CALMSYNC_ADMIN_KEY ?? devVarsAdminKey();
  if (!key) throw new Error("No admin key: set CALMSYNC_ADMIN_KEY (or run `npm run dev` once, which writes ADMIN_KEY to .dev.vars)");
  return { deploymentUrl: `${url.replace(/\/+$/, "")}/d/${deployment}`, headers: { Authorization: `Bearer ${key}` } };
}

function devVarsAdminKey(): string | undefined {
  if (!existsSync(".dev.vars")) return undefined;
  return readFileSync(".dev.vars", "utf8")
    .split("\n")
    .map((line) => /^ADMIN_KEY\s*=\s*"?([^"\n]+)"?\s*$/.exec(line)?.[1])
    .find(Boolean);
}
