/**
 * The Worker: routes each request to its deployment's Durable Object.
 *
 * Deployment rule: `/api/...` is the deployment named "default";
 * `/d/<name>/api/...` is the deployment `<name>` (lowercase letters, digits
 * and dashes, at most 63). Point a client at `http://host/d/<name>` and it
 * appends `/api/...` itself.
 *
 * Requests are parsed and checked here (size, JSON, shape, nesting) so that
 * bad input costs the deployment object nothing.
 *
 * Security model: function routes and the sync socket are public (functions
 * decide what callers may do), and answer CORS for the origins in
 * `CORS_ORIGINS` (default any: nothing is authorised by cookies). Only JSON
 * bodies reach functions, so a page on another origin cannot send a "simple"
 * request without a preflight. `/api/status` tells anyone whether the
 * deployment is up; its counters and limits, knobs, compaction and creating
 * deployments need the admin key. Unknown deployment names answer 404 and
 * create nothing: the Worker asks the deployment directory, never the name's
 * own object (src/deployment-names.ts). Each client's HTTP function calls and
 * new sockets are limited per client (knobs clientCallRate,
 * clientSessionRate), past which it gets 429 with Retry-After.
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { bearerAuth } from "hono/bearer-auth";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import { HTTPException } from "hono/http-exception";
import { app as convexApp } from "../convex/_generated/modules.js";
import { defineDeployment, HTTP_ACTION_HEADER, type FunctionKind } from "./deployment/deployment.ts";
import { clientAddress } from "./sync/client-limits.ts";
export { SyncShard } from "./deployment/sync-shard.ts";
export { DeploymentDirectory } from "./deployment/directory.ts";
import { directoryStub } from "./deployment/directory.ts";
import { DeploymentNames } from "./deployment-names.ts";
import { BadRequestError, parseFunctionRequest } from "./protocol/http.ts";
import { devIssuerAllowed, isLocalConfiguration, type Env } from "./env.ts";
import { problem, stub, type AppEnv } from "./http-context.ts";
import { fileRoutes } from "./file-routes.ts";
import { snapshotRoutes } from "./snapshot-routes.ts";
import { SERVER_ERROR } from "./engine/index.ts";
import { isWebSocketUpgrade, refusalResponse, UPGRADE_REQUIRED } from "./deployment/sockets.ts";
import { SHARD_PIN_HEADER } from "./knobs/wire.ts";
import { MAX_REMEMBERED_DEPLOYMENTS, SHARD_COUNT_TTL_MS } from "./knobs/fixed.ts";

export const Deployment = defineDeployment(convexApp);

const DEFAULT_DEPLOYMENT = "default";
const DEPLOYMENT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const DEFAULT_MAX_REQUEST_BYTES = 1_048_576;

/** Which names exist, as this isolate knows: asked of the directory, never of the name's own object (src/deployment-names.ts). */
const deploymentNames = new DeploymentNames();

/**
 * Where each deployment is reached, as this isolate last told it: the URLs
 * `ctx.storage` hands out start with it. `CALMSYNC_PUBLIC_URL` names the
 * public origin when requests arrive at another one (behind a proxy).
 */
const toldBaseUrls = new Map<string, string>();

async function noteBaseUrl(c: Context<AppEnv>): Promise<void> {
  const name = c.get("deployment");
  const origin = (c.env.CALMSYNC_PUBLIC_URL ?? new URL(c.req.url).origin).replace(/\/+$/, "");
  const base = c.req.param("deployment" as never) === undefined ? origin : `${origin}/d/${name}`;
  if (toldBaseUrls.get(name) === base) return;
  await stub(c).noteBaseUrl(base);
  if (toldBaseUrls.size >= MAX_REMEMBERED_DEPLOYMENTS) toldBaseUrls.clear();
  toldBaseUrls.set(name, base);
}

/** The API of one deployment; mounted at `/api` and at `/d/:deployment/api`. */
const api = new Hono<AppEnv>();

