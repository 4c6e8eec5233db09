/**
 * Sign-in inside workerd: the local dev issuer (and where it is refused),
 * `Authenticate` over the socket (ordering, confirmation by identity
 * version, refusals), identity-keyed query instances only for queries that
 * read the identity, identities across hibernation, and HTTP Bearer tokens.
 */
import { describe, expect, it } from "vitest";
import { evictDurableObject } from "cloudflare:test";
import { ProtocolClient } from "./protocol-client.ts";
import { bindings, fresh, status, worker } from "./helpers.ts";

async function devToken(deployment: string, name: string, host = "127.0.0.1"): Promise<Response> {
  return worker.fetch(`http://${host}/d/${deployment}/api/auth/dev-token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name }),
  });
}

async function tokenFor(deployment: string, name: string): Promise<string> {
  const response = await devToken(deployment, name);
  expect(response.status).toBe(200);
  return ((await response.json()) as { token: string }).token;
}

/** Opens a session signed in as `token` (Authenticate right after Connect, as the official client does). */
async function signedIn(deployment: string, token: string): Promise<ProtocolClient> {
  const client = await ProtocolClient.open(deployment);
  client.send({ type: "Authenticate", tokenType: "User", value: token, baseVersion: 0 });
  return client;
}

const authErrors = (client: ProtocolClient) => client.messages.filter((m) => m.type === "AuthError");

describe("the local development issuer", () => {
  it("signs only for requests to a loopback address", async () => {
    const deployment = fresh("dev-issuer");
    for (const host of ["127.0.0.1", "localhost"]) expect((await devToken(deployment, "alice", host)).status).toBe(200);
    for (const host of ["chat.example.com", "calmsync.test", "10.0.0.8"]) {
      const refused = await devToken(deployment, "alice", host);
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as { code: string }).code).toBe("DevIssuerRefused");
    }
  });
});

describe("Authenticate over the socket", () => {
  it("handles the socket's next messages only after the token is checked, and confirms it with the identity version", async () => {
    const deployment = fresh("auth-order");
    const client = await signedIn(deployment, await tokenFor(deployment, "alice"));
    // Sent at once, before the token could have been checked: it must still run as alice.
    client.add(0, "users:viewer", {});
    await client.until(() => client.results.has(0), "viewer");
    // It never ran anonymously: every result sent for it is alice's.
    const viewerResults = client.messages
      .filter((m) => m.type === "Transition")
      .flatMap((m) => m.modifications as { queryId: number; value: unknown }[])
      .filter((m) => m.queryId === 0);
    expect(viewerResults.map((m) => (m.value as { name: string } | null)?.name)).toEqual(["alice"]);
    expect(client.version.identity).toBe(1);
    expect(client.results.get(0)).toMatchObject({ name: "alice", tokenIdentifier: "https://calmsync.invalid/dev-issuer|alice" });
    // Her messages carry her verified name, whatever the page claims.
    await client.mutation("messages:send", { chatId: "c", author: "mallory", body: "hi" });
    client.add(1, "messages:list", { chatId: "c" });
    await client.until(() => client.results.has(1), "list");
    expect((client.results.get(1) as { author: string }[])[0]!.author).toBe("alice");
    expect(client.chainingErrors).toEqual([]);
    client.close();
  });

  it("keys instances by identity only for queries that read it", async () => {
    const deployment = fresh("auth-sharing");
    const anonymous = await ProtocolClient.open(deployment);
    const alice = await signedIn(deployment, await tokenFor(deployment, "alice"));
    const bob = await signedIn(deployment, await tokenFor(deployment, "bob"));
    for (const client of [anonymous, alice, bob]) {
      client.add(0, "messages:list", { chatId: "c" });
      client.add(1, "users:viewer", {});
    }
    for (const client of [anonymous, alice, bob]) await client.until(() => client.results.has(0) && client.results.has(1), "both queries");
    expect(anonymous.results.get(1)).toBeNull();
    expect((alice.results.get(1) as { name: string }).name).toBe("alice");
    expect((bob.results.get(1) as { name: string }).name).toBe("bob");
    // One shared list; the viewer query: anonymous, alice's and bob's.
    const after = await status(deployment);
    expect(after.queryInstances).toBe(4);
    expect(after.auth).toMatchObject({ signedInSessions: 2, tokensVerified: 2, tokensRefused: 0, providerFetches: 0 });
    for (const client of [anonymous, alice, bob]) client.close();
  });

  it("switches a session to another identity, and back to anonymous", async () => {
    const deployment = fresh("auth-switch");
    const client = await signedIn(deployment, await tokenFor(deployment, "alice"));
    client.add(0, "users:viewer", {});
    await client.until(() => (client.results.get(0) as { name?: string } | undefined)?.name === "alice", "alice");
    client.send({ type: "Authenticate", tokenType: "User", value: await tokenFor(deployment, "bob"), baseVersion: 1 });
    await client.until(() => (client.results.get(0) as { name?: string } | null)?.name === "bob", "bob");
    expect(client.version.identity).toBe(2);
    client.send({ type: "Authenticate", tokenType: "None", baseVersion: 2 });
    await client.until(() => client.version.identity === 3, "signed out");
    expect(client.results.get(0)).toBeNull();
    expect(client.chainingErrors).toEqual([]);
    client.close();
  });

  it("refuses a bad token with AuthError naming its Authenticate, runs nothing for it and closes", async () => {
    const deployment = fresh("auth-refused");
    const good = await tokenFor(deployment, "alice");
    const [header, claims] = good.split(".");
    const forged = `${header}.${btoa(JSON.stringify({ ...JSON.parse(atob(claims!.replace(/-/g, "+").replace(/_/g, "/"))), sub: "admin", name: "admin" }))
      .replace(/=+$/, "")
      .replace(/\+/g, "-")
      .replace(/\//g, "_")}.${good.split(".")[2]}`;
    for (const [token, message] of [
      ["not-a-jwt", /not a JWT/],
      [forged, /signature/],
    ] as const) {
      const client = await signedIn(deployment, token);
      client.add(0, "users:viewer", {});
      await client.until(() => client.closed !== null, "close");
      expect(authErrors(client)).toEqual([{ type: "AuthError", error: expect.stringMatching(message), baseVersion: 0, authUpdateAttempted: true }]);
      // The query sent behind the token never ran: nothing but the AuthError was sent.
      expect(client.messages.map((m) => m.type)).toEqual(["AuthError"]);
    }
    expect(await status(deployment)).toMatchObject({ queryExecutions: 0, auth: { signedInSessions: 0, tokensVerified: 0, tokensRefused: 2 } });
  });

  it("keeps a session's identity across hibernation", async () => {
    const deployment = fresh("auth-evict");
    const client = await signedIn(deployment, await tokenFor(deployment, "alice"));
    client.add(0, "users:viewer", {});
    await client.until(() => client.results.has(0), "viewer");
    await evictDurableObject(bindings.DEPLOYMENTS.getByName(deployment), { webSockets: "hibernate" });
    await client.mutation("messages:send", { chatId: "c", author: "someone", body: "after the wake" });
    client.add(1, "messages:list", { chatId: "c" });
    await client.until(() => client.results.has(1), "list");
    expect((client.results.get(1) as { author: string }[])[0]!.author).toBe("alice");
    expect(client.chainingErrors).toEqual([]);
    client.close();
  });
});

