import { describe, expect, it } from "vitest";
import { actionGeneric, mutationGeneric, queryGeneric } from "convex/server";
import { v } from "convex/values";
import {
  DEFAULT_ENGINE_LIMITS,
  Engine,
  FileStorage,
  FunctionError,
  MemoryBlobStore,
  MemoryStore,
  registerModules,
  Schema,
  SubscriptionIndex,
  UploadTokens,
  newUploadSecret,
  type CommitEvent,
} from "../index.ts";

const functions = registerModules({
  files: {
    url: queryGeneric({ args: { id: v.id("_storage") }, handler: (ctx, { id }) => ctx.storage.getUrl(id) }),
    metadata: queryGeneric({ args: { id: v.id("_storage") }, handler: (ctx, { id }) => ctx.storage.getMetadata(id) }),
    list: queryGeneric({ args: {}, handler: (ctx) => ctx.db.system.query("_storage").collect() }),
    row: queryGeneric({ args: { id: v.id("_storage") }, handler: (ctx, { id }) => ctx.db.system.get(id) }),
    uploadUrl: mutationGeneric({ args: {}, handler: (ctx) => ctx.storage.generateUploadUrl() }),
    remove: mutationGeneric({ args: { id: v.id("_storage") }, handler: (ctx, { id }) => ctx.storage.delete(id) }),
    removeThenThrow: mutationGeneric({
      args: { id: v.id("_storage") },
      handler: async (ctx, { id }) => {
        await ctx.storage.delete(id);
        throw new Error("changed my mind");
      },
    }),
    store: actionGeneric({
      args: { text: v.string(), type: v.optional(v.string()), sha256: v.optional(v.string()) },
      handler: (ctx, { text, type, sha256 }) => ctx.storage.store(new Blob([text], { type: type ?? "" }), sha256 === undefined ? undefined : { sha256 }),
    }),
    read: actionGeneric({
      args: { id: v.id("_storage") },
      handler: async (ctx, { id }) => {
        const blob = await ctx.storage.get(id);
        return blob === null ? null : { text: await blob.text(), type: blob.type };
      },
    }),
    removeFromAction: actionGeneric({ args: { id: v.id("_storage") }, handler: (ctx, { id }) => ctx.storage.delete(id) }),
  },
});

function setup() {
  let clock = Date.UTC(2026, 11, 3);
  const blobs = new MemoryBlobStore();
  const tokens = new UploadTokens({ secret: newUploadSecret, ttlMs: () => 3_600_000, now: () => clock });
  const files = new FileStorage({ blobs, tokens, baseUrl: () => "https://chat.example" });
  const engine = new Engine({ schema: new Schema(null), functions, store: new MemoryStore(), files, now: () => clock });
  const commits: CommitEvent[] = [];
  engine.onCommit((commit) => commits.push(commit));
  const query = async (name: string, args: Record<string, string> = {}) => (await engine.runQuery(`files:${name}`, args)).value;
  const store = async (text: string, options: { type?: string; sha256?: string } = {}) =>
    (await engine.runAction("files:store", { text, ...options })).value as string;
  return { engine, blobs, tokens, commits, query, store, advance: (ms: number) => (clock += ms) };
}

const sha256 = async (text: string) => btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))));

