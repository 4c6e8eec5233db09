import { describe, expect, it } from "vitest";
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { ProtocolClient } from "./protocol-client.ts";
import { admin, bindings, fresh, worker } from "./helpers.ts";

function patch(deployment: string, body: unknown, headers: Record<string, string> = admin): Promise<Response> {
  return worker.fetch(`http://t/d/${deployment}/api/admin/knobs`, {
    method: "PATCH",
    headers: { ...headers, "Content-Type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function knobs(deployment: string) {
  const response = await worker.fetch(`http://t/d/${deployment}/api/admin/knobs`, { headers: admin });
  expect(response.status).toBe(200);
  return (await response.json()) as {
    knobs: { name: string; value: number; default: number; source: string }[];
    history: { name: string; old: number; new: number; at: number }[];
  };
}

describe("knob API", () => {
  it("requires the admin key", async () => {
    const deployment = fresh("knob-auth");
    expect((await worker.fetch(`http://t/d/${deployment}/api/admin/knobs`)).status).toBe(401);
    expect((await patch(deployment, { maxFrameBytes: 2048 }, { Authorization: "Bearer nope" })).status).toBe(401);
    expect((await knobs(deployment)).knobs.find((k) => k.name === "maxFrameBytes")).toMatchObject({ value: 1_048_576, source: "default" });
  });

  it("rejects unknown names and out-of-range values with a 400 naming them, changing nothing", async () => {
    const deployment = fresh("knob-validate");
    const unknown = await patch(deployment, { maxFrameBytes: 2048, noSuchKnob: 1 });
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({ code: "InvalidKnob", message: expect.stringContaining('Unknown knob "noSuchKnob"') });
    const range = await patch(deployment, { idlePingMs: 1 });
    expect(range.status).toBe(400);
    expect(await range.json()).toMatchObject({ message: expect.stringMatching(/idlePingMs must be between 2000 and 36000 ms, got 1/) });
    const type = await patch(deployment, { idlePingMs: "fast" });
    expect(await type.json()).toMatchObject({ message: expect.stringMatching(/idlePingMs must be a number/) });
    expect((await patch(deployment, "[1,2]")).status).toBe(400);
    const report = await knobs(deployment);
    expect(report.knobs.every((k) => k.source === "default")).toBe(true);
    expect(report.history).toEqual([]);
  });

  it("applies a change without a restart, records it, and keeps it across eviction", async () => {
    const deployment = fresh("knob-apply");
    const client = await ProtocolClient.open(deployment);
    client.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: [] });
    await client.until(() => client.version.querySet === 1, "first transition");

    const response = await patch(deployment, { maxFrameBytes: 2_048 });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ ok: true, changes: [{ name: "maxFrameBytes", old: 1_048_576, new: 2_048 }] });
    // Same object, same socket: the next frame over 2 KiB is refused.
    client.send({ type: "Event", eventType: "x", event: "y".repeat(3_000) });
    await client.until(() => client.closed !== null, "close for the oversized frame");
    expect(client.messages.find((m) => m.type === "FatalError")?.error).toMatch(/larger than the 2048-byte limit/);

    await evictDurableObject(bindings.DEPLOYMENTS.getByName(deployment));
    const report = await knobs(deployment);
    expect(report.knobs.find((k) => k.name === "maxFrameBytes")).toMatchObject({ value: 2_048, default: 1_048_576, source: "override" });
    expect(report.history).toEqual([{ name: "maxFrameBytes", old: 1_048_576, new: 2_048, at: expect.any(Number) }]);
  });
});

describe("knobs you can reason about", () => {
  it("refuses a change that breaks a rule between knobs, naming the rule, and changes nothing", async () => {
    const deployment = fresh("knob-rule");
    const response = await patch(deployment, { maxResultBytes: 16_777_216 });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ message: expect.stringMatching(/Refused: maxResultBytes must leave room in maxTransitionBytes/) });
    // Together with a larger Transition it is fine: rules are checked on the values after the whole change.
    expect((await patch(deployment, { maxResultBytes: 16_777_216, maxTransitionBytes: 31_457_280 })).status).toBe(200);
    expect((await patch(deployment, { maxDocumentBytes: 1_900_000, maxBytesWritten: 1_000_000 })).status).toBe(400);
  });

  it("a stored override that no longer validates falls back to its default (and a renamed MB knob carries over in bytes)", async () => {
    const deployment = fresh("knob-stale");
    expect((await patch(deployment, { maxFrameBytes: 4_096 })).status).toBe(200);
    const stub = bindings.DEPLOYMENTS.getByName(deployment);
    await runInDurableObject(stub, (_instance, state) => {
      // What older code could have stored: a value now out of range, a removed knob, and the old MB unit.
      state.storage.sql.exec(
        "INSERT OR REPLACE INTO knob_overrides (name, value) VALUES ('idlePingMs', 80000), ('noLongerAKnob', 5), ('queryResultCacheMB', 8)",
      );
    });
    await evictDurableObject(stub);
    const report = await knobs(deployment);
    const knob = (name: string) => report.knobs.find((k) => k.name === name);
    expect(knob("idlePingMs")).toMatchObject({ value: 15_000, source: "default" });
    expect(knob("queryResultCacheBytes")).toMatchObject({ value: 8 * 1_048_576, source: "override" });
    expect(knob("maxFrameBytes")).toMatchObject({ value: 4_096, source: "override" });
  });
});
