import { describe, expect, it } from "vitest";
import { ClientBuckets, clientAddress, clientKey } from "./client-limits.ts";

// Every call takes the time explicitly: a fake clock, never the wall clock.
describe("ClientBuckets", () => {
  const buckets = (maxClients?: number) =>
    new ClientBuckets({ rate: () => 2, burst: () => 3, what: "calls", knobs: "clientCallRate/clientCallBurst", ...(maxClients ? { maxClients } : {}) });

  it("gives each client its own bucket, refuses past it with the wait until its next token, and counts refusals", () => {
    const limits = buckets();
    for (let i = 0; i < 3; i++) expect(limits.take("a", 0)).toBeNull();
    expect(limits.take("a", 0)).toEqual({
      code: "ClientRateLimited",
      retryAfterMs: 500,
      message: expect.stringMatching(/Too many calls from this client \(knobs clientCallRate\/clientCallBurst: 2\/s, burst 3\); retry in 500 ms/),
    });
    expect(limits.take("b", 0)).toBeNull();
    expect(limits.take("a", 500)).toBeNull();
    expect(limits.refused).toBe(1);
  });

  it("stays within maxClients: clients whose bucket refilled go first, then the oldest", () => {
    const limits = buckets(2);
    limits.take("idle", 0);
    limits.take("busy", 10_000);
    limits.take("busy", 10_000);
    // At 10 s the idle client's bucket is full again: forgetting it changes nothing.
    limits.take("new", 10_000);
    expect(limits.size).toBe(2);
    for (let i = 0; i < 2; i++) limits.take("new", 10_000);
    expect(limits.take("busy", 10_000)).toBeNull();
    expect(limits.take("busy", 10_000)).not.toBeNull();
  });
});

describe("clients", () => {
  it("are their identity when signed in, else their address; locally, without CF-Connecting-IP, one client", () => {
    expect(clientAddress(new Headers({ "CF-Connecting-IP": "203.0.113.7" }))).toBe("203.0.113.7");
    expect(clientAddress(new Headers())).toBe("local");
    expect(clientKey("203.0.113.7", null)).toBe("address:203.0.113.7");
    expect(clientKey("203.0.113.7", "https://issuer|alice")).toBe("identity:https://issuer|alice");
  });
});
