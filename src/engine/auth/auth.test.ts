import { describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { AuthConfigError, readAuthConfig } from "./auth-config.ts";
import { RemoteDocuments, type DocumentCacheStorage } from "./remote-documents.ts";
import { AuthenticationError, TokenVerifier } from "./token-verifier.ts";
import { DevIssuer } from "./dev-issuer.ts";

const KNOBS = {
  authFetchTimeoutMs: 1_000,
  authKeysMaxAgeMs: 60_000,
  authKeysMaxStaleMs: 600_000,
  authKeyMissCooldownMs: 30_000,
  authFetchFailureCooldownMs: 5_000,
  authDocumentMaxBytes: 4_096,
};

function memoryStorage(): DocumentCacheStorage & { rows: Map<string, { body: string; fetchedAt: number }> } {
  const rows = new Map<string, { body: string; fetchedAt: number }>();
  return { rows, load: (url) => rows.get(url) ?? null, save: (url, body, fetchedAt) => void rows.set(url, { body, fetchedAt }) };
}

async function keyPair(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "RS256" } };
}

describe("readAuthConfig", () => {
  it("reads Convex's two provider kinds and normalizes OIDC domains", () => {
    expect(
      readAuthConfig({
        providers: [
          { domain: "clerk.example.com/", applicationID: "convex" },
          { type: "customJwt", issuer: "https://jwt.example.com/", jwks: "https://jwt.example.com/jwks", algorithm: "ES256" },
        ],
      }),
    ).toEqual([
      { kind: "oidc", issuer: "https://clerk.example.com", applicationID: "convex" },
      { kind: "customJwt", issuer: "https://jwt.example.com", jwks: "https://jwt.example.com/jwks", algorithm: "ES256", applicationID: null },
    ]);
    expect(readAuthConfig(null)).toEqual([]);
  });

  it("names what is wrong, including an unset environment variable", () => {
    expect(() => readAuthConfig({ providers: [{ domain: undefined, applicationID: "convex" }] })).toThrow(
      /providers\[0\]\.domain .*unset environment variable/,
    );
    expect(() => readAuthConfig({ providers: [{ type: "customJwt", issuer: "x", jwks: "https://x", algorithm: "HS256" }] })).toThrow(AuthConfigError);
    // Review finding 12: an issuer without a scheme would fail closed on every token; it is refused at push instead.
    expect(() =>
      readAuthConfig({ providers: [{ type: "customJwt", issuer: "jwt.example.com", jwks: "https://jwt.example.com/jwks", algorithm: "RS256" }] }),
    ).toThrow(/providers\[0\]\.issuer must be a URL with its scheme \(e\.g\. "https:\/\/jwt\.example\.com"\)/);
  });
});

