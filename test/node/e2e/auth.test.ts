/**
 * Sign-in end to end: `wrangler dev` with an OpenID Connect provider that
 * this test serves on loopback (discovery and keys), the official clients
 * (`ConvexClient.setAuth`, `ConvexHttpClient.setAuth`) and raw sockets for
 * the exact `AuthError`s.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import WebSocket from "ws";
import { startDevServer, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";
import { adminStatus, createDeployment, setKnobs } from "../../../scripts/lib/admin.ts";
import { until } from "../../../scripts/lib/until.ts";

const AUDIENCE = "calmsync-e2e";
let issuer = "";
let issuerServer: Server;
let server: DevServer;
const requests = { discovery: 0, jwks: 0 };
let signingKey: CryptoKey;
let strangerKey: CryptoKey;

beforeAll(async () => {
  ({ privateKey: signingKey } = await generateKeyPair("RS256"));
  const published = await generateKeyPair("RS256", { extractable: true });
  signingKey = published.privateKey;
  ({ privateKey: strangerKey } = await generateKeyPair("RS256"));
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(published.publicKey)), kid: "e2e-1", alg: "RS256", use: "sig" }] });
  issuerServer = createServer((request, response) => {
    if (request.url === "/.well-known/openid-configuration") {
      requests.discovery++;
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    } else if (request.url === "/jwks") {
      requests.jwks++;
      response.writeHead(200, { "content-type": "application/json" }).end(jwks);
    } else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => issuerServer.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(issuerServer.address() as AddressInfo).port}`;
  server = await startDevServer({ vars: { AUTH_OIDC_DOMAIN: issuer, AUTH_OIDC_APPLICATION_ID: AUDIENCE } });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  issuerServer?.close();
});

/** A token from the test's provider; `overrides` make the bad ones. */
async function token(subject: string, overrides: { key?: CryptoKey; kid?: string; audience?: string; expiresInSeconds?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ name: subject.toUpperCase(), email: `${subject}@example.com`, email_verified: true })
    .setProtectedHeader({ alg: "RS256", kid: overrides.kid ?? "e2e-1" })
    .setIssuer(issuer)
    .setAudience(overrides.audience ?? AUDIENCE)
    .setSubject(subject)
    .setIssuedAt(now - 120)
    .setExpirationTime(now + (overrides.expiresInSeconds ?? 3_600))
    .sign(overrides.key ?? signingKey);
}

const options = { skipConvexDeploymentUrlCheck: true, webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket, logger: false } as const;

describe("ConvexClient.setAuth", () => {
  it("is confirmed, and queries, mutations and actions see the identity with Convex's field names", async () => {
    const client = new ConvexClient(server.url, options);
    const changes: boolean[] = [];
    let fetches = 0;
    client.setAuth(
      async () => {
        fetches++;
        return token("ann");
      },
      (isAuthenticated) => changes.push(isAuthenticated),
    );
    try {
      let viewer: { name: string; tokenIdentifier: string } | null | undefined;
      client.onUpdate(anyApi.users!.viewer!, {}, (value: typeof viewer) => (viewer = value));
      await until(() => viewer?.name === "ANN", "the viewer query as ann");
      expect(viewer!.tokenIdentifier).toBe(`${issuer}|ann`);
      await until(() => changes.includes(true), "onChange(true)");
      // Confirmed, then at once asked for a fresh token (the client's lifecycle).
      expect(fetches).toBeGreaterThanOrEqual(2);
      await client.mutation(anyApi.messages!.send!, { chatId: "auth", author: "pretender", body: "hello" });
      expect(await client.query(anyApi.messages!.list!, { chatId: "auth" })).toMatchObject([{ author: "ANN", body: "hello" }]);
      expect(await client.action(anyApi.users!.greet!, {})).toBe("Hello, ANN");
      expect(changes).not.toContain(false);
    } finally {
      await client.close();
    }
  });

  it("stays signed in on one socket while short-lived dev tokens are refreshed (no expiry, no reconnect)", async () => {
    const deployment = await createDeployment(server.url, "auth-refresh");
    await setKnobs(deployment, { devTokenTtlMs: 15_000 });
    let sockets = 0;
    class CountingWebSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols);
        sockets++;
      }
    }
    const client = new ConvexClient(deployment, { ...options, webSocketConstructor: CountingWebSocket as unknown as typeof globalThis.WebSocket });
    let minted = 0;
    client.setAuth(async () => {
      minted++;
      const response = await fetch(`${deployment}/api/auth/dev-token`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: "rita" }),
      });
      return ((await response.json()) as { token: string }).token;
    });
    try {
      let viewer: { name: string } | null | undefined;
      client.onUpdate(anyApi.users!.viewer!, {}, (value: typeof viewer) => (viewer = value));
      await until(() => viewer?.name === "rita", "signed in as rita");
      // Past the first token's life and clock tolerance (15 s + 5 s): refreshed every ~5 s meanwhile.
      await new Promise((r) => setTimeout(r, 21_000));
      await client.mutation(anyApi.messages!.send!, { chatId: "refresh", author: "x", body: "still me" });
      expect(await client.query(anyApi.messages!.list!, { chatId: "refresh" })).toMatchObject([{ author: "rita" }]);
      expect(sockets).toBe(1);
      expect(minted).toBeGreaterThanOrEqual(4);
    } finally {
      await client.close();
    }
  }, 60_000);

  it("signs in with the local development issuer", async () => {
    const client = new ConvexClient(server.url, options);
    const changes: boolean[] = [];
    client.setAuth(
      async () => {
        const response = await fetch(`${server.url}/api/auth/dev-token`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ name: "dev-dora" }),
        });
        return ((await response.json()) as { token: string }).token;
      },
      (isAuthenticated) => changes.push(isAuthenticated),
    );
    try {
      let viewer: { name: string } | null | undefined;
      client.onUpdate(anyApi.users!.viewer!, {}, (value: typeof viewer) => (viewer = value));
      await until(() => viewer?.name === "dev-dora" && changes.includes(true), "signed in as dev-dora");
    } finally {
      await client.close();
    }
  });
});

