import type { DeploymentApi } from "./deployment/deployment.ts";

export interface Env {
  DEPLOYMENTS: DurableObjectNamespace;
  /** Bearer token for /api/admin/*. A secret: `wrangler secret put ADMIN_KEY`, or `.dev.vars` locally. */
  ADMIN_KEY?: string;
}

/**
 * The deployment object's RPC surface. Typed by hand: the inferred stub type of
 * a class with recursive JSON types is too deep for the compiler.
 */
export function deploymentStub(env: Env, name: string): DeploymentApi {
  return env.DEPLOYMENTS.getByName(name) as unknown as DeploymentApi;
}
