import { COME_BACK_WINDOW_MS } from "../knobs/fixed.ts";
import { describe, expect, it } from "vitest";
import { Admission, type AdmissionDecision, type AdmissionKnobs } from "./admission.ts";

/** Admit if possible, else the refusal with its hint: what the deployment does past its waiting room. */
const decide = (admission: Admission, sessions: number, now: number): AdmissionDecision =>
  admission.tryAdmit(sessions, now) ? { admit: true } : admission.refusal(sessions, now);

// A fake clock (every call takes `now`) and a fixed "random": no wall clock, no sleeps.
describe("Admission", () => {
  const knobs: AdmissionKnobs = { sessionAdmitRate: 100, sessionAdmitBurst: 10, maxSessions: 1_000 };

  it("admits a burst, then promises each refused client its own later slot", () => {
    const admission = new Admission(
      () => knobs,
      0,
      () => 0,
    );
    for (let i = 0; i < 10; i++) expect(decide(admission, i, 0)).toEqual({ admit: true });
    const hints = Array.from({ length: 50 }, (_, i) => decide(admission, 10 + i, 0)).map((d) => (d.admit ? -1 : d.retryAfterMs));
    // One slot per 10 ms (100/s) after the bucket's next token: distinct, increasing, spread over the wave.
    expect(hints[0]).toBe(20);
    for (let i = 1; i < hints.length; i++) expect(hints[i]! - hints[i - 1]!).toBe(10);
    expect(admission.metrics(0)).toMatchObject({ admitted: 10, refused: 50 });
  });

  it("admits again as the bucket refills, at its rate", () => {
    const admission = new Admission(
      () => knobs,
      0,
      () => 0,
    );
    for (let i = 0; i < 10; i++) decide(admission, i, 0);
    expect(decide(admission, 10, 5).admit).toBe(false);
    expect(decide(admission, 10, 10).admit).toBe(true);
    expect(decide(admission, 11, 10).admit).toBe(false);
    expect(decide(admission, 11, 20).admit).toBe(true);
  });

  it("refuses at maxSessions with a retry spread over the come-back window, whatever the bucket holds", () => {
    const low = new Admission(
      () => ({ ...knobs, maxSessions: 3 }),
      0,
      () => 0.5,
    );
    const decision = decide(low, 3, 0);
    expect(decision).toMatchObject({ admit: false, code: "TooManySessions", retryAfterMs: COME_BACK_WINDOW_MS.min + COME_BACK_WINDOW_MS.spread / 2 });
  });

  it("counts admissions and refusals per second over the last complete seconds", () => {
    const admission = new Admission(
      () => ({ ...knobs, sessionAdmitBurst: 1_000, sessionAdmitRate: 1_000 }),
      0,
      () => 0,
    );
    for (let second = 0; second < 10; second++) for (let i = 0; i < 20; i++) decide(admission, 0, second * 1_000 + i);
    expect(admission.metrics(10_000).admittedPerSecond).toBe(20);
  });
});