/** Names the deployment (from `/d/:deployment`, else the default) and answers 404 for one that does not exist. */
const resolveDeployment = async (c: Context<AppEnv>, next: () => Promise<void>) => {
  const name = c.req.param("deployment" as never) ?? DEFAULT_DEPLOYMENT;
  if (!DEPLOYMENT_NAME.test(name)) {
    return problem(c, 400, "BadDeploymentName", `Deployment names are lowercase letters, digits and dashes (at most 63): ${JSON.stringify(name)}`);
  }
  c.set("deployment", name);
  // Creating a deployment is the one route that may name one that does not exist (it needs the admin key).
  const creating = c.req.method === "POST" && c.req.path.endsWith("/admin/deployment");
  const found = creating ? null : await deploymentNames.resolve(c.env, name);
  if (found && !found.exists) {
    const full = found.wildcardFull;
    const why = full
      ? `Deployment "${name}" does not exist, and "${full.pattern}" in DECLARED_DEPLOYMENTS has made its ${full.limit} deployments on first use (var WILDCARD_DEPLOYMENT_LIMIT)`
      : `Deployment "${name}" does not exist`;
    return problem(c, 404, "DeploymentNotFound", `${why}; an operator creates it with POST /d/${name}/api/admin/deployment`);
  }
  if (!creating) await noteBaseUrl(c);
  await next();
  return undefined;
};
api.use("*", resolveDeployment);

const NOT_JSON = Symbol("not JSON");

async function jsonBody(c: Context<AppEnv>): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    return NOT_JSON;
  }
}

const badJson = (c: Context<AppEnv>) => problem(c, 400, "BadJsonBody", "Request body is not valid JSON");

/** JSON only: a cross-origin page cannot send it without a CORS preflight (form posts are text/plain or form types). Null when it is JSON. */
function notJson(c: Context<AppEnv>, what: string): Response | null {
  if (/^application\/json\s*(;|$)/i.test(c.req.header("Content-Type") ?? "")) return null;
  return problem(c, 415, "UnsupportedMediaType", `${what} take a JSON body: send "Content-Type: application/json"`);
}

const functionRoute = (kind: FunctionKind) => async (c: Context<AppEnv>) => {
  const refused = notJson(c, "Function calls");
  if (refused) return refused;
  const body = await jsonBody(c);
  if (body === NOT_JSON) return badJson(c);
  try {
    const { path, args } = parseFunctionRequest(body);
    const response = await stub(c).run(
      kind,
      path,
      args,
      c.get("requestId"),
      c.req.header("Authorization") ?? null,
      c.req.header("Idempotency-Key") ?? null,
      clientAddress(c.req.raw.headers),
    );
    if (response.status === "unauthenticated") return problem(c, 401, response.code, response.message);
    if (response.status === "rateLimited") return refusalResponse(response);
    return c.json(response);
  } catch (error) {
    if (error instanceof BadRequestError) return problem(c, error.status, error.code, error.message);
    throw error;
  }
};

const limitBody = bodyLimit({
  maxSize: DEFAULT_MAX_REQUEST_BYTES,
  onError: (c) => problem(c as Context<AppEnv>, 413, "RequestTooLarge", `Request body is larger than ${DEFAULT_MAX_REQUEST_BYTES} bytes`),
});

api.post("/query", limitBody, functionRoute("query"));
api.post("/mutation", limitBody, functionRoute("mutation"));
api.post("/action", limitBody, functionRoute("action"));
// Uploads (POST /storage/upload?token=) and downloads (GET /storage/<id>) of files, streamed here (src/file-routes.ts).
api.route("/storage", fileRoutes);
// Health only: counters and limits are for the operator (/admin/status).
api.get("/status", async (c) => c.json(await stub(c).health()));
/**
 * How many sync shards each deployment has (its knob `syncShards`), asked at
 * most every `SHARD_COUNT_TTL_MS` per isolate (and at once by the isolate
 * that changed it): a change spreads new sockets soon after and moves nobody.
 */
const shardCounts = new Map<string, { count: number; at: number }>();

async function syncShardCount(c: Context<AppEnv>): Promise<number> {
  const name = c.get("deployment");
  const known = shardCounts.get(name);
  if (known && Date.now() - known.at < SHARD_COUNT_TTL_MS) return known.count;
  const count = await stub(c).syncShards();
  if (shardCounts.size >= MAX_REMEMBERED_DEPLOYMENTS) shardCounts.clear();
  shardCounts.set(name, { count, at: Date.now() });
  return count;
}

