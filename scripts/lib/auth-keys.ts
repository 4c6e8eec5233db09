/**
 * The key pair Convex Auth (`@convex-dev/auth`) signs its tokens with, as the
 * two deployment variables it reads: `JWT_PRIVATE_KEY` (an RS256 private key,
 * PKCS8 PEM, its line breaks written as spaces so it fits on one line of a
 * dashboard field or a `.env` file; jose's PEM reader skips whitespace) and
 * `JWKS` (the public half as a key set, which the library serves at
 * `/.well-known/jwks.json` and calmsync checks its tokens against).
 */
import { exportJWK, exportPKCS8, generateKeyPair } from "jose";

export interface ConvexAuthKeys {
  JWT_PRIVATE_KEY: string;
  JWKS: string;
}

export async function generateConvexAuthKeys(): Promise<ConvexAuthKeys> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const pem = await exportPKCS8(privateKey);
  const jwk = await exportJWK(publicKey);
  return {
    JWT_PRIVATE_KEY: pem.trimEnd().replace(/\n/g, " "),
    JWKS: JSON.stringify({ keys: [{ use: "sig", ...jwk }] }),
  };
}

/**
 * The pair as `NAME=value` lines for a `.dev.vars` (dotenv) file: the private
 * key double-quoted (it holds spaces), the key set single-quoted (it holds
 * double quotes).
 */
export function dotenvLines(keys: ConvexAuthKeys): string[] {
  return [`JWT_PRIVATE_KEY="${keys.JWT_PRIVATE_KEY}"`, `JWKS='${keys.JWKS}'`];
}
