/**
 * What one request or one socket can cost a deployment: each test is one
 * finding of the hostile review (issue "Hardening", numbered as there),
 * checked where it was found, and fails on the code before the fix. The
 * others: 4 (flood) and 8 (official client) in test/node/e2e/flood.test.ts
 * and hardening.test.ts, 3 (slow consumer) there too, 7, 12 and 13 (strangers,
 * HTTP) in http-api.test.ts, 11's result cache in src/engine/byte-budget-lru.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ProtocolClient } from "./protocol-client.ts";
import { admin, fresh, setKnobs, status, worker } from "./helpers.ts";

const fn = (path: string, args: unknown) => JSON.stringify({ path, format: "convex_encoded_json", args: [args] });

async function call(
  deployment: string,
  kind: "query" | "mutation",
  path: string,
  args: unknown,
): Promise<{ status: string; value?: unknown; errorMessage?: string }> {
  const response = await worker.fetch(`http://t/d/${deployment}/api/${kind}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: fn(path, args),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { status: string; value?: unknown; errorMessage?: string };
}

/** A client that has sent Connect and an empty query set (so its mutations get Transitions). */
async function connected(deployment: string, sessionId?: string): Promise<ProtocolClient> {
  const client = await ProtocolClient.open(deployment, sessionId);
  client.modify([]);
  await client.until(() => client.version.querySet === 1, "first transition");
  return client;
}

function nested(levels: number): unknown {
  let value: unknown = "bottom";
  for (let i = 0; i < levels; i++) value = { d: value };
  return value;
}

