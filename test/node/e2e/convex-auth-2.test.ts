/**
 * Convex Auth 2.0.0 end to end: the app in test/fixtures/convex-auth-2.0.0/
 * (the core component, the password and username components, the
 * username + password method, `convexAuthProvider()` in auth.config.ts),
 * served by `wrangler dev` and driven with the official clients. Its access
 * tokens are signed by the deployment itself (`ctx.auth.signJwt` in the core
 * component's mutation) and verified against the deployment's own
 * `/.well-known/jwks.json`: sign up, sign in, wrong password and unknown
 * user refused, `getAuthUserId` in a query and a mutation (HTTP and socket),
 * refresh, sign out. No keys to set: the deployment makes its own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { decodeJwt, decodeProtectedHeader } from "jose";
import WebSocket from "ws";
import { startDevServer, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";
import { until } from "../../../scripts/lib/until.ts";

const APP = resolve(import.meta.dirname, "../../fixtures/convex-auth-2.0.0/convex");
const api = anyApi;
let server: DevServer;

type Tokens = { accessToken: string; refreshToken: string; userId: string };
type Result = { status: "complete"; tokens: Tokens } | { status: "error"; userError: { error: string } };

beforeAll(async () => {
  server = await startDevServer({ app: APP });
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

const client = () => new ConvexHttpClient(server.url, { skipUrlCheck: true, logger: false } as never);
const signUp = (username: string, password: string) => client().mutation(api.auth!.signUpWithUsernamePassword!, { username, password }) as Promise<Result>;
const signIn = (username: string, password: string) => client().mutation(api.auth!.signInWithUsernamePassword!, { username, password }) as Promise<Result>;
function tokensOf(result: Result): Tokens {
  if (result.status !== "complete") throw new Error(`sign-in failed: ${JSON.stringify(result.userError)}`);
  return result.tokens;
}
function as(token: string): ConvexHttpClient {
  const signedIn = client();
  signedIn.setAuth(token);
  return signedIn;
}

describe("Convex Auth 2.0.0 (components, username + password)", () => {
  it("signs up; the access token is the deployment's own (ES256, issuer CONVEX_CLOUD_URL/components/auth, keys at /.well-known/jwks.json), and names the user to getAuthUserId", async () => {
    const tokens = tokensOf(await signUp("ann", "correct horse battery"));
    expect(decodeProtectedHeader(tokens.accessToken)).toMatchObject({ alg: "ES256", kid: expect.any(String) });
    expect(decodeJwt(tokens.accessToken)).toMatchObject({ iss: `${server.url}/components/auth`, aud: "convex-auth" });
    const jwks = (await (await fetch(`${server.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string; kty: string }[] };
    expect(jwks.keys).toMatchObject([{ kty: "EC", kid: decodeProtectedHeader(tokens.accessToken).kid }]);
    const ann = as(tokens.accessToken);
    expect(await ann.query(api.users!.viewer!, {})).toMatchObject({ _id: tokens.userId });
    await ann.mutation(api.messages!.send!, { body: "hello from ann" });
    expect(await client().query(api.messages!.list!, {})).toMatchObject([{ body: "hello from ann", userId: tokens.userId }]);
  });

  it("refuses the anonymous caller where the app requires a user", async () => {
    expect(await client().query(api.users!.viewer!, {})).toBeNull();
    await expect(client().mutation(api.messages!.send!, { body: "anonymous" })).rejects.toThrow(/Not signed in/);
  });

  it("signs in with the right password and refuses a wrong one, an unknown user or a taken username", async () => {
    const bob = tokensOf(await signUp("bob", "bobs long password"));
    const again = tokensOf(await signIn("bob", "bobs long password"));
    expect(await as(again.accessToken).query(api.users!.viewer!, {})).toMatchObject({ _id: bob.userId });
    expect(await signIn("bob", "not bobs password")).toMatchObject({ status: "error", userError: { error: "INVALID_CREDENTIALS" } });
    expect(await signIn("nobody", "whatever password")).toMatchObject({ status: "error", userError: { error: "USER_NOT_FOUND" } });
    expect(await signUp("bob", "another long password")).toMatchObject({ status: "error" });
  });

  it("refreshes a session (the refresh token rotates), and signing out ends it", async () => {
    const first = tokensOf(await signUp("cy", "cys long password"));
    const renewed = (await client().mutation(api.auth!.refreshSession!, { refreshToken: first.refreshToken })) as { kind: string; tokens: Tokens };
    expect(renewed).toMatchObject({ kind: "rotated", tokens: { accessToken: expect.any(String), refreshToken: expect.any(String) } });
    expect(renewed.tokens.refreshToken).not.toBe(first.refreshToken);
    const cy = as(renewed.tokens.accessToken);
    expect(await cy.query(api.users!.viewer!, {})).toMatchObject({ _id: first.userId });
    expect(await cy.query(api.auth!.isAuthenticated!, {})).toBe(true);
    await cy.mutation(api.auth!.signOut!, { refreshToken: renewed.tokens.refreshToken });
    expect(await client().mutation(api.auth!.refreshSession!, { refreshToken: renewed.tokens.refreshToken })).toEqual({ kind: "noSession" });
    // The token still verifies until it expires, but its session is gone, so it names nobody.
    expect(await cy.query(api.users!.viewer!, {})).toBeNull();
  });

  it("authenticates a live subscription over the socket (ConvexClient.setAuth) with the library's token", async () => {
    const tokens = tokensOf(await signUp("dee", "dees long password"));
    const live = new ConvexClient(server.url, {
      skipConvexDeploymentUrlCheck: true,
      webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
      logger: false,
    });
    const authenticated: boolean[] = [];
    live.setAuth(
      async () => tokens.accessToken,
      (isAuthenticated) => authenticated.push(isAuthenticated),
    );
    try {
      let viewer: { _id?: string } | null | undefined;
      live.onUpdate(api.users!.viewer!, {}, (value: typeof viewer) => (viewer = value));
      await until(() => viewer?._id === tokens.userId, "the socket's viewer query to name dee");
      await live.mutation(api.messages!.send!, { body: "live from dee" });
      expect(authenticated).toEqual([true]);
    } finally {
      await live.close();
    }
  });
});

describe("Convex Auth 2.0.0 behind a proxy (CALMSYNC_PUBLIC_URL names an origin this host cannot reach)", () => {
  let proxied: DevServer;
  beforeAll(async () => {
    proxied = await startDevServer({ app: APP, vars: { CALMSYNC_PUBLIC_URL: "https://auth2.calmsync.invalid" } });
  }, 120_000);
  afterAll(async () => {
    await proxied?.stop();
  });

  it("issues tokens for the public URL and verifies them with its own keys, without fetching that URL", async () => {
    const http = new ConvexHttpClient(proxied.url, { skipUrlCheck: true, logger: false } as never);
    const result = (await http.mutation(api.auth!.signUpWithUsernamePassword!, { username: "eve", password: "eves long password" })) as Result;
    const tokens = tokensOf(result);
    expect(decodeJwt(tokens.accessToken)).toMatchObject({ iss: "https://auth2.calmsync.invalid/components/auth" });
    http.setAuth(tokens.accessToken);
    expect(await http.query(api.users!.viewer!, {})).toMatchObject({ _id: tokens.userId });
  });
});
