/**
 * Before `npm run dev`: makes sure `.dev.vars` (local secrets and vars,
 * git-ignored) holds an ADMIN_KEY, creating a random one the first time, and
 * the tier stamp a deploy would write for the local (`dev`) environment, so
 * the local dashboard shows no mismatch, and a key pair for Convex Auth
 * (JWT_PRIVATE_KEY and JWKS, scripts/lib/auth-keys.ts), so the chat page's
 * sign-in works from a fresh clone; the Worker's vars reach functions'
 * `process.env`. Prints the dashboard link that
 * signs in with the key (in the URL fragment, which the browser never sends).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { MANIFEST, manifestHash } from "../src/knobs/tiers.ts";
import { dotenvLines, generateConvexAuthKeys } from "./lib/auth-keys.ts";

const path = ".dev.vars";
let lines = (existsSync(path) ? readFileSync(path, "utf8") : "").split("\n").filter((line) => line.trim() !== "" && !line.startsWith("CALMSYNC_"));
let key = lines.map((line) => /^ADMIN_KEY\s*=\s*"?([^"\n]+)"?\s*$/.exec(line)?.[1]).find(Boolean);
if (!key) {
  key = crypto.randomUUID().replaceAll("-", "");
  lines.push(`ADMIN_KEY="${key}"`);
  console.log(`Created an ADMIN_KEY for local development in ${path}.`);
}
const keyNames = ["JWT_PRIVATE_KEY", "JWKS"];
const has = (name: string) => lines.some((line) => new RegExp(`^${name}\\s*=`).test(line));
if (!keyNames.every(has)) {
  // Both or neither: a private key without its own public half signs tokens nothing verifies.
  lines = lines.filter((line) => !keyNames.some((name) => new RegExp(`^${name}\\s*=`).test(line)));
  lines.push(...dotenvLines(await generateConvexAuthKeys()));
  console.log(`Created Convex Auth keys (JWT_PRIVATE_KEY, JWKS) for local development in ${path}.`);
}
lines.push(`CALMSYNC_TIER="${MANIFEST.environments.dev.tier}"`, `CALMSYNC_MANIFEST_HASH="${manifestHash()}"`);
writeFileSync(path, `${lines.join("\n")}\n`);
console.log(`Dashboard: http://127.0.0.1:8787/dashboard#key=${key}`);