// The official client connects to `<url>/api/<its version>/sync`; any version is accepted.
// With sync shards, a new socket goes to one at random (no central router; docs/SHARDS.md).
api.get("/:clientVersion/sync", async (c) => {
  if (!isWebSocketUpgrade(c.req.raw)) return problem(c, UPGRADE_REQUIRED.status, UPGRADE_REQUIRED.code, UPGRADE_REQUIRED.message);
  const shards = await syncShardCount(c);
  // The object takes this header as "an HTTP action, from the Worker": a client must not be able to say so.
  const upgrade = new Request(c.req.raw);
  upgrade.headers.delete(HTTP_ACTION_HEADER);
  if (shards <= 1) return stub(c).fetch(upgrade);
  // Local benchmarks may name the shard (a flood on one, a quiet client on another).
  const pinned = isLocalConfiguration(c.env) ? Number(c.req.header(SHARD_PIN_HEADER) ?? NaN) : NaN;
  const index = Number.isInteger(pinned) && pinned >= 0 ? pinned % shards : Math.floor(Math.random() * shards);
  const shard = `${c.get("deployment")}/shard-${index}`;
  return c.env.SYNC_SHARDS.getByName(shard).fetch(upgrade);
});

// Local development sign-in: a short-lived token for a name from the dev issuer (src/engine/auth/dev-issuer.ts).
// Only the local configuration has it, and only for requests to a loopback address.
api.post("/auth/dev-token", limitBody, async (c) => {
  if (!devIssuerAllowed(c.env, c.req.url)) {
    return problem(
      c,
      403,
      "DevIssuerRefused",
      "The development issuer signs tokens only under `wrangler dev` on a loopback address; deployed environments sign in with the providers in convex/auth.config.ts",
    );
  }
  // Same origin only: otherwise any page a developer visits could mint a token from their local server.
  const origin = c.req.header("Origin");
  if (origin !== undefined && origin !== new URL(c.req.url).origin) {
    return problem(c, 403, "DevIssuerRefused", `The development issuer answers only pages of its own origin (${new URL(c.req.url).origin}), not ${origin}`);
  }
  const refused = notJson(c, "Development sign-in requests");
  if (refused) return refused;
  const body = await jsonBody(c);
  const name = typeof body === "object" && body !== null ? (body as { name?: unknown }).name : undefined;
  if (typeof name !== "string" || name.trim() === "" || name.length > 64)
    return problem(c, 400, "BadRequestBody", 'Body must be {"name": "<1 to 64 characters>"}');
  return c.json(await stub(c).mintDevToken(name.trim()));
});

api.use("/admin/*", async (c, next) => {
  const key = c.env.ADMIN_KEY;
  if (!key) {
    return problem(
      c,
      403,
      "AdminKeyNotConfigured",
      "Admin routes are disabled until ADMIN_KEY is set: `wrangler secret put ADMIN_KEY` in production, or ADMIN_KEY=... in .dev.vars (or `wrangler dev --var ADMIN_KEY:...`) locally",
    );
  }
  return bearerAuth({ token: key })(c as never, next);
});
api.get("/admin/status", async (c) => c.json(await stub(c).status()));
// The dashboard's charts: per-second samples of the last minutes (cheap to read: no query runs).
api.get("/admin/metrics", async (c) => c.json({ samples: await stub(c).metricsHistory() }));
api.post("/admin/deployment", async (c) => {
  const name = c.get("deployment");
  const { created } = await stub(c).create();
  // Recorded after the object exists: a failure here is mended by repeating the request (create is idempotent).
  await directoryStub(c.env).record(name);
  deploymentNames.created(name);
  return c.json({ deployment: name, created }, created ? 201 : 200);
});
// Snapshot export (GET /admin/export) and import (POST /admin/import), streamed (src/snapshot-routes.ts, docs/SNAPSHOTS.md).
api.route("/admin", snapshotRoutes);
// Compacts every search partition with a non-empty log now. Not a commit: invalidates nothing.
api.post("/admin/compact", async (c) => c.json(await stub(c).compactNow()));
api.get("/admin/knobs", async (c) => c.json(await stub(c).knobReport()));
api.patch("/admin/knobs", limitBody, async (c) => {
  const body = await jsonBody(c);
  if (body === NOT_JSON) return badJson(c);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return problem(c, 400, "BadRequestBody", 'Body must be an object of knob names to values, e.g. {"refreshQueueLimit": 100}');
  }
  const result = await stub(c).setKnobs(body as Record<string, unknown>);
  // This isolate asks again at once; the others within SHARD_COUNT_TTL_MS.
  if (result.ok && result.changes.some((change) => change.name === "syncShards")) shardCounts.delete(c.get("deployment"));
  return result.ok ? c.json(result) : problem(c, 400, "InvalidKnob", result.error);
});

