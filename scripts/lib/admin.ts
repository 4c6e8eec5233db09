/** Operator calls that end-to-end tests and benchmarks make against `wrangler dev` (creating deployments, reading counters, setting knobs), and the operator's commands' target. */
import { existsSync, readFileSync } from "node:fs";
import { hostname, userInfo } from "node:os";
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
  const response = await fetch(`${deploymentUrl}/api/admin/knobs`, {
    method: "PATCH",
    headers: { ...auth, "Content-Type": "application/json" },
    body: JSON.stringify(knobs),
  });
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

/**
 * Where an operator's command (`npm run env`, `npm run logs`) points: the
 * server (`--url`, else CALMSYNC_URL, else the local `npm run dev`), the
 * deployment, and the admin key (ADMIN_KEY from the environment, else the
 * `.dev.vars` that `npm run dev` wrote; never a flag, which `ps` would show).
 */
export interface AdminTarget {
  /** `http://host` for the default deployment, `http://host/d/<name>` for the others. */
  deploymentUrl: string;
  key: string;
  /** Who the audit says made a change: user@host. */
  actor: string;
}

export function adminTarget({ url, deployment }: { url?: string; deployment?: string }): AdminTarget {
  const server = (url ?? process.env.CALMSYNC_URL ?? "http://127.0.0.1:8787").replace(/\/+$/, "");
  const key = process.env.ADMIN_KEY ?? devVarsAdminKey();
  if (!key) throw new Error("No admin key: set ADMIN_KEY in the environment, or run `npm run dev` once (it writes one to .dev.vars)");
  const name = deployment ?? "default";
  return { deploymentUrl: name === "default" ? server : `${server}/d/${name}`, key, actor: `${userInfo().username}@${hostname()}` };
}

function devVarsAdminKey(): string | undefined {
  if (!existsSync(".dev.vars")) return undefined;
  return readFileSync(".dev.vars", "utf8")
    .split("\n")
    .map((line) => /^ADMIN_KEY\s*=\s*"?([^"\n]+)"?\s*$/.exec(line)?.[1])
    .find(Boolean);
}

/** The headers that authorize an admin call to `target` (and name who makes it, for the audit). */
export function authorization(target: AdminTarget): Record<string, string> {
  return { Authorization: `Bearer ${target.key}`, "Calmsync-Actor": target.actor };
}

/** An admin API call; a refusal throws with the server's message. */
export async function adminCall(target: AdminTarget, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = {
    Authorization: `Bearer ${target.key}`,
    "Calmsync-Actor": target.actor,
    ...(init.body !== undefined ? { "Content-Type": "application/json" } : {}),
  };
  const response = await fetch(`${target.deploymentUrl}/api/admin/${path}`, {
    ...init,
    headers: { ...headers, ...(init.headers as Record<string, string> | undefined) },
  });
  if (!response.ok) {
    const body = (await response.json().catch(() => null)) as { code?: string; message?: string } | null;
    throw new AdminError(response.status, body?.code ?? "Error", body?.message ?? response.statusText);
  }
  return response;
}

export class AdminError extends Error {
  override name = "AdminError";
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}
