/**
 * Checks a wrangler environment's resolved configuration against its tier
 * and the manifest (src/knobs/tiers.ts), with wrangler's own config reader, so
 * inheritance is resolved exactly as `wrangler deploy` will resolve it.
 * Returns one line per difference, naming the field, what the tier expects
 * and what the configuration has; none when it matches.
 */
import { unstable_readConfig } from "wrangler";
import { MANIFEST, manifestHash, requiredWrangler, type EnvironmentName } from "../../src/knobs/tiers.ts";

export const DEFAULT_CONFIG = "wrangler.toml";

/** The environments the manifest knows, in its order. */
export const ENVIRONMENTS = Object.keys(MANIFEST.environments) as EnvironmentName[];

/** `dev` is the top-level configuration; the others are `[env.<name>]`. */
const envFlag = (environment: EnvironmentName) => (environment === "dev" ? undefined : environment);

export function checkEnvironment(environment: EnvironmentName, configPath = DEFAULT_CONFIG): string[] {
  const problems: string[] = [];
  const differ = (field: string, expected: unknown, found: unknown) => {
    if (JSON.stringify(expected) !== JSON.stringify(found))
      problems.push(`${environment}: ${field}: expected ${JSON.stringify(expected)}, found ${JSON.stringify(found)}`);
  };
  let config: ReturnType<typeof unstable_readConfig>;
  let top: ReturnType<typeof unstable_readConfig>;
  try {
    const env = envFlag(environment);
    config = unstable_readConfig({ config: configPath, ...(env ? { env } : {}) }, { hideWarnings: true });
    top = unstable_readConfig({ config: configPath }, { hideWarnings: true });
  } catch (error) {
    return [`${environment}: the wrangler configuration cannot be read: ${(error as Error).message}`];
  }
  const wrangler = requiredWrangler(environment);
  differ("limits.cpu_ms", wrangler.cpuMs, config.limits?.cpu_ms);
  const bindings = (config.durable_objects.bindings as { name: string; class_name: string; script_name?: string }[]).map(
    ({ name, class_name, script_name }) => ({
      name,
      class_name,
      ...(script_name ? { script_name } : {}),
    }),
  );
  differ(
    "durable_objects.bindings",
    [
      { name: "DEPLOYMENTS", class_name: "Deployment" },
      { name: "SYNC_SHARDS", class_name: "SyncShard" },
      { name: "DIRECTORY", class_name: "DeploymentDirectory" },
    ],
    bindings,
  );
  const buckets = (config.r2_buckets as { binding: string; bucket_name?: string }[]).map(({ binding, bucket_name }) => ({ binding, bucket_name }));
  differ("r2_buckets", [{ binding: "FILES", bucket_name: MANIFEST.environments[environment].filesBucket }], buckets);
  const sqliteClasses = (config.migrations as { new_sqlite_classes?: string[] }[]).flatMap((m) => m.new_sqlite_classes ?? []);
  differ("migrations (new_sqlite_classes)", ["Deployment", "SyncShard", "DeploymentDirectory"], sqliteClasses);
  differ("compatibility_date", top.compatibility_date, config.compatibility_date);
  const vars = config.vars as Record<string, unknown>;
  differ("vars.CALMSYNC_ENV", environment, vars.CALMSYNC_ENV);
  // The stamp is the deploy's to write: one written by hand must agree with the manifest.
  if (vars.CALMSYNC_TIER !== undefined) differ("vars.CALMSYNC_TIER", MANIFEST.environments[environment].tier, vars.CALMSYNC_TIER);
  if (vars.CALMSYNC_MANIFEST_HASH !== undefined) differ("vars.CALMSYNC_MANIFEST_HASH", manifestHash(), vars.CALMSYNC_MANIFEST_HASH);
  return problems;
}

/** The `--var` flags a deploy stamps. */
export function stampFlags(environment: EnvironmentName, overrideReason: string | null): string[] {
  const flags = ["--var", `CALMSYNC_TIER:${MANIFEST.environments[environment].tier}`, "--var", `CALMSYNC_MANIFEST_HASH:${manifestHash()}`];
  if (overrideReason !== null) flags.push("--var", `CALMSYNC_TIER_OVERRIDE:${overrideReason}`);
  return flags;
}

export { envFlag };
