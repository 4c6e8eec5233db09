/**
 * Checks a JWT against the app's providers (`auth-config.ts`) with `jose`
 * (Web Crypto only, so the same code runs in workerd and in Node), and turns
 * it into the caller's identity. The rules are Convex's: the first provider
 * whose issuer the token names and whose `applicationID` is in its audience;
 * RS256 or EdDSA for OIDC, the configured algorithm for a custom JWT; `sub`,
 * `iss` and `exp` required; 5 s of clock tolerance.
 *
 * A verified token is remembered until it expires, so a client that sends
 * the same token on every HTTP request is checked once.
 */
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from "jose";
import type { AuthProvider } from "./auth-config.ts";
import { normalizeIssuer } from "./auth-config.ts";
import { identityFromClaims, type UserIdentity } from "./identity.ts";
import { AuthFetchError, type RemoteDocuments } from "./remote-documents.ts";

const CLOCK_TOLERANCE_SECONDS = 5;

/** Why a token was refused; the message goes to the client (in `AuthError` or a 401). */
export class AuthenticationError extends Error {
  override name = "AuthenticationError";
  readonly code: "NoAuthProvider" | "InvalidAuthHeader" | "AuthProviderDiscoveryFailed" | "TokenExpired" | "InvalidToken";
  constructor(code: AuthenticationError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

export interface VerifiedToken {
  identity: UserIdentity;
  /** When the token stops being valid (ms since the epoch). */
  expiresAt: number;
}

export interface TokenVerifierOptions {
  /** The app's providers, or the error its auth.config.ts gave (reported to whoever presents a token). */
  providers: () => readonly AuthProvider[];
  documents: RemoteDocuments;
  now?: () => number;
  /** Verified tokens remembered (the oldest is forgotten first). */
  maxCachedTokens?: () => number;
}

export class TokenVerifier {
  /** Tokens checked with their signature, answered from the remembered ones, and refused. */
  readonly counters = { verified: 0, remembered: 0, refused: 0 };
  private readonly verified = new Map<string, VerifiedToken>();
  /** One jose key set per fetched JWKS document (a refetch makes a new one). */
  private readonly keySets = new WeakMap<object, ReturnType<typeof createLocalJWKSet>>();
  private readonly options: TokenVerifierOptions;

  constructor(options: TokenVerifierOptions) {
    this.options = options;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  async verify(token: string): Promise<VerifiedToken> {
    const known = this.verified.get(token);
    if (known) {
      if (known.expiresAt > this.now()) {
        this.counters.remembered++;
        return known;
      }
      this.verified.delete(token);
      this.counters.refused++;
      throw new AuthenticationError("TokenExpired", "Token expired");
    }
    let result: VerifiedToken;
    try {
      result = await this.verifyNow(token);
    } catch (error) {
      this.counters.refused++;
      throw error;
    }
    this.counters.verified++;
    this.verified.set(token, result);
    const max = this.options.maxCachedTokens?.() ?? 1_000;
    for (const oldest of this.verified.keys()) {
      if (this.verified.size <= max) break;
      this.verified.delete(oldest);
    }
    return result;
  }

  private async verifyNow(token: string): Promise<VerifiedToken> {
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(token);
    } catch {
      throw new AuthenticationError("InvalidAuthHeader", "The token is not a JWT (three base64url parts, header and claims as JSON)");
    }
    const provider = this.providerFor(unverified);
    const jwksUrl = await this.jwksUrl(provider);
    const algorithms = provider.kind === "oidc" ? ["RS256", "EdDSA"] : [provider.algorithm];
    const verifyWith = async () => {
      const keys = await this.keySet(jwksUrl);
      return jwtVerify(token, keys, {
        algorithms,
        ...(provider.applicationID !== null ? { audience: provider.applicationID } : {}),
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ["sub", "iss", "exp"],
        currentDate: new Date(this.now()),
      });
    };
    let payload: JWTPayload;
    try {
      try {
        ({ payload } = await verifyWith());
      } catch (error) {
        // A key id we have not seen, or a signature none of our keys verifies on a token naming no key id (Convex
        // Auth's tokens name none): the provider may have rotated its keys since we fetched them.
        const rotated = error instanceof joseErrors.JWKSNoMatchingKey || (error instanceof joseErrors.JWSSignatureVerificationFailed && !hasKeyId(token));
        if (!rotated || !(await this.options.documents.refresh(jwksUrl))) throw error;
        ({ payload } = await verifyWith());
      }
    } catch (error) {
      throw refusal(error);
    }
    return { identity: identityFromClaims(payload, provider.kind === "customJwt"), expiresAt: payload.exp! * 1000 + CLOCK_TOLERANCE_SECONDS * 1000 };
  }

  private providerFor(claims: JWTPayload): AuthProvider {
    const providers = this.options.providers();
    const issuer = typeof claims.iss === "string" ? normalizeIssuer(claims.iss) : null;
    const audiences = claims.aud === undefined ? [] : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    const match = providers.find((p) => p.issuer === issuer && (p.applicationID === null || audiences.includes(p.applicationID)));
    if (match) return match;
    const configured =
      providers.map((p) => `${p.issuer}${p.applicationID === null ? "" : ` (audience ${p.applicationID})`}`).join(", ") || "none (no convex/auth.config.ts)";
    throw new AuthenticationError(
      "NoAuthProvider",
      `No auth provider found matching the given token: issuer ${JSON.stringify(claims.iss ?? null)}, audience ${JSON.stringify(claims.aud ?? null)}. Configured providers: ${configured}`,
    );
  }

  /** Where the provider's keys are: configured for a custom JWT, found by OpenID discovery otherwise. */
  private async jwksUrl(provider: AuthProvider): Promise<string> {
    if (provider.kind === "customJwt") return provider.jwks;
    const discovery = `${provider.issuer}/.well-known/openid-configuration`;
    let metadata: { issuer?: unknown; jwks_uri?: unknown };
    try {
      metadata = (await this.options.documents.get(discovery)) as typeof metadata;
    } catch (error) {
      throw new AuthenticationError("AuthProviderDiscoveryFailed", `OpenID discovery for ${provider.issuer} failed: ${(error as Error).message}`);
    }
    if (typeof metadata.issuer !== "string" || normalizeIssuer(metadata.issuer) !== provider.issuer || typeof metadata.jwks_uri !== "string") {
      throw new AuthenticationError("AuthProviderDiscoveryFailed", `${discovery} must name issuer ${provider.issuer} and a jwks_uri`);
    }
    return metadata.jwks_uri;
  }

  private async keySet(url: string): Promise<ReturnType<typeof createLocalJWKSet>> {
    let document: unknown;
    try {
      document = await this.options.documents.get(url);
    } catch (error) {
      throw new AuthenticationError("AuthProviderDiscoveryFailed", `The provider's keys could not be read: ${(error as Error).message}`);
    }
    if (typeof document !== "object" || document === null || !Array.isArray((document as JSONWebKeySet).keys)) {
      throw new AuthenticationError("AuthProviderDiscoveryFailed", `${url.startsWith("data:") ? "The data: JWKS" : url} is not a JWKS ({"keys": [...]})`);
    }
    let keys = this.keySets.get(document);
    if (!keys) this.keySets.set(document, (keys = createLocalJWKSet(document as JSONWebKeySet)));
    return keys;
  }
}

function hasKeyId(token: string): boolean {
  try {
    return decodeProtectedHeader(token).kid !== undefined;
  } catch {
    return false;
  }
}

/** A jose failure as the error the client sees. */
function refusal(error: unknown): AuthenticationError {
  if (error instanceof AuthenticationError) return error;
  if (error instanceof AuthFetchError) return new AuthenticationError("AuthProviderDiscoveryFailed", error.message);
  if (error instanceof joseErrors.JWTExpired) return new AuthenticationError("TokenExpired", "Token expired");
  if (error instanceof joseErrors.JWKSNoMatchingKey)
    return new AuthenticationError("InvalidToken", "Could not verify the token: its key id is not among the provider's keys");
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return new AuthenticationError("InvalidToken", "Could not verify the token's signature with the provider's keys");
  if (error instanceof joseErrors.JWTClaimValidationFailed) return new AuthenticationError("InvalidToken", `Could not verify the token: ${error.message}`);
  if (error instanceof joseErrors.JOSEError) return new AuthenticationError("InvalidToken", `Could not verify the token: ${error.message}`);
  throw error;
}
