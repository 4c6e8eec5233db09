/**
 * Hardware tiers and where things run: one typed table, read by the Worker
 * (each deployment applies its tier's knob defaults and reports its tier),
 * by `scripts/deploy.ts` (which refuses a wrangler environment that does
 * not match its tier) and by the tests.
 *
 * The outage this answers: a manual redeploy put a big customer back on the
 * default hardware class and nobody saw it. Here every environment and named
 * deployment has a tier in the manifest; the deploy tool checks the wrangler
 * configuration against it and stamps the tier and the manifest's hash into
 * the deployment's vars; a deployment whose stamp is missing or disagrees
 * says so in its admin status, its log and its dashboard.
 */
import type { KnobName } from "./knob-table.ts";

export interface Tier {
  /** What Cloudflare gives a Worker (and so its Durable Object class), set in wrangler.toml. */
  wrangler: {
    /** CPU milliseconds per invocation (`limits.cpu_ms`). */
    cpuMs: number;
  };
  /** Knob defaults of this tier (an override through the knob API still wins). */
  knobs: Partial<Record<KnobName, number>>;
  doc: string;
}

export const TIERS = {
  free: {
    wrangler: { cpuMs: 30_000 },
    knobs: {
      maxSessions: 1_000,
      sessionAdmitRate: 50,
      sessionAdmitBurst: 100,
      refreshQueueLimit: 1_000,
      resubscribeRate: 200,
      resubscribeBurst: 1_000,
      searchMemoryBudgetBytes: 8_388_608,
      queryResultCacheBytes: 4_194_304,
      maxFrameBytes: 262_144,
      maxPendingBytesPerSession: 1_048_576,
      maxPendingBytes: 8_388_608,
      maxQueryInstances: 10_000,
      shardResultCacheBytes: 4_194_304,
    },
    doc: "Small and cheap: a thousand sessions, a trickle of new ones, small caches.",
  },
  standard: {
    wrangler: { cpuMs: 30_000 },
    knobs: {},
    doc: "The knob table's defaults (30,000 sessions, 500 new sessions/s) with the paid plan's default CPU.",
  },
  dedicated: {
    wrangler: { cpuMs: 300_000 },
    knobs: {
      sessionAdmitRate: 2_000,
      sessionAdmitBurst: 4_000,
      refreshQueueLimit: 20_000,
      resubscribeRate: 5_000,
      resubscribeBurst: 20_000,
      searchMemoryBudgetBytes: 50_331_648,
      queryResultCacheBytes: 25_165_824,
    },
    doc: "A big customer's deployment: the most CPU per invocation, faster admission, larger caches.",
  },
} as const satisfies Record<string, Tier>;

export type TierName = keyof typeof TIERS;

/** The knobs that size a deployment: every knob some tier sets. */
export const SIZING_KNOBS: ReadonlySet<KnobName> = new Set(Object.values(TIERS).flatMap((tier: Tier) => Object.keys(tier.knobs) as KnobName[]));

export interface EnvironmentPlacement {
  /** The tier of every deployment in this environment that is not listed below. */
  tier: TierName;
  /** Named deployments (Durable Object names) with a tier of their own. */
  deployments: Record<string, TierName>;
  /** The R2 bucket behind the `FILES` binding: file storage's bytes (`ctx.storage`), one bucket per environment. */
  filesBucket: string;
}

/**
 * Where things run: each wrangler environment (`dev` is the top-level
 * configuration that `wrangler dev` and the tests use) and its named
 * deployments.
 */
export const MANIFEST = {
  environments: {
    dev: { tier: "standard", deployments: { "demo-free": "free" }, filesBucket: "calmsync-files-dev" },
    staging: { tier: "standard", deployments: {}, filesBucket: "calmsync-files-staging" },
    production: { tier: "standard", deployments: { default: "dedicated", "big-customer": "dedicated" }, filesBucket: "calmsync-files" },
  },
} as const satisfies { environments: Record<string, EnvironmentPlacement> };

export type EnvironmentName = keyof typeof MANIFEST.environments;

