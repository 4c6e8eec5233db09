/** What every workers test file needs: the bindings, the Worker, the admin key and fresh deployment names. */
import { env, exports } from "cloudflare:workers";
import type { Env } from "../../src/env.ts";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import type { DeploymentStatus } from "../../src/deployment/deployment.ts";

export const bindings = env as Env;
export const worker = (exports as unknown as { default: Fetcher }).default;
/** The admin key vitest.config.ts gives the test Worker. */
export const admin = { Authorization: "Bearer test-admin-key" };

/**
 * A deployment name no other test uses. The test config declares `test-*`,
 * so it exists from its first use, as `default` does in wrangler.toml.
 */
export const fresh = (label: string) => `test-${label}-${crypto.randomUUID().slice(0, 8)}`;

/** The operator's view (counters and limits), straight over RPC. */
export const status = (deployment: string): Promise<DeploymentStatus> => deploymentStub(bindings, deployment).status();

/** Sets knobs through the admin API; fails the test on a refusal. */
export async function setKnobs(deployment: string, knobs: Record<string, number>): Promise<void> {
  const response = await worker.fetch(`http://t/d/${deployment}/api/admin/knobs`, {
    method: "PATCH",
    headers: { ...admin, "Content-Type": "application/json" },
    body: JSON.stringify(knobs),
  });
  if (response.status !== 200) throw new Error(`knobs refused: ${response.status} ${await response.text()}`);
}

/** Calls a query or mutation over HTTP through the Worker (at `origin`, which the file URLs it hands out start with); its value, or throws its error. */
export async function callFunction(
  origin: string,
  deployment: string,
  kind: "query" | "mutation",
  path: string,
  args: Record<string, unknown>,
): Promise<unknown> {
  const response = await worker.fetch(`${origin}/d/${deployment}/api/${kind}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ path, format: "convex_encoded_json", args: [args] }),
  });
  const body = (await response.json()) as { status: string; value?: unknown; errorMessage?: string };
  if (body.status !== "success") throw new Error(`${path}: ${body.errorMessage}`);
  return body.value;
}