describe("Authorization: Bearer over HTTP", () => {
  it("reaches HTTP actions, read only when the action asks for the caller", async () => {
    const deployment = fresh("auth-http-action");
    const token = await tokenFor(deployment, "dana");
    const whoami = (authorization?: string) =>
      worker.fetch(`http://calmsync.test/d/${deployment}/http/whoami`, { headers: authorization ? { Authorization: authorization } : {} });
    expect(await (await whoami(`Bearer ${token}`)).json()).toEqual({ name: "dana" });
    expect(await (await whoami()).json()).toEqual({ name: null });
    const refused = await whoami("Bearer not-a-jwt");
    expect(refused.status).toBe(500);
    expect(await refused.text()).toMatch(/not a JWT/);
    // A webhook whose Authorization header is its own business still posts (as nobody in particular).
    const posted = await worker.fetch(`http://calmsync.test/d/${deployment}/http/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer webhook-secret" },
      body: JSON.stringify({ chatId: "hook", author: "bot", body: "from a webhook" }),
    });
    expect(posted.status).toBe(201);
    const feed = await (await worker.fetch(`http://calmsync.test/d/${deployment}/http/messages?chatId=hook`)).json();
    expect(feed).toMatchObject([{ author: "bot", body: "from a webhook" }]);
  });

  const call = (deployment: string, kind: string, path: string, args: unknown, authorization?: string) =>
    worker.fetch(`http://calmsync.test/d/${deployment}/api/${kind}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(authorization ? { Authorization: authorization } : {}) },
      body: JSON.stringify({ path, args, format: "convex_encoded_json" }),
    });

  it("runs queries and mutations as the token's user and refuses a bad token with 401", async () => {
    const deployment = fresh("auth-http");
    const token = await tokenFor(deployment, "carol");
    const viewer = await call(deployment, "query", "users:viewer", {}, `bearer ${token}`);
    expect(await viewer.json()).toMatchObject({ status: "success", value: { name: "carol" } });
    expect(await (await call(deployment, "query", "users:viewer", {})).json()).toMatchObject({ status: "success", value: null });
    expect(await (await call(deployment, "mutation", "messages:send", { chatId: "h", author: "x", body: "b" }, `Bearer ${token}`)).json()).toMatchObject({
      status: "success",
    });
    const list = await (await call(deployment, "query", "messages:list", { chatId: "h" })).json();
    expect((list as { value: { author: string }[] }).value[0]!.author).toBe("carol");
    const before = (await status(deployment)).queryExecutions;
    for (const authorization of ["Bearer not-a-jwt", "Basic abc", `Bearer ${token.slice(0, -4)}AAAA`]) {
      const refused = await call(deployment, "query", "users:viewer", {}, authorization);
      expect(refused.status).toBe(401);
    }
    expect((await status(deployment)).queryExecutions).toBe(before);
  });
});
