import { describe, expect, it } from "vitest";
import { devIssuerAllowed } from "./env.ts";

describe("devIssuerAllowed", () => {
  it("allows the local configuration on loopback only, and no deployed environment anywhere", () => {
    expect(devIssuerAllowed({ CALMSYNC_ENV: "dev" }, "http://127.0.0.1:8787/api/auth/dev-token")).toBe(true);
    expect(devIssuerAllowed({ CALMSYNC_ENV: "dev" }, "http://localhost:8787/api/auth/dev-token")).toBe(true);
    expect(devIssuerAllowed({ CALMSYNC_ENV: "dev" }, "http://[::1]:8787/api/auth/dev-token")).toBe(true);
    expect(devIssuerAllowed({ CALMSYNC_ENV: "dev" }, "https://chat.example.com/api/auth/dev-token")).toBe(false);
    expect(devIssuerAllowed({ CALMSYNC_ENV: "dev" }, "https://127.0.0.1.example.com/api/auth/dev-token")).toBe(false);
    for (const env of ["staging", "production", undefined]) {
      expect(devIssuerAllowed({ CALMSYNC_ENV: env }, "http://127.0.0.1:8787/api/auth/dev-token")).toBe(false);
    }
  });
});