describe("budgets per function", () => {
  it("1. a mutation that would write 400 large documents fails on the byte budget and writes nothing", async () => {
    const deployment = fresh("amplify");
    const chatIds = Array.from({ length: 400 }, (_, i) => `chat-${i}`);
    const body = "x".repeat(900_000); // a request just under the 1 MiB body limit
    const result = await call(deployment, "mutation", "messages:broadcast", { chatIds, author: "mallory", body });
    expect(result).toMatchObject({
      status: "error",
      errorMessage: expect.stringMatching(/Too many bytes written: \d+ bytes in one mutation, limit 8388608 \(knob maxBytesWritten\)/),
    });
    const after = await status(deployment);
    expect(after).toMatchObject({ commits: 0, documents: 0 });
    // A few documents' worth of storage at most (the schema), not 400 MB.
    expect(after.storageBytes).toBeLessThan(1_000_000);
    // The same broadcast within the budget commits.
    expect(await call(deployment, "mutation", "messages:broadcast", { chatIds: chatIds.slice(0, 3), author: "ann", body: "hello" })).toMatchObject({
      status: "success",
    });
  });

  it("bounds bytes read: a scan over more than maxBytesRead fails the function with the limit named", async () => {
    const deployment = fresh("read-budget");
    for (let i = 0; i < 5; i++) await call(deployment, "mutation", "messages:send", { chatId: "big", author: "a", body: `${i}`.repeat(200_000) });
    await setKnobs(deployment, { maxBytesRead: 500_000, maxDocumentBytes: 400_000 });
    const result = await call(deployment, "query", "messages:list", { chatId: "big" });
    expect(result).toMatchObject({
      status: "error",
      errorMessage: expect.stringMatching(/Too many bytes read: \d+ bytes in one function, limit 500000 \(knob maxBytesRead\)/),
    });
  });

  it("2. an oversized query result fails that query (HTTP error, QueryFailed on a socket), never the socket", async () => {
    const deployment = fresh("big-result");
    // 20 messages of 250 KB: a 5 MB result, over the 4 MiB default.
    for (let i = 0; i < 20; i++) await call(deployment, "mutation", "messages:send", { chatId: "big", author: "a", body: String(i % 10).repeat(250_000) });
    expect(await call(deployment, "query", "messages:list", { chatId: "big" })).toMatchObject({
      status: "error",
      errorMessage: expect.stringMatching(/The result of messages:list is too large: \d+ bytes, limit 4194304 \(knob maxResultBytes\)/),
    });
    const client = await connected(deployment);
    client.add(0, "messages:list", { chatId: "big" });
    client.add(1, "messages:list", { chatId: "small" });
    await client.until(() => client.errors.has(0) && client.results.has(1), "results");
    expect(client.errors.get(0)).toMatch(/too large/);
    // The socket goes on: a write to the small chat arrives, versions chain.
    await client.mutation("messages:send", { chatId: "small", author: "a", body: "fine" });
    await client.until(() => (client.results.get(1) as unknown[]).length === 1, "small update");
    expect(client.closed).toBeNull();
    expect(client.chainingErrors).toEqual([]);
    client.close();
  });

  it("9. fields named like Object.prototype members are not declared fields", async () => {
    const deployment = fresh("proto");
    for (const name of ["constructor", "toString", "valueOf", "hasOwnProperty"]) {
      const result = await call(deployment, "mutation", "messages:send", { chatId: "a", author: "a", body: "x", [name]: "sneaky" });
      expect(result, name).toMatchObject({ status: "error", errorMessage: expect.stringContaining(`Object contains extra field \`${name}\``) });
    }
    expect((await status(deployment)).documents).toBe(0);
  });

  it("10. arguments nested 5,000 levels deep fail that mutation over a socket (not 1011), and close with 1008 as a query", async () => {
    const deployment = fresh("deep");
    const client = await connected(deployment);
    const id = client.mutate("messages:send", { chatId: "a", author: "a", body: "x", extra: nested(5_000) });
    await client.until(() => client.mutationResponses.has(id), "mutation response");
    expect(client.mutationResponses.get(id)).toMatchObject({ success: false, result: expect.stringMatching(/nested more than 64 levels/) });
    expect(client.closed).toBeNull();
    // Still usable.
    expect((await client.mutation("messages:send", { chatId: "a", author: "a", body: "ok" })).success).toBe(true);
    client.add(0, "messages:list", { chatId: "a", extra: nested(5_000) });
    await client.until(() => client.closed !== null, "close");
    expect(client.closed?.code).toBe(1008);
    expect(client.messages.find((m) => m.type === "FatalError")?.error).toMatch(/nested more than 64 levels/);
  });

  it("11. documents are measured in UTF-8 bytes: 40,000 euro signs are 120,000 bytes, over a 100,000-byte limit", async () => {
    const deployment = fresh("utf8");
    await setKnobs(deployment, { maxDocumentBytes: 100_000 });
    const result = await call(deployment, "mutation", "messages:send", { chatId: "a", author: "a", body: "€".repeat(40_000) });
    expect(result).toMatchObject({
      status: "error",
      errorMessage: expect.stringMatching(/Document is too large: 120\d{3} bytes, limit 100000 \(knob maxDocumentBytes\)/),
    });
  });
});

