/**
 * Convex Auth (`@convex-dev/auth` 0.0.95, Password provider) end to end: the
 * app in test/fixtures/convex-auth-0.0.95/, written as the library's
 * documentation shows and left as it is, served by `wrangler dev`, its keys
 * made by `npm run auth:keys`'s generator and set through the admin API, and
 * driven with the official clients: sign up, sign in, a wrong password
 * refused, `getAuthUserId` in a query and a mutation (over HTTP and over the
 * socket), token refresh, sign out.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { decodeJwt } from "jose";
import WebSocket from "ws";
import { startDevServer, TEST_ADMIN_KEY, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";
import { adminCall } from "../../../scripts/lib/admin.ts";
import { generateConvexAuthKeys } from "../../../scripts/lib/auth-keys.ts";
import { until } from "../../../scripts/lib/until.ts";

const APP = resolve(import.meta.dirname, "../../fixtures/convex-auth-0.0.95/convex");
const api = anyApi;
let server: DevServer;

type Tokens = { token: string; refreshToken: string } | null;

/** The app on `wrangler dev`, with a fresh key pair set as the deployment's variables (what `npm run auth:keys -- --set` does). */
async function startApp(vars: Record<string, string> = {}): Promise<DevServer> {
  const started = await startDevServer({ app: APP, vars });
  const target = { deploymentUrl: started.url, key: TEST_ADMIN_KEY, actor: "convex-auth-e2e" };
  for (const [name, value] of Object.entries(await generateConvexAuthKeys())) {
    await adminCall(target, `env/${name}`, { method: "PUT", body: JSON.stringify({ value }) });
  }
  return started;
}

beforeAll(async () => {
  server = await startApp();
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

const client = (url = server.url) => new ConvexHttpClient(url, { skipUrlCheck: true, logger: false } as never);

async function signIn(params: Record<string, string>, url = server.url): Promise<Tokens> {
  const result = (await client(url).action(api.auth!.signIn!, { provider: "password", params })) as { tokens?: Tokens };
  return result.tokens ?? null;
}

async function refresh(refreshToken: string): Promise<Tokens> {
  const result = (await client().action(api.auth!.signIn!, { refreshToken })) as { tokens?: Tokens };
  return result.tokens ?? null;
}

function as(token: string, url = server.url): ConvexHttpClient {
  const signedIn = client(url);
  signedIn.setAuth(token);
  return signedIn;
}

describe("Convex Auth 0.0.95 with the Password provider", () => {
  it("publishes its OpenID configuration and keys at the deployment's site URL, which functions see as CONVEX_SITE_URL", async () => {
    const discovery = (await (await fetch(`${server.url}/http/.well-known/openid-configuration`)).json()) as { issuer: string; jwks_uri: string };
    expect(discovery.issuer).toBe(`${server.url}/http`);
    expect(discovery.jwks_uri).toBe(`${server.url}/http/.well-known/jwks.json`);
    const jwks = (await (await fetch(discovery.jwks_uri)).json()) as { keys: { kty: string }[] };
    expect(jwks.keys).toMatchObject([{ kty: "RSA", use: "sig" }]);
  });

  it("signs up, and the token names the user to queries and mutations (getAuthUserId)", async () => {
    const tokens = await signIn({ email: "ann@example.com", password: "correct horse 1", flow: "signUp" });
    expect(tokens).toMatchObject({ token: expect.any(String), refreshToken: expect.any(String) });
    expect(decodeJwt(tokens!.token)).toMatchObject({ iss: `${server.url}/http`, aud: "convex" });
    const ann = as(tokens!.token);
    expect(await ann.query(api.users!.viewer!, {})).toMatchObject({ email: "ann@example.com" });
    await ann.mutation(api.messages!.send!, { body: "hello from ann" });
    expect(await client().query(api.messages!.list!, {})).toMatchObject([{ body: "hello from ann", author: "ann@example.com" }]);
  });

  it("refuses the anonymous caller where the app requires a user", async () => {
    expect(await client().query(api.users!.viewer!, {})).toBeNull();
    await expect(client().mutation(api.messages!.send!, { body: "anonymous" })).rejects.toThrow(/Not signed in/);
  });

  it("signs in with the right password and refuses a wrong one or a second sign-up", async () => {
    await signIn({ email: "bob@example.com", password: "bobs password", flow: "signUp" });
    const tokens = await signIn({ email: "bob@example.com", password: "bobs password", flow: "signIn" });
    expect(await as(tokens!.token).query(api.users!.viewer!, {})).toMatchObject({ email: "bob@example.com" });
    await expect(signIn({ email: "bob@example.com", password: "not bobs password", flow: "signIn" })).rejects.toThrow(/InvalidSecret/);
    await expect(signIn({ email: "nobody@example.com", password: "whatever 123", flow: "signIn" })).rejects.toThrow(/InvalidAccountId/);
    await expect(signIn({ email: "bob@example.com", password: "another password", flow: "signUp" })).rejects.toThrow(/already exists/);
  });

  it("refreshes a session with its refresh token, and signing out ends it", async () => {
    const first = await signIn({ email: "cy@example.com", password: "cys password", flow: "signUp" });
    const renewed = await refresh(first!.refreshToken);
    expect(renewed).toMatchObject({ token: expect.any(String), refreshToken: expect.any(String) });
    expect(renewed!.refreshToken).not.toBe(first!.refreshToken);
    expect(await as(renewed!.token).query(api.users!.viewer!, {})).toMatchObject({ email: "cy@example.com" });
    await as(renewed!.token).action(api.auth!.signOut!, {});
    expect(await refresh(renewed!.refreshToken)).toBeNull();
  });

  it("authenticates a live subscription over the socket (ConvexClient.setAuth) with the library's token", async () => {
    const tokens = await signIn({ email: "dee@example.com", password: "dees password", flow: "signUp" });
    const live = new ConvexClient(server.url, {
      skipConvexDeploymentUrlCheck: true,
      webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
      logger: false,
    });
    const authenticated: boolean[] = [];
    live.setAuth(
      async () => tokens!.token,
      (isAuthenticated) => authenticated.push(isAuthenticated),
    );
    try {
      let viewer: { email?: string } | null | undefined;
      live.onUpdate(api.users!.viewer!, {}, (value: typeof viewer) => (viewer = value));
      await until(() => viewer?.email === "dee@example.com", "the socket's viewer query to name dee");
      await live.mutation(api.messages!.send!, { body: "live from dee" });
      expect(authenticated).toEqual([true]);
    } finally {
      await live.close();
    }
  });
});

describe("Convex Auth behind a proxy (CALMSYNC_PUBLIC_URL names an origin this host cannot reach)", () => {
  let proxied: DevServer;
  beforeAll(async () => {
    proxied = await startApp({ CALMSYNC_PUBLIC_URL: "https://auth.calmsync.invalid" });
  }, 120_000);
  afterAll(async () => {
    await proxied?.stop();
  });

  it("issues tokens for the public site URL and verifies them with keys its own HTTP actions serve, without fetching that URL", async () => {
    const tokens = await signIn({ email: "eve@example.com", password: "eves password", flow: "signUp" }, proxied.url);
    expect(decodeJwt(tokens!.token)).toMatchObject({ iss: "https://auth.calmsync.invalid/http" });
    expect(await as(tokens!.token, proxied.url).query(api.users!.viewer!, {})).toMatchObject({ email: "eve@example.com" });
  });
});
