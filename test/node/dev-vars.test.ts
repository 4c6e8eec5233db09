/**
 * `npm run dev`'s first step (scripts/dev-vars.ts) in an empty directory, as in a
 * fresh clone: `.dev.vars` gets an ADMIN_KEY and a Convex Auth key pair that
 * verifies its own tokens, written so a dotenv reader (wrangler's) gets them back
 * whole; a second run keeps them; half a pair is replaced by a whole one.
 */
import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseEnv } from "node:util";
import { createLocalJWKSet, importPKCS8, jwtVerify, SignJWT, type JSONWebKeySet } from "jose";

const script = resolve(import.meta.dirname, "../../scripts/dev-vars.ts");
const dir = mkdtempSync(join(tmpdir(), "calmsync-dev-vars-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function devVars(): Record<string, string | undefined> {
  const result = spawnSync(process.execPath, [script], { cwd: dir, encoding: "utf8" });
  expect(result.status, result.stderr).toBe(0);
  return parseEnv(readFileSync(join(dir, ".dev.vars"), "utf8"));
}

describe("scripts/dev-vars.ts (predev)", () => {
  it("writes a Convex Auth key pair beside the ADMIN_KEY the first time, keeps it after, and replaces half a pair", async () => {
    const first = devVars();
    expect(first.ADMIN_KEY).toMatch(/^[0-9a-f]{32}$/);
    const { JWT_PRIVATE_KEY, JWKS } = first;
    expect(JWT_PRIVATE_KEY).toMatch(/^-----BEGIN PRIVATE KEY----- \S+/);
    // The pair is one: a token signed as Convex Auth signs verifies against the published key set.
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "RS256" })
      .setSubject("user|session")
      .sign(await importPKCS8(JWT_PRIVATE_KEY!, "RS256"));
    await expect(jwtVerify(token, createLocalJWKSet(JSON.parse(JWKS!) as JSONWebKeySet))).resolves.toMatchObject({ payload: { sub: "user|session" } });

    expect(devVars()).toMatchObject({ ADMIN_KEY: first.ADMIN_KEY, JWT_PRIVATE_KEY, JWKS });

    writeFileSync(join(dir, ".dev.vars"), `ADMIN_KEY="${first.ADMIN_KEY}"\nJWKS='${JWKS}'\n`);
    const again = devVars();
    expect(again.ADMIN_KEY).toBe(first.ADMIN_KEY);
    expect(again.JWT_PRIVATE_KEY).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(again.JWKS).not.toBe(JWKS);
  });
});