describe("file storage (ctx.storage)", () => {
  it("stores from an action and reads back the bytes, the row, the metadata and the URL, as Convex shapes them", async () => {
    const { blobs, query, store, engine } = setup();
    const id = await store("hello, files", { type: "text/plain" });
    expect(id).toMatch(/_storage$/);
    expect(blobs.blobs.has(id)).toBe(true);
    const row = (await query("row", { id })) as Record<string, unknown>;
    expect(row).toEqual({ _id: id, _creationTime: expect.any(Number), sha256: await sha256("hello, files"), size: 12, contentType: "text/plain" });
    expect(await query("metadata", { id })).toEqual({ storageId: id, sha256: await sha256("hello, files"), size: 12, contentType: "text/plain" });
    expect(await query("url", { id })).toBe(`https://chat.example/api/storage/${id}`);
    expect(await query("list")).toEqual([row]);
    expect((await engine.runAction("files:read", { id })).value).toEqual({ text: "hello, files", type: "text/plain" });
    // No type: no contentType field, and the metadata says null.
    const untyped = await store("raw");
    expect(await query("row", { id: untyped })).not.toHaveProperty("contentType");
    expect(((await query("metadata", { id: untyped })) as { contentType: unknown }).contentType).toBeNull();
  });

  it("checks a given sha256 and refuses the store when it differs (nothing is kept)", async () => {
    const { blobs, query, store } = setup();
    await expect(store("abc", { sha256: await sha256("abd") })).rejects.toThrow(/Sha256 mismatch/);
    expect(blobs.blobs.size).toBe(0);
    expect(await query("list")).toEqual([]);
    expect(await store("abc", { sha256: await sha256("abc") })).toMatch(/_storage$/);
  });

  it("deletes the bytes only after the commit: a mutation that deletes and throws deletes nothing", async () => {
    const { engine, blobs, query, store } = setup();
    const id = await store("keep me");
    await expect(engine.runMutation("files:removeThenThrow", { id })).rejects.toThrow(/changed my mind/);
    expect(blobs.blobs.has(id)).toBe(true);
    expect(await query("url", { id })).not.toBeNull();
    await engine.runMutation("files:remove", { id });
    await Promise.resolve();
    expect(blobs.blobs.has(id)).toBe(false);
    expect(await query("url", { id })).toBeNull();
    expect(await query("metadata", { id })).toBeNull();
    expect((await engine.runAction("files:read", { id })).value).toBeNull();
    // Deleting again names the id; so does deleting from an action.
    await expect(engine.runMutation("files:remove", { id })).rejects.toThrow(`Storage ID "${id}" not found`);
    const other = await store("other");
    await engine.runAction("files:removeFromAction", { id: other });
    expect(await query("list")).toEqual([]);
  });

  it("invalidates exactly the queries that read the file's row", async () => {
    const { engine, store, commits } = setup();
    const first = await store("one");
    const second = await store("two");
    const index = new SubscriptionIndex<string>();
    for (const [name, args] of [
      ["url", { id: first }],
      ["metadata", { id: second }],
      ["list", {}],
    ] as const) {
      const outcome = await engine.executeQuery(engine.resolve(`files:${name}`, "query"), args);
      index.add(`${name}`, outcome.readSet, outcome.searchReads);
    }
    commits.length = 0;
    await engine.runMutation("files:remove", { id: first });
    expect([...index.affected(commits[0]!.writes)].sort()).toEqual(["list", "url"]);
    commits.length = 0;
    await store("three");
    expect([...index.affected(commits[0]!.writes)]).toEqual(["list"]);
  });

  it("signs upload URLs that verify here only, until they expire", async () => {
    const { engine, tokens, advance } = setup();
    const url = new URL((await engine.runMutation("files:uploadUrl", {})).value as string);
    expect(`${url.origin}${url.pathname}`).toBe("https://chat.example/api/storage/upload");
    const token = url.searchParams.get("token")!;
    expect(await tokens.verify(token)).toMatchObject({ ok: true });
    const stranger = new UploadTokens({ secret: newUploadSecret, ttlMs: () => 3_600_000, now: Date.now });
    expect(await stranger.verify(token)).toEqual({ ok: false, reason: "forged" });
    expect(await tokens.verify(`${token.slice(0, -2)}xx`)).toEqual({ ok: false, reason: "forged" });
    expect(await tokens.verify("not-a-token")).toEqual({ ok: false, reason: "forged" });
    advance(3_600_001);
    expect(await tokens.verify(token)).toEqual({ ok: false, reason: "expired" });
  });

  it("refuses ids of other tables and files over maxFileBytes, with clear errors", async () => {
    const { engine, query } = setup();
    const error = await engine.runQuery("files:url", { id: "0123456789abcdefghjkmnpqrsmessages" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FunctionError);
    const small = new Engine({
      schema: new Schema(null),
      functions,
      store: new MemoryStore(),
      files: engine.files,
      limits: () => ({ ...DEFAULT_ENGINE_LIMITS, maxFileBytes: 4 }),
    });
    await expect(small.runAction("files:store", { text: "12345" })).rejects.toThrow(/too large: 5 bytes, limit 4 \(knob maxFileBytes\)/);
    expect(await query("list")).toEqual([]);
  });

  it("says so when the deployment has no file storage", async () => {
    const engine = new Engine({ schema: new Schema(null), functions, store: new MemoryStore() });
    await expect(engine.runMutation("files:uploadUrl", {})).rejects.toThrow(/File storage is not configured/);
  });
});
