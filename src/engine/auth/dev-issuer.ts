/**
 * The local development issuer: signs short-lived tokens for a name, so the
 * example app (and any app) can sign in under `wrangler dev` without an
 * outside provider. Its ES256 key is made on first use and kept in the
 * deployment's storage; its public half is a custom JWT provider added to
 * the app's own. Whether it may run at all is decided by the caller (only
 * the local configuration, only on loopback; see src/worker.ts).
 */
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from "jose";
import type { AuthProvider } from "./auth-config.ts";

export const DEV_ISSUER = "https://calmsync.invalid/dev-issuer";
export const DEV_AUDIENCE = "calmsync-dev";
const ALGORITHM = "ES256";

/** Where the issuer's key pair is kept (one JSON text). */
export interface DevIssuerStorage {
  load(): string | null;
  save(body: string): void;
}

interface KeyPair {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

export class DevIssuer {
  private keyPair: KeyPair | null;
  private readonly storage: DevIssuerStorage;

  constructor(storage: DevIssuerStorage) {
    this.storage = storage;
    const stored = storage.load();
    this.keyPair = stored === null ? null : (JSON.parse(stored) as KeyPair);
  }

  /** The provider that accepts this issuer's tokens; null until it has signed one (no key, so no token exists). */
  provider(): AuthProvider | null {
    if (!this.keyPair) return null;
    const jwks = JSON.stringify({ keys: [{ ...this.keyPair.publicJwk, kid: this.keyPair.kid, alg: ALGORITHM, use: "sig" }] });
    return { kind: "customJwt", issuer: DEV_ISSUER, jwks: `data:application/json;base64,${btoa(jwks)}`, algorithm: ALGORITHM, applicationID: DEV_AUDIENCE };
  }

  /** A token for `name` that expires in `ttlMs`; its subject is the name, so the same name is the same user. */
  async mint(name: string, ttlMs: number, now = Date.now()): Promise<{ token: string; expiresAt: number }> {
    const keyPair = await this.ensureKey();
    const issuedAt = Math.floor(now / 1000);
    const expiresAt = issuedAt + Math.max(1, Math.round(ttlMs / 1000));
    const token = await new SignJWT({ name })
      .setProtectedHeader({ alg: ALGORITHM, kid: keyPair.kid, typ: "JWT" })
      .setIssuer(DEV_ISSUER)
      .setAudience(DEV_AUDIENCE)
      .setSubject(name)
      // The official client takes a refreshed token equal to its current one for "nothing new" and stops
      // refreshing, so the session ends when it expires. ES256 signatures are randomized, so tokens differ
      // anyway; the jti keeps it so with a deterministic algorithm (an RS256 issuer minting twice in a second).
      .setJti(crypto.randomUUID())
      .setIssuedAt(issuedAt)
      .setExpirationTime(expiresAt)
      .sign(await importJWK(keyPair.privateJwk, ALGORITHM));
    return { token, expiresAt: expiresAt * 1000 };
  }

  private async ensureKey(): Promise<KeyPair> {
    if (this.keyPair) return this.keyPair;
    const { privateKey, publicKey } = await generateKeyPair(ALGORITHM, { extractable: true });
    const made: KeyPair = { kid: crypto.randomUUID(), privateJwk: await exportJWK(privateKey), publicJwk: await exportJWK(publicKey) };
    // Another mint may have made one while this one awaited: keep the first.
    if (this.keyPair) return this.keyPair;
    this.keyPair = made;
    this.storage.save(JSON.stringify(made));
    return made;
  }
}