export function isEnvironmentName(name: string): name is EnvironmentName {
  return Object.hasOwn(MANIFEST.environments, name);
}

/** The tier a deployment should run on: its own entry, else its environment's. */
export function expectedTier(environment: EnvironmentName, deployment: string): TierName {
  const placement: EnvironmentPlacement = MANIFEST.environments[environment];
  return Object.hasOwn(placement.deployments, deployment) ? placement.deployments[deployment]! : placement.tier;
}

/** A short, stable hash of the manifest and the tier table (FNV-1a, 64 bits as hex): what a deploy stamps. */
export function manifestHash(tiers: object = TIERS, manifest: object = MANIFEST): string {
  const text = JSON.stringify({ TIERS: tiers, MANIFEST: manifest });
  let hash = 0xcbf29ce484222325n;
  for (let i = 0; i < text.length; i++) hash = BigInt.asUintN(64, (hash ^ BigInt(text.charCodeAt(i))) * 0x100000001b3n);
  return hash.toString(16).padStart(16, "0");
}

/** The vars a deploy stamps into a Worker (and `npm run dev` into `.dev.vars`). */
export interface TierStamp {
  /** The wrangler environment this Worker is (set in wrangler.toml, checked by the deploy). */
  CALMSYNC_ENV?: string;
  /** The environment's tier, stamped by `npm run deploy`. */
  CALMSYNC_TIER?: string;
  CALMSYNC_MANIFEST_HASH?: string;
  /** Set when a deploy went past a failed tier check: the reason given. */
  CALMSYNC_TIER_OVERRIDE?: string;
}

export interface TierReport {
  /** The tier this deployment runs with (its knob defaults apply). */
  name: TierName;
  expected: { environment: string; tier: TierName; manifestHash: string };
  stamped: { tier: string | null; manifestHash: string | null; override: string | null };
  manifestHash: string;
  /** Everything that disagrees; empty when the deployment is where the manifest says. */
  mismatch: string[];
}

/** What a running deployment knows about its tier, from its vars and the manifest compiled into it. */
export function tierReport(vars: TierStamp, deployment: string): TierReport {
  const mismatch: string[] = [];
  const envName = vars.CALMSYNC_ENV ?? "dev";
  const environment: EnvironmentName = isEnvironmentName(envName) ? envName : "dev";
  if (!isEnvironmentName(envName)) mismatch.push(`CALMSYNC_ENV "${envName}" is not an environment of the manifest`);
  const tier = expectedTier(environment, deployment);
  const hash = manifestHash();
  const stamped = { tier: vars.CALMSYNC_TIER ?? null, manifestHash: vars.CALMSYNC_MANIFEST_HASH ?? null, override: vars.CALMSYNC_TIER_OVERRIDE ?? null };
  if (stamped.tier === null || stamped.manifestHash === null) {
    mismatch.push("not stamped: this Worker was not deployed with `npm run deploy` (no CALMSYNC_TIER / CALMSYNC_MANIFEST_HASH)");
  } else {
    const environmentTier = MANIFEST.environments[environment].tier;
    if (stamped.tier !== environmentTier) mismatch.push(`environment tier: stamped "${stamped.tier}", manifest says "${environmentTier}" for ${environment}`);
    if (stamped.manifestHash !== hash) mismatch.push(`manifest hash: stamped ${stamped.manifestHash}, this code's manifest is ${hash}`);
  }
  if (stamped.override !== null) mismatch.push(`deployed past a failed tier check: ${stamped.override}`);
  return { name: tier, expected: { environment, tier, manifestHash: hash }, stamped, manifestHash: hash, mismatch };
}

/**
 * What an environment's Worker needs from wrangler: the most any of its
 * deployments' tiers needs (limits apply per Worker, to every deployment in it).
 */
export function requiredWrangler(environment: EnvironmentName): Tier["wrangler"] {
  const placement: EnvironmentPlacement = MANIFEST.environments[environment];
  const tiers = [placement.tier, ...Object.values(placement.deployments)].map((name) => TIERS[name]);
  return { cpuMs: Math.max(...tiers.map((tier) => tier.wrangler.cpuMs)) };
}
