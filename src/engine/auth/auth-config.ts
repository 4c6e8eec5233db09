/**
 * `convex/auth.config.ts` as Convex reads it: `{ providers: [...] }`, each an
 * OpenID Connect provider (`{ domain, applicationID }`, keys found by
 * discovery) or a custom JWT issuer (`{ type: "customJwt", issuer, jwks,
 * algorithm, applicationID? }`). A token is checked against the first
 * provider whose issuer it names.
 */

export type AuthProvider =
  | { kind: "oidc"; issuer: string; applicationID: string }
  | { kind: "customJwt"; issuer: string; jwks: string; algorithm: "RS256" | "ES256"; applicationID: string | null };

export class AuthConfigError extends Error {
  override name = "AuthConfigError";
}

/** An OIDC `domain` as an issuer: `https://` added when it has no scheme, no trailing slash (Convex's rule). */
export function normalizeIssuer(domain: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(domain) ? domain : `https://${domain}`;
  return withScheme.replace(/\/+$/, "");
}

/** The providers of an auth config module's default export (none when the app has no auth.config.ts). */
export function readAuthConfig(config: unknown): AuthProvider[] {
  if (config === undefined || config === null) return [];
  const providers = (config as { providers?: unknown }).providers;
  if (!Array.isArray(providers)) throw new AuthConfigError("auth.config.ts must export default { providers: [...] }");
  return providers.map((provider: unknown, i): AuthProvider => {
    const where = `auth.config.ts providers[${i}]`;
    if (typeof provider !== "object" || provider === null) throw new AuthConfigError(`${where} must be an object`);
    const p = provider as Record<string, unknown>;
    const text = (field: string, required = true): string | null => {
      const value = p[field];
      if (value === undefined && !required) return null;
      if (typeof value !== "string" || value === "") {
        throw new AuthConfigError(
          `${where}.${field} must be a non-empty string, got ${value === undefined ? "nothing (an unset environment variable?)" : JSON.stringify(value)}`,
        );
      }
      return value;
    };
    if (p.type === "customJwt") {
      const algorithm = p.algorithm;
      if (algorithm !== "RS256" && algorithm !== "ES256")
        throw new AuthConfigError(`${where}.algorithm must be "RS256" or "ES256", got ${JSON.stringify(algorithm)}`);
      const jwks = text("jwks")!;
      if (!/^(https?:|data:)/.test(jwks)) throw new AuthConfigError(`${where}.jwks must be an http(s) URL or a data: URI`);
      const issuer = text("issuer")!;
      // A token's `iss` is compared with its scheme (normalizeIssuer), so an issuer without one could never match: say so now.
      if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(issuer))
        throw new AuthConfigError(
          `${where}.issuer must be a URL with its scheme (e.g. "https://${issuer}"), got ${JSON.stringify(issuer)}: no token could match it`,
        );
      return { kind: "customJwt", issuer: issuer.replace(/\/+$/, ""), jwks, algorithm, applicationID: text("applicationID", false) };
    }
    if (p.type !== undefined && p.type !== "oidc")
      throw new AuthConfigError(`${where}.type must be "customJwt" or absent (OpenID Connect), got ${JSON.stringify(p.type)}`);
    return { kind: "oidc", issuer: normalizeIssuer(text("domain")!), applicationID: text("applicationID")! };
  });
}
