/**
 * `convex/auth.config.ts` reads environment variables, and Convex Auth's
 * reads `process.env.CONVEX_SITE_URL`, the deployment's own URL. Here the
 * module loads once per isolate, for every deployment in it, before any of
 * them knows its URL. So the variables Convex sets itself (the same in kind
 * for every deployment, and always set on Convex) are given to it as
 * placeholders naming them, and each deployment puts in its own values when
 * it reads its providers (and again when they change):
 * `resolveConfigVariables`. Any other name reads the Worker's vars, as a
 * module's top level does (an operator's `npm run env` variable does not
 * reach auth.config.ts: set those as Worker vars or secrets).
 *
 * Only the system names: a placeholder is always truthy, and configs test
 * their own variables (`env.AUTH_OIDC_DOMAIN ? [...] : []`).
 */
import type { EnvironmentVariables } from "../syscalls/run-context.ts";
import { inRunContext } from "../syscalls/run-context.ts";

/** Private-use characters: no real value holds them, so no real value is mistaken for a placeholder. */
const OPEN = "\u{F8F0}env:";
const CLOSE = "\u{F8F1}";
const PLACEHOLDER = /\u{F8F0}env:([A-Za-z0-9_]+)\u{F8F1}/gu;

/** The variables Convex sets for every function: where the deployment's clients and HTTP actions are. */
export const SYSTEM_VARIABLES: readonly string[] = ["CONVEX_CLOUD_URL", "CONVEX_SITE_URL"];

/** The system names "set", each to a placeholder naming it. */
class PlaceholderVariables extends Map<string, string> {
  constructor() {
    super(SYSTEM_VARIABLES.map((name) => [name, `${OPEN}${name}${CLOSE}`]));
  }
}

/** Evaluates auth.config.ts (its loader) with the placeholder `process.env`; its default export. */
export async function loadAuthConfig(load: () => Promise<{ default?: unknown }>): Promise<unknown> {
  const variables: EnvironmentVariables = new PlaceholderVariables();
  const module = await inRunContext({ requestId: "auth.config", environment: variables }, load);
  return module.default ?? null;
}

/**
 * The config with each placeholder replaced by `lookup(name)`: a string that
 * was one placeholder becomes the value, or undefined when the deployment and
 * the Worker have none (so the provider is reported with an unset field);
 * one inside a longer string becomes the text JavaScript would have made of it.
 */
export function resolveConfigVariables(config: unknown, lookup: (name: string) => string | undefined): unknown {
  if (typeof config === "string") {
    const whole = new RegExp(`^${PLACEHOLDER.source}$`, "u").exec(config);
    if (whole) return lookup(whole[1]!);
    return config.replace(PLACEHOLDER, (_, name: string) => String(lookup(name)));
  }
  if (Array.isArray(config)) return config.map((item) => resolveConfigVariables(item, lookup));
  if (typeof config === "object" && config !== null) {
    return Object.fromEntries(Object.entries(config).map(([key, value]) => [key, resolveConfigVariables(value, lookup)]));
  }
  return config;
}