const BAD_TOKENS: [string, () => Promise<string>, RegExp][] = [
  ["signed by an unknown key", () => token("eve", { key: strangerKey, kid: "e2e-stranger" }), /key id is not among the provider's keys/],
  ["signed by another key under a known key id", () => token("eve", { key: strangerKey }), /signature/],
  ["for another audience", () => token("eve", { audience: "someone-else" }), /No auth provider found matching the given token/],
  ["expired", () => token("eve", { expiresInSeconds: -60 }), /expired/],
];

describe("refused tokens", () => {
  it.each(BAD_TOKENS)("a token %s gets AuthError (authUpdateAttempted, baseVersion 0) before any function runs", async (label, makeToken, message) => {
    const deployment = await createDeployment(server.url, `auth-refused-${BAD_TOKENS.findIndex(([l]) => l === label)}`);
    const fetched = { ...requests };
    const ws = new WebSocket(`${deployment.replace(/^http/, "ws")}/api/1.49.0/sync`);
    const received: { type: string; [key: string]: unknown }[] = [];
    let closed = false;
    ws.on("message", (data) => received.push(JSON.parse(String(data))));
    ws.on("close", () => (closed = true));
    await new Promise((resolve) => ws.once("open", resolve));
    // What the official client sends on open with auth: Connect, Authenticate, its query set.
    ws.send(JSON.stringify({ type: "Connect", sessionId: crypto.randomUUID(), connectionCount: 0, lastCloseReason: null, clientTs: Date.now() }));
    ws.send(JSON.stringify({ type: "Authenticate", tokenType: "User", value: await makeToken(), baseVersion: 0 }));
    ws.send(
      JSON.stringify({
        type: "ModifyQuerySet",
        baseVersion: 0,
        newVersion: 1,
        modifications: [{ type: "Add", queryId: 0, udfPath: "users:viewer", args: [{}] }],
      }),
    );
    ws.send(JSON.stringify({ type: "Mutation", requestId: 0, udfPath: "messages:send", args: [{ chatId: "x", author: "eve", body: "sneaky" }] }));
    await until(() => closed, "the socket to close");
    expect(received).toEqual([{ type: "AuthError", error: expect.stringMatching(message), baseVersion: 0, authUpdateAttempted: true }]);
    const status = await adminStatus(deployment);
    expect(status).toMatchObject({ queryExecutions: 0, mutationExecutions: 0, commits: 0 });

    // The official client gives up after its retries and reports signed out; its query never saw a user.
    const client = new ConvexClient(deployment, options);
    const changes: boolean[] = [];
    const viewers: unknown[] = [];
    client.setAuth(makeToken, (isAuthenticated) => changes.push(isAuthenticated));
    client.onUpdate(anyApi.users!.viewer!, {}, (value: unknown) => viewers.push(value));
    try {
      await until(() => changes.includes(false), "onChange(false)", 30_000);
      expect(changes).toEqual([false]);
      expect(viewers.every((viewer) => viewer === null)).toBe(true);
      // A new deployment fetches discovery and keys once (none for a token no provider takes); an unknown key id
      // refetches keys only when they are older than the cooldown (knob authKeyMissCooldownMs), not on every retry.
      const once = label === "for another audience" ? 0 : 1;
      expect({ discovery: requests.discovery - fetched.discovery, jwks: requests.jwks - fetched.jwks }).toEqual({ discovery: once, jwks: once });
    } finally {
      await client.close();
    }
  });
});

describe("ConvexHttpClient.setAuth", () => {
  it("works on queries, mutations and actions, and a refused token fails the call", async () => {
    // The default deployment has the provider's keys from the first test: checking these tokens fetches nothing.
    const fetched = { ...requests };
    const client = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
    client.setAuth(await token("bo"));
    expect(await client.query(anyApi.users!.viewer!, {})).toMatchObject({ name: "BO", tokenIdentifier: `${issuer}|bo` });
    await client.mutation(anyApi.messages!.send!, { chatId: "http-auth", author: "pretender", body: "over http" });
    expect(await client.query(anyApi.messages!.list!, { chatId: "http-auth" })).toMatchObject([{ author: "BO" }]);
    expect(await client.action(anyApi.users!.greet!, {})).toBe("Hello, BO");
    client.clearAuth();
    expect(await client.action(anyApi.users!.greet!, {})).toBe("Hello, stranger");
    client.setAuth(await token("bo", { expiresInSeconds: -60 }));
    await expect(client.query(anyApi.users!.viewer!, {})).rejects.toThrow(/expired/);
    expect(requests).toEqual(fetched);
  });
});