describe("TokenVerifier", () => {
  it("verifies a custom JWT against a data: JWKS and gives Convex's identity fields", async () => {
    const { privateKey, jwk } = await keyPair("k1");
    const jwks = `data:application/json;base64,${btoa(JSON.stringify({ keys: [jwk] }))}`;
    const verifier = new TokenVerifier({
      providers: () => readAuthConfig({ providers: [{ type: "customJwt", issuer: "https://jwt.test", jwks, algorithm: "RS256", applicationID: "app" }] }),
      documents: new RemoteDocuments({ storage: memoryStorage(), knobs: () => KNOBS, fetch: () => Promise.reject(new Error("no network")) }),
    });
    const token = await new SignJWT({ name: "Ann", given_name: "Ann", email_verified: true, properties: { team: "red", id: 7 }, jti: "once" })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setIssuer("https://jwt.test")
      .setAudience("app")
      .setSubject("ann")
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(privateKey);
    const { identity } = await verifier.verify(token);
    expect(identity).toEqual({
      tokenIdentifier: "https://jwt.test|ann",
      subject: "ann",
      issuer: "https://jwt.test",
      name: "Ann",
      givenName: "Ann",
      emailVerified: true,
      "properties.team": "red",
      "properties.id": 7,
    });
    const unsigned = `${token.split(".").slice(0, 2).join(".")}.AAAA`;
    await expect(verifier.verify(unsigned)).rejects.toThrow(AuthenticationError);
  });

  it("never lets a claim overwrite the computed tokenIdentifier, subject or issuer", async () => {
    const { privateKey, jwk } = await keyPair("k1");
    const jwks = `data:application/json;base64,${btoa(JSON.stringify({ keys: [jwk] }))}`;
    const verifier = new TokenVerifier({
      providers: () => readAuthConfig({ providers: [{ type: "customJwt", issuer: "https://jwt.test", jwks, algorithm: "RS256" }] }),
      documents: new RemoteDocuments({ storage: memoryStorage(), knobs: () => KNOBS, fetch: () => Promise.reject(new Error("no network")) }),
    });
    // A token of this issuer claiming to be another provider's user.
    const token = await new SignJWT({ tokenIdentifier: "https://clerk.other|admin", subject: "admin", issuer: "https://clerk.other" })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setIssuer("https://jwt.test")
      .setSubject("mallory")
      .setExpirationTime("1h")
      .sign(privateKey);
    const { identity } = await verifier.verify(token);
    expect(identity).toEqual({ tokenIdentifier: "https://jwt.test|mallory", subject: "mallory", issuer: "https://jwt.test" });
  });
});

describe("RemoteDocuments", () => {
  it("serves a known document from cache (memory, then storage after a restart), refreshing an old one behind the caller", async () => {
    let now = 0;
    let fetches = 0;
    let version = 1;
    const fetchFn = (async () => {
      fetches++;
      return new Response(JSON.stringify({ version }), { status: 200 });
    }) as unknown as typeof fetch;
    const storage = memoryStorage();
    const documents = () => new RemoteDocuments({ storage, knobs: () => KNOBS, fetch: fetchFn, now: () => now });
    const first = documents();
    expect(await first.get("https://p.test/jwks")).toEqual({ version: 1 });
    expect(await first.get("https://p.test/jwks")).toEqual({ version: 1 });
    // A restarted object reads it from storage: no fetch.
    expect(await documents().get("https://p.test/jwks")).toEqual({ version: 1 });
    expect(fetches).toBe(1);
    // Past its max age the cached copy still answers at once; the refresh lands for the next caller.
    now += KNOBS.authKeysMaxAgeMs + 1;
    version = 2;
    expect(await first.get("https://p.test/jwks")).toEqual({ version: 1 });
    await new Promise((r) => setTimeout(r, 0));
    expect(await first.get("https://p.test/jwks")).toEqual({ version: 2 });
    expect(fetches).toBe(2);
  });

  it("refetches for an unknown key only after the cooldown, and shares concurrent fetches", async () => {
    let now = 0;
    let fetches = 0;
    const fetchFn = (async () => {
      fetches++;
      await new Promise((r) => setTimeout(r, 5));
      return new Response("{}", { status: 200 });
    }) as unknown as typeof fetch;
    const documents = new RemoteDocuments({ storage: memoryStorage(), knobs: () => KNOBS, fetch: fetchFn, now: () => now });
    await Promise.all(Array.from({ length: 10 }, () => documents.get("https://p.test/jwks")));
    expect(fetches).toBe(1);
    expect(await documents.refresh("https://p.test/jwks")).toBe(false);
    now += KNOBS.authKeyMissCooldownMs;
    expect(await documents.refresh("https://p.test/jwks")).toBe(true);
    expect(fetches).toBe(2);
  });

  it("finding 10: never trusts a copy past its maximum staleness, remembers a failure for its cooldown, refuses an oversized body", async () => {
    let now = 0;
    let fetches = 0;
    let answer: () => Response = () => new Response('{"keys": []}', { status: 200 });
    const fetchFn = (async () => {
      fetches++;
      return answer();
    }) as unknown as typeof fetch;
    const documents = new RemoteDocuments({ storage: memoryStorage(), knobs: () => KNOBS, fetch: fetchFn, now: () => now, log: () => {} });
    expect(await documents.get("https://p.test/jwks")).toEqual({ keys: [] });
    // The provider goes down: within the staleness bound the cached copy still answers...
    answer = () => new Response("down", { status: 503 });
    now += KNOBS.authKeysMaxAgeMs + 1;
    expect(await documents.get("https://p.test/jwks")).toEqual({ keys: [] });
    await new Promise((r) => setTimeout(r, 0));
    // ...past it, the copy is not used: the caller is refused with the provider's answer.
    now += KNOBS.authKeysMaxStaleMs;
    const before = fetches;
    await expect(documents.get("https://p.test/jwks")).rejects.toThrow(/p\.test\/jwks answered 503/);
    // The failure is remembered: more callers within the cooldown are refused without a fetch each.
    for (let i = 0; i < 5; i++) await expect(documents.get("https://p.test/jwks")).rejects.toThrow(/answered 503/);
    expect(fetches).toBe(before + 1);
    now += KNOBS.authFetchFailureCooldownMs;
    answer = () => new Response(JSON.stringify({ keys: [], pad: "x".repeat(KNOBS.authDocumentMaxBytes) }), { status: 200 });
    await expect(documents.get("https://p.test/jwks")).rejects.toThrow(/answered more than 4096 bytes \(knob authDocumentMaxBytes\)/);
    expect(fetches).toBe(before + 2);
    now += KNOBS.authFetchFailureCooldownMs;
    answer = () => new Response('{"keys": [1]}', { status: 200 });
    expect(await documents.get("https://p.test/jwks")).toEqual({ keys: [1] });
  });

  it("fails with the URL and the reason when a provider does not answer in time", async () => {
    const hang = ((_url: string, init: RequestInit) =>
      new Promise((_, reject) => init.signal!.addEventListener("abort", () => reject(init.signal!.reason)))) as unknown as typeof fetch;
    const documents = new RemoteDocuments({ storage: memoryStorage(), knobs: () => ({ ...KNOBS, authFetchTimeoutMs: 50 }), fetch: hang });
    await expect(documents.get("https://slow.test/jwks")).rejects.toThrow(/slow\.test\/jwks: no answer within 50 ms \(knob authFetchTimeoutMs\)/);
  });
});