// The deployment's environment variables (process.env in its functions). Values are shown only by GET of one name.
// `Calmsync-Actor` names who makes a change for the audit (`npm run env` sends user@host).
const actorOf = (c: Context<AppEnv>) => c.req.header("Calmsync-Actor") ?? "";
api.get("/admin/env", async (c) => c.json(await stub(c).environmentList()));
api.get("/admin/env/:name", async (c) => {
  const name = c.req.param("name");
  const value = await stub(c).environmentValue(name);
  return value === null
    ? problem(c, 404, "EnvironmentVariableNotFound", `This deployment sets no variable ${name} (functions may still see a Worker var of that name)`)
    : c.json({ name, value });
});
api.put("/admin/env/:name", limitBody, async (c) => {
  const refused = notJson(c, "Environment variable changes");
  if (refused) return refused;
  const body = await jsonBody(c);
  if (body === NOT_JSON) return badJson(c);
  if (typeof body !== "object" || body === null || !("value" in body)) return problem(c, 400, "BadRequestBody", 'Body must be {"value": "<string>"}');
  const result = await stub(c).changeEnvironment(c.req.param("name"), (body as { value: unknown }).value ?? null, actorOf(c));
  return result.ok ? c.json(result.change) : problem(c, 400, "InvalidEnvironmentVariable", result.error);
});
api.delete("/admin/env/:name", async (c) => {
  const name = c.req.param("name");
  const result = await stub(c).changeEnvironment(name, undefined, actorOf(c));
  if (!result.ok) return problem(c, 400, "InvalidEnvironmentVariable", result.error);
  return result.change ? c.json(result.change) : problem(c, 404, "EnvironmentVariableNotFound", `This deployment sets no variable ${name}`);
});
// A live tail of every function run (NDJSON; ?since=<seq>&function=&level=&follow=0), streamed from the deployment object.
api.get("/admin/logs", async (c) => stub(c).logs(new URL(c.req.url).search));

/**
 * The app's HTTP actions (`convex/http.ts`), at `/http/<path>` and
 * `/d/:deployment/http/<path>`. The action sees the request at `<path>`, as
 * on Convex's `.convex.site`; CORS and methods are the app's own business.
 */
const httpActions = new Hono<AppEnv>();
httpActions.use("*", resolveDeployment);
httpActions.all("*", async (c) => {
  const url = new URL(c.req.url);
  url.pathname = url.pathname.replace(/^(\/d\/[^/]+)?\/http(?=\/|$)/, "") || "/";
  const forwarded = new Request(url, c.req.raw);
  forwarded.headers.set(HTTP_ACTION_HEADER, "1");
  return stub(c).fetch(forwarded);
});

/**
 * The deployment's public keys, at CONVEX_CLOUD_URL's `/.well-known/jwks.json` as on Convex: anyone may
 * verify what its mutations signed with `ctx.auth.signJwt` (Convex Auth 2.0.0's access tokens).
 */
const wellKnown = new Hono<AppEnv>();
wellKnown.use("*", resolveDeployment);
wellKnown.get("/jwks.json", async (c) => c.json(await stub(c).jwks()));

const app = new Hono<AppEnv>();
app.use("*", requestId());
app.route("/.well-known", wellKnown);
app.route("/d/:deployment/.well-known", wellKnown);
// Before the API's CORS handling: HTTP actions answer preflights and set headers themselves.
app.route("/http", httpActions);
app.route("/d/:deployment/http", httpActions);
app.use(
  "*",
  cors({
    origin: (origin, c: Context<AppEnv>) => {
      const allowed = (c.env.CORS_ORIGINS ?? "*").split(",").map((o) => o.trim());
      return allowed.includes("*") ? "*" : allowed.includes(origin) ? origin : null;
    },
    allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    allowHeaders: ["Content-Type", "Authorization", "Convex-Client", "Idempotency-Key", "Calmsync-Actor"],
    maxAge: 86_400,
  }),
);
app.route("/api", api);
app.route("/d/:deployment/api", api);
app.notFound((c) => problem(c, 404, "NotFound", `No route for ${c.req.method} ${new URL(c.req.url).pathname}`));
app.onError((error, c) => {
  if (error instanceof HTTPException) return error.getResponse();
  console.error(`[${c.get("requestId")}] unhandled:`, error);
  return c.json({ code: "InternalServerError", message: `[Request ID: ${c.get("requestId")}] ${SERVER_ERROR}` }, 500);
});

export default app satisfies ExportedHandler<Env>;
