/**
 * What `ctx.auth.getUserIdentity()` returns for a verified token, with
 * Convex's field names (`UserIdentity` in convex/server): `tokenIdentifier`
 * is `${iss}|${sub}`, standard OpenID claims get camelCase names, other
 * claims keep theirs, and the claims that change on every refresh (`exp`,
 * `iat`, `jti`, ...) are dropped so a refreshed token gives the same identity.
 */
import type { JSONValue } from "../values.ts";

export interface UserIdentity {
  tokenIdentifier: string;
  subject: string;
  issuer: string;
  [claim: string]: JSONValue;
}

/** OpenID Connect standard claims and the names Convex gives them. */
const STANDARD_CLAIMS: Record<string, string> = {
  name: "name",
  given_name: "givenName",
  family_name: "familyName",
  nickname: "nickname",
  preferred_username: "preferredUsername",
  profile: "profileUrl",
  picture: "pictureUrl",
  website: "websiteUrl",
  email: "email",
  email_verified: "emailVerified",
  gender: "gender",
  birthdate: "birthday",
  zoneinfo: "timezone",
  locale: "language",
  phone_number: "phoneNumber",
  phone_number_verified: "phoneNumberVerified",
  address: "address",
  updated_at: "updatedAt",
};

/**
 * Registered and per-token claims: not part of who the user is. Claims named
 * like the computed fields are dropped too: a token must not carry another
 * issuer's `tokenIdentifier` (the fields come from `iss` and `sub` alone).
 */
const DROPPED_CLAIMS = new Set(["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "fva", "tokenIdentifier", "subject", "issuer"]);

/**
 * The identity of a verified token's claims. A custom JWT's nested objects
 * become dotted keys (`"properties.id"`), as Convex flattens them; an OIDC
 * token's `address` stays an object.
 */
export function identityFromClaims(claims: Record<string, unknown>, flattenNested: boolean): UserIdentity {
  const issuer = String(claims.iss);
  const subject = String(claims.sub);
  const identity: UserIdentity = { tokenIdentifier: `${issuer}|${subject}`, subject, issuer };
  const put = (name: string, value: unknown) => {
    if (value === undefined) return;
    if (flattenNested && typeof value === "object" && value !== null && !Array.isArray(value)) {
      for (const [key, nested] of Object.entries(value)) put(`${name}.${key}`, nested);
      return;
    }
    identity[name] = name === "updatedAt" && typeof value === "number" ? new Date(value * 1000).toISOString() : (value as JSONValue);
  };
  for (const [claim, value] of Object.entries(claims)) {
    if (DROPPED_CLAIMS.has(claim)) continue;
    put(STANDARD_CLAIMS[claim] ?? claim, value);
  }
  return identity;
}
