/**
 * The deployment's own signing key, behind `ctx.auth.signJwt` (mutations):
 * Convex Auth 2.0.0's core component mints its access tokens with it. As on
 * Convex, tokens are ES256 with the issuer set by the deployment (its
 * CONVEX_CLOUD_URL, plus `/components/<path>` for a component), `iat` and
 * `exp` set here, at most an hour of life, and the public half published at
 * `${CONVEX_CLOUD_URL}/.well-known/jwks.json`. The key pair is made on first
 * use and kept in the deployment's storage, so tokens outlive a restart.
 */
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from "jose";
import { FunctionError } from "../errors.ts";

const ALGORITHM = "ES256";
/** Convex's bounds on `expiresInSeconds`. */
const MIN_LIFETIME_SECONDS = 1;
const MAX_LIFETIME_SECONDS = 3600;
/** Claims the deployment sets, and prefixes it keeps for itself (any case), as Convex refuses them. */
const RESERVED_CLAIMS = new Set(["iss", "iat", "exp", "nbf"]);
const RESERVED_PREFIX = /^(convex|cvx)/i;

/** Where the key pair is kept (one JSON text). */
export interface DeploymentKeyStorage {
  load(): string | null;
  save(body: string): void;
}

/** What `ctx.auth.signJwt(options)` sends. */
export interface SignJwtRequest {
  claims?: Record<string, unknown>;
  expiresInSeconds: number;
}

interface KeyPair {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

export class DeploymentKey {
  private keyPair: KeyPair | null;
  private making: Promise<KeyPair> | null = null;
  private readonly storage: DeploymentKeyStorage;

  constructor(storage: DeploymentKeyStorage) {
    this.storage = storage;
    const stored = storage.load();
    this.keyPair = stored === null ? null : (JSON.parse(stored) as KeyPair);
  }

  /** The public keys (`/.well-known/jwks.json`): none until the first token is signed. */
  jwks(): { keys: JWK[] } {
    return { keys: this.keyPair ? [{ ...this.keyPair.publicJwk, kid: this.keyPair.kid, alg: ALGORITHM, use: "sig" }] : [] };
  }

  /** A token with the caller's claims, issued by `issuer` (throws `FunctionError` for options Convex refuses). */
  async sign(request: SignJwtRequest, issuer: string, now = Date.now()): Promise<string> {
    const { claims = {}, expiresInSeconds } = request;
    if (typeof expiresInSeconds !== "number" || !(expiresInSeconds >= MIN_LIFETIME_SECONDS && expiresInSeconds <= MAX_LIFETIME_SECONDS)) {
      throw new FunctionError("BadRequest", `signJwt: expiresInSeconds must be between ${MIN_LIFETIME_SECONDS} and ${MAX_LIFETIME_SECONDS}`);
    }
    for (const name of Object.keys(claims)) {
      if (RESERVED_CLAIMS.has(name) || RESERVED_PREFIX.test(name)) throw new FunctionError("BadRequest", `signJwt: the claim "${name}" is reserved`);
    }
    const keyPair = await this.ensureKey();
    const issuedAt = Math.floor(now / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: ALGORITHM, kid: keyPair.kid, typ: "JWT" })
      .setIssuer(issuer)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + Math.floor(expiresInSeconds))
      .sign(await importJWK(keyPair.privateJwk, ALGORITHM));
  }

  private ensureKey(): Promise<KeyPair> {
    if (this.keyPair) return Promise.resolve(this.keyPair);
    // Concurrent first signers share one key pair.
    return (this.making ??= (async () => {
      const { privateKey, publicKey } = await generateKeyPair(ALGORITHM, { extractable: true });
      const made: KeyPair = { kid: crypto.randomUUID(), privateJwk: await exportJWK(privateKey), publicJwk: await exportJWK(publicKey) };
      this.keyPair = made;
      this.storage.save(JSON.stringify(made));
      return made;
    })());
  }
}
