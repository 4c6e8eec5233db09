import { expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { VERSION } from "../../src/version.ts";

it("reports the package.json version in /api/status", () => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  expect(VERSION).toBe(pkg.version);
});
