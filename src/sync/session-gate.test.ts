import { describe, expect, it } from "vitest";
import { SessionGate, type GateKnobs } from "./session-gate.ts";
import type { SyncFront } from "./front.ts";

describe("SessionGate.accept", () => {
  it("charges a client's own rate only for sockets the deployment did not refuse", () => {
    // The gate reads only the front's counts when it decides on a new socket.
    const front = { sessionCount: 0, waitingCount: 0 };
    const knobs: GateKnobs = {
      maxSessions: 1,
      sessionAdmitRate: 1,
      sessionAdmitBurst: 1,
      maxWaitingSessions: 0,
      waitingTimeoutMs: 30_000,
      // A burst of two, and no refill within the test.
      clientSessionRate: 0.001,
      clientSessionBurst: 2,
    };
    let now = 0;
    const gate = new SessionGate({ front: front as unknown as SyncFront, knobs: () => knobs, now: () => now, wake: () => {}, random: () => 0.5 });
    expect(gate.accept("a")).toEqual({ waiting: false });
    front.sessionCount = 1;
    // The deployment is full and nobody may wait: refused for the deployment's reason, every time.
    for (let i = 0; i < 3; i++) expect(gate.accept("a")).toMatchObject({ refusal: { code: "TooManySessions" } });
    // Room again a second later: the client still has the second token of its burst, and no third.
    front.sessionCount = 0;
    now = 1_000;
    expect(gate.accept("a")).toEqual({ waiting: false });
    expect(gate.accept("a")).toMatchObject({ refusal: { code: "ClientRateLimited" } });
  });
});