describe("DevIssuer", () => {
  it("mints tokens its own provider accepts, with the key kept in storage across restarts", async () => {
    let stored: string | null = null;
    const storage = { load: () => stored, save: (body: string) => void (stored = body) };
    const issuer = new DevIssuer(storage);
    expect(issuer.provider()).toBeNull();
    const { token } = await issuer.mint("dora", 60_000);
    const restarted = new DevIssuer(storage);
    const verifier = new TokenVerifier({
      providers: () => [restarted.provider()!],
      documents: new RemoteDocuments({ storage: memoryStorage(), knobs: () => KNOBS }),
    });
    expect((await verifier.verify(token)).identity).toMatchObject({ subject: "dora", name: "dora" });
  });

  it("mints tokens that differ within one second yet give one identity (the per-token jti is not part of it)", async () => {
    let stored: string | null = null;
    const issuer = new DevIssuer({ load: () => stored, save: (body) => void (stored = body) });
    const now = Date.now();
    const [first, second] = [await issuer.mint("dora", 60_000, now), await issuer.mint("dora", 60_000, now)];
    // The official client ignores a refreshed token equal to the one it has, and then stops refreshing.
    expect(first.token).not.toBe(second.token);
    const verifier = new TokenVerifier({
      providers: () => [issuer.provider()!],
      documents: new RemoteDocuments({ storage: memoryStorage(), knobs: () => KNOBS }),
    });
    expect((await verifier.verify(first.token)).identity).toEqual((await verifier.verify(second.token)).identity);
  });
});