describe("the protocol holds its limits", () => {
  it("5. query-set changes count after applying them: duplicate removals and adds cannot pass the cap", async () => {
    const deployment = fresh("queryset");
    await setKnobs(deployment, { maxQueriesPerSession: 10 });
    const legit = await connected(deployment);
    // Within one message: add 10, remove one, add it back: 10 at the end, accepted.
    const adds = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => ({ type: "Add", queryId: from + i, udfPath: "messages:list", args: [{ chatId: `c${from + i}` }] }));
    legit.modify([...adds(0, 10), { type: "Remove", queryId: 3 }, ...adds(3, 4)]);
    await legit.until(() => legit.results.size === 10, "ten results");
    expect(legit.closed).toBeNull();

    // The bypass: removing one id 4,000 times while adding 4,000.
    const bypass = await connected(deployment);
    bypass.modify([...adds(0, 1)]);
    bypass.modify([...Array.from({ length: 4_000 }, () => ({ type: "Remove", queryId: 0 })), ...adds(1, 4_001)]);
    await bypass.until(() => bypass.closed !== null, "close");
    expect(bypass.closed?.code).toBe(1008);
    expect(bypass.messages.find((m) => m.type === "FatalError")?.error).toMatch(/Query 0 is not in the query set/);

    // Adds alone past the cap.
    const greedy = await connected(deployment);
    greedy.modify(adds(0, 11));
    await greedy.until(() => greedy.closed !== null, "close");
    expect(greedy.messages.find((m) => m.type === "FatalError")?.error).toMatch(/11 queries exceeds the limit of 10 per session \(knob maxQueriesPerSession\)/);
    expect((await status(deployment)).subscriptions).toBe(10);
    legit.close();
  });

  it("11. a Remove of an id never added is a protocol error", async () => {
    const client = await connected(fresh("remove-unknown"));
    client.remove(42);
    await client.until(() => client.closed !== null, "close");
    expect(client.closed?.code).toBe(1008);
    expect(client.messages.find((m) => m.type === "FatalError")?.error).toMatch(/Query 42 is not in the query set and cannot be removed/);
  });

  it("6. a retried mutation must repeat its function and arguments; a reused request id gets nothing of the other call", async () => {
    const deployment = fresh("retry");
    const sessionId = crypto.randomUUID();
    const first = await connected(deployment, sessionId);
    first.mutate("messages:send", { chatId: "a", author: "ann", body: "original" }, 7);
    await first.until(() => first.mutationResponses.has(7), "first response");
    const original = first.mutationResponses.get(7)!;
    expect(original.success).toBe(true);
    first.close();

    const other = await connected(deployment, sessionId);
    // Same session and request id, other arguments: an error, not the original id and ts.
    other.mutate("messages:send", { chatId: "a", author: "mallory", body: "other" }, 7);
    await other.until(() => other.mutationResponses.has(7), "mismatch response");
    const mismatch = other.mutationResponses.get(7)!;
    expect(mismatch).toMatchObject({ success: false, result: expect.stringMatching(/already used for a different mutation/) });
    expect(JSON.stringify(mismatch)).not.toContain(String(original.result));
    // Another function entirely.
    other.mutate("messages:edit", { id: original.result, body: "hijack" }, 7);
    await other.until(() => other.messages.filter((m) => m.type === "MutationResponse").length === 2, "second mismatch");
    expect(other.messages.filter((m) => m.type === "MutationResponse")[1]).toMatchObject({ success: false, result: expect.stringMatching(/already used/) });
    // The true retry still gets the original outcome.
    other.mutate("messages:send", { chatId: "a", author: "ann", body: "original" }, 7);
    await other.until(() => other.messages.filter((m) => m.type === "MutationResponse").length === 3, "true retry");
    expect(other.messages.filter((m) => m.type === "MutationResponse")[2]).toMatchObject({ success: true, result: original.result, ts: original.ts });
    expect(await status(deployment)).toMatchObject({ documents: 1, commits: 1 });
    other.close();
  });

  it("8. an oversized Mutation fails that request, and the socket goes on", async () => {
    const deployment = fresh("oversized");
    const client = await connected(deployment);
    client.add(0, "messages:list", { chatId: "a" });
    const id = client.mutate("messages:send", { chatId: "a", author: "a", body: "x".repeat(1_100_000) });
    await client.until(() => client.mutationResponses.has(id), "refusal");
    expect(client.mutationResponses.get(id)).toMatchObject({
      success: false,
      result: expect.stringMatching(/Mutation request is too large: Frame of \d+ bytes is larger than the 1048576-byte limit/),
    });
    expect(client.closed).toBeNull();
    await client.mutation("messages:send", { chatId: "a", author: "a", body: "small" });
    await client.until(() => (client.results.get(0) as unknown[] | undefined)?.length === 1, "update");
    expect(client.chainingErrors).toEqual([]);
    client.close();
  });

  it("11. the knob history is pruned to knobHistoryRows", async () => {
    const deployment = fresh("history");
    await setKnobs(deployment, { knobHistoryRows: 10 });
    for (let i = 0; i < 25; i++) await setKnobs(deployment, { refreshQueueLimit: 100 + i });
    const response = await worker.fetch(`http://t/d/${deployment}/api/admin/knobs`, { headers: admin });
    const { history } = (await response.json()) as { history: { name: string; new: number }[] };
    expect(history).toHaveLength(10);
    expect(history[0]).toMatchObject({ name: "refreshQueueLimit", new: 124 });
  });
});
