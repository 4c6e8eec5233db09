import { hideHostVariables } from "./engine/index.ts";
import type { TierStamp } from "./knobs/tiers.ts";

/** Bindings and vars; the tier stamp (CALMSYNC_ENV, CALMSYNC_TIER, ...) is written by `npm run deploy`. */
export interface Env extends TierStamp {
  DEPLOYMENTS: DurableObjectNamespace;
  /** The deployment directory (src/deployment/directory.ts): one object recording which deployments exist past the declared names. */
  DIRECTORY: DurableObjectNamespace;
  /** Sync shards (docs/SHARDS.md), named `<deployment>/shard-<k>`. */
  SYNC_SHARDS: DurableObjectNamespace;
  /** File storage's bytes (`ctx.storage`), keyed `<deployment>/<storage id>` (src/deployment/r2-blob-store.ts). */
  FILES: R2Bucket;
  /**
   * The public URL clients reach this Worker at (`https://chat.example.com`), for the URLs
   * `ctx.storage` hands out. Unset: the origin of the requests the Worker receives.
   */
  CALMSYNC_PUBLIC_URL?: string;
  /** Bearer token for /api/admin/*. A secret: `wrangler secret put ADMIN_KEY`, or `.dev.vars` locally. */
  ADMIN_KEY?: string;
  /**
   * Deployments that exist without being created by an operator, comma-separated;
   * a trailing `*` matches a prefix (`"default,staging-*"`). Default: `"default"`.
   */
  DECLARED_DEPLOYMENTS?: string;
  /**
   * How many deployments each wildcard of `DECLARED_DEPLOYMENTS` may make on
   * first use (default 100); past it a new name needs the admin key
   * (`POST /d/<name>/api/admin/deployment`). A wildcard lets anyone who can
   * reach the Worker make a deployment by naming one: this bounds how many.
   */
  WILDCARD_DEPLOYMENT_LIMIT?: string;
  /** Origins allowed to call the API from a browser, comma-separated, or `*` (the default, as Convex does). */
  CORS_ORIGINS?: string;
}

/**
 * calmsync's own settings among the Worker's vars and secrets. With `nodejs_compat` every
 * var is in `process.env`; functions read these as unset (an app's public query
 * returning `process.env.ADMIN_KEY` would otherwise hand out the admin key).
 */
export const OWN_VARIABLES = [
  "ADMIN_KEY",
  "DECLARED_DEPLOYMENTS",
  "WILDCARD_DEPLOYMENT_LIMIT",
  "CORS_ORIGINS",
  "CALMSYNC_PUBLIC_URL",
  "CALMSYNC_ENV",
  "CALMSYNC_TIER",
  "CALMSYNC_MANIFEST_HASH",
  "CALMSYNC_TIER_OVERRIDE",
] as const satisfies readonly (keyof Env)[];
hideHostVariables(OWN_VARIABLES);

/** Whether `name` is declared in configuration (it then exists from its first use). */
export function isDeclaredDeployment(env: Env, name: string): boolean {
  return declaration(env, name) !== null;
}

/**
 * How `name` is declared: by itself (`"exact"`), by a wildcard (the
 * pattern, e.g. `"staging-*"`: its first use counts against
 * `WILDCARD_DEPLOYMENT_LIMIT`), or not at all (null). An exact entry wins.
 */
export function declaration(env: Pick<Env, "DECLARED_DEPLOYMENTS">, name: string): "exact" | { pattern: string } | null {
  let wildcard: string | null = null;
  for (const entry of (env.DECLARED_DEPLOYMENTS ?? "default").split(",")) {
    const pattern = entry.trim();
    if (pattern === name) return "exact";
    if (wildcard === null && pattern.endsWith("*") && name.startsWith(pattern.slice(0, -1))) wildcard = pattern;
  }
  return wildcard === null ? null : { pattern: wildcard };
}

const DEFAULT_WILDCARD_DEPLOYMENT_LIMIT = 100;

/** `WILDCARD_DEPLOYMENT_LIMIT`, or its default for a missing or malformed value. */
export function wildcardDeploymentLimit(env: Pick<Env, "WILDCARD_DEPLOYMENT_LIMIT">): number {
  const value = Number(env.WILDCARD_DEPLOYMENT_LIMIT);
  return env.WILDCARD_DEPLOYMENT_LIMIT !== undefined && Number.isInteger(value) && value >= 0 ? value : DEFAULT_WILDCARD_DEPLOYMENT_LIMIT;
}

/** Loopback host names: a request to one of these reached a runtime on this machine. */
const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

/**
 * Whether the local development issuer exists for this configuration: only
 * the local one (`CALMSYNC_ENV` "dev", which `wrangler dev` and the tests
 * run and no deployed environment has; deploys stamp staging or production).
 */
export function isLocalConfiguration(env: TierStamp): boolean {
  return env.CALMSYNC_ENV === "dev";
}

/**
 * Whether the dev issuer may sign a token for this request: the local
 * configuration, and a request addressed to loopback, so a Worker deployed
 * with the local configuration by mistake still signs nothing for anyone.
 */
export function devIssuerAllowed(env: TierStamp, url: string): boolean {
  return isLocalConfiguration(env) && LOOPBACK_HOST.test(new URL(url).hostname);
}
