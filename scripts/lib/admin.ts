/** Operator calls that end-to-end tests and benchmarks make against `wrangler dev`: creating deployments, reading counters, setting knobs. */
import { TEST_ADMIN_KEY } from "./wrangler-dev.ts";

const auth = { Authorization: `Bearer ${TEST_ADMIN_KEY}` };

/** Creates `/d/<name>` (only `default` exists unasked) and returns its URL for the clients. */
export async function createDeployment(serverUrl: string, name: string): Promise<string> {
  const response = await fetch(`${serverUrl}/d/${name}/api/admin/deployment`, { method: "POST", headers: auth });
  if (!response.ok) throw new Error(`creating ${name}: ${response.status} ${await response.text()}`);
  return `${serverUrl}/d/${name}`;
}

/** The deployment's counters and limits (`/api/admin/status`). `deploymentUrl` is what the clients were given. */
export async function adminStatus<T = Record<string, number>>(deploymentUrl: string): Promise<T> {
  const response = await fetch(`${deploymentUrl}/api/admin/status`, { headers: auth });
  if (!response.ok) throw new Error(`status: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** Sets knobs on a deployment (`PATCH /api/admin/knobs`). */
export async function setKnobs(deploymentUrl: string, knobs: Record<string, number>): Promise<void> {
  const response = await fetch(`${deploymentUrl}/api/admin/knobs`, { method: "PATCH", headers: { ...auth, "Content-Type": "application/json" }, body: JSON.stringify(knobs) });
  if (!response.ok) throw new Error(`knobs: ${response.status} ${await response.text()}`);
}

/** The deployment's knobs: value, default and range of each. */
export async function knobReport(deploymentUrl: string): Promise<{ name: string; value: number; default: number; min: number; max: number }[]> {
  const response = await fetch(`${deploymentUrl}/api/admin/knobs`, { headers: auth });
  if (!response.ok) throw new Error(`knobs: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { knobs: { name: string; value: number; default: number; min: number; max: number }[] }).knobs;
}

/**
 * Knobs for a load generator whose clients all come from this one machine:
 * without CF-Connecting-IP (or from one address) they are one client to the
 * per-client limits (clientSessionRate, clientCallRate), which would measure
 * those instead of the deployment.
 */
export const MANY_CLIENTS_FROM_HERE = { clientSessionRate: 100_000, clientSessionBurst: 100_000, clientCallRate: 100_000, clientCallBurst: 100_000 };
