import { describe, expect, it } from "vitest";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { DeploymentKey } from "./deployment-key.ts";

function memoryKey() {
  const saved: { body: string | null } = { body: null };
  return { saved, key: new DeploymentKey({ load: () => saved.body, save: (body) => (saved.body = body) }) };
}

describe("DeploymentKey (ctx.auth.signJwt)", () => {
  it("signs ES256 tokens with the issuer, iat and exp it sets, verifiable with its published keys, and keeps the key across a restart", async () => {
    const { saved, key } = memoryKey();
    expect(key.jwks().keys).toEqual([]);
    const now = 1_700_000_000_000;
    const token = await key.sign({ claims: { sub: "session-1", aud: "convex-auth" }, expiresInSeconds: 60 }, "https://d.example/components/auth", now);
    const { payload } = await jwtVerify(token, createLocalJWKSet(key.jwks() as never), { currentDate: new Date(now) });
    expect(payload).toEqual({ sub: "session-1", aud: "convex-auth", iss: "https://d.example/components/auth", iat: now / 1000, exp: now / 1000 + 60 });
    const restarted = new DeploymentKey({ load: () => saved.body, save: () => {} });
    expect(restarted.jwks()).toEqual(key.jwks());
    expect(decodeProtectedHeader(await restarted.sign({ expiresInSeconds: 1 }, "x")).kid).toBe(key.jwks().keys[0]!.kid);
  });

  it("refuses what Convex refuses: reserved claims and lifetimes outside 1 s to 1 h", async () => {
    const { key } = memoryKey();
    for (const claims of [{ iss: "me" }, { exp: 1 }, { nbf: 1 }, { iat: 1 }, { convexThing: 1 }, { CVX: 1 }]) {
      await expect(key.sign({ claims, expiresInSeconds: 60 }, "x")).rejects.toThrow(/reserved/);
    }
    for (const expiresInSeconds of [0, 3601, Number.NaN]) {
      await expect(key.sign({ expiresInSeconds }, "x")).rejects.toThrow(/expiresInSeconds/);
    }
  });

  it("makes one key pair for concurrent first signers", async () => {
    const { key } = memoryKey();
    const tokens = await Promise.all([1, 2, 3].map(() => key.sign({ expiresInSeconds: 60 }, "x")));
    expect(new Set(tokens.map((token) => decodeProtectedHeader(token).kid)).size).toBe(1);
    expect(key.jwks().keys).toHaveLength(1);
  });
});
