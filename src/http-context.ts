/** What every route of the Worker shares: its Hono environment, the error shape, the deployment's stub. */
import type { Context } from "hono";
import type { Env } from "./env.ts";
import { deploymentStub, type DeploymentApi } from "./deployment/deployment.ts";

export type AppEnv = { Bindings: Env; Variables: { requestId: string; deployment: string } };

export type ProblemStatus = 400 | 401 | 403 | 404 | 408 | 410 | 411 | 413 | 415 | 416 | 426;

/** Every error the Worker answers itself: `{ code, message }` with its status. */
export function problem(c: Context<AppEnv>, status: ProblemStatus, code: string, message: string) {
  return c.json({ code, message }, status);
}

/** The deployment the request names (set by the deployment resolver). */
export const stub = (c: Context<AppEnv>): DeploymentApi => deploymentStub(c.env, c.get("deployment"));
