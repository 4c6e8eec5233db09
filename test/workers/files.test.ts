/**
 * File storage through the Worker, with R2 as wrangler simulates it: upload
 * URLs (forged, reused, expired, oversized, cut off), serving (whole, ranges,
 * revalidation), deletes that wait for their commit, and the sweep of
 * uploads that never finished.
 */
import { describe, expect, it } from "vitest";
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { mutationGeneric } from "convex/server";
import { v } from "convex/values";
import { registerModules } from "../../src/engine/index.ts";
import { deploymentStub } from "../../src/deployment/deployment.ts";
import type { Deployment } from "../../src/deployment/deployment.ts";
import { bindings, callFunction, fresh, setKnobs, status, worker } from "./helpers.ts";

const origin = "http://files.test";

const call = (deployment: string, kind: "query" | "mutation", path: string, args: Record<string, unknown>) =>
  callFunction(origin, deployment, kind, path, args);

const uploadUrl = async (deployment: string) => (await call(deployment, "mutation", "attachments:generateUploadUrl", {})) as string;

function bytes(size: number, seed = 7): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) & 255;
  return out;
}

async function sha256(data: Uint8Array): Promise<string> {
  return btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest("SHA-256", data))));
}

const post = (url: string, body: BodyInit, headers: Record<string, string> = { "Content-Type": "image/png" }) =>
  worker.fetch(url, { method: "POST", headers, body });

async function upload(deployment: string, data: Uint8Array, type = "image/png"): Promise<string> {
  const response = await post(await uploadUrl(deployment), data, { "Content-Type": type });
  expect(response.status).toBe(200);
  return ((await response.json()) as { storageId: string }).storageId;
}

async function objectsOf(deployment: string): Promise<string[]> {
  return (await bindings.FILES.list({ prefix: `${deployment}/` })).objects.map((o) => o.key);
}

describe("file storage", () => {
  it("uploads through a signed URL and serves the bytes back with their type, length, digest and caching", async () => {
    const d = fresh("files");
    const url = await uploadUrl(d);
    expect(url).toMatch(new RegExp(`^${origin}/d/${d}/api/storage/upload\\?token=[\\w-]+\\.[\\w-]+$`));
    const data = bytes(300 * 1024);
    const response = await post(url, data);
    expect(response.status).toBe(200);
    const { storageId } = (await response.json()) as { storageId: string };
    expect(storageId).toMatch(/_storage$/);

    await call(d, "mutation", "attachments:sendImage", { chatId: "c", author: "ann", storageId });
    const [message] = (await call(d, "query", "messages:list", { chatId: "c" })) as { image: string; imageUrl: string }[];
    expect(message).toMatchObject({ image: storageId, imageUrl: `${origin}/d/${d}/api/storage/${storageId}` });

    const served = await worker.fetch(message!.imageUrl);
    expect(served.status).toBe(200);
    expect(served.headers.get("Content-Type")).toBe("image/png");
    expect(served.headers.get("Content-Length")).toBe(String(data.length));
    expect(served.headers.get("ETag")).toBe(`"${await sha256(data)}"`);
    expect(served.headers.get("Cache-Control")).toContain("immutable");
    expect(new Uint8Array(await served.arrayBuffer())).toEqual(data);
    const revalidated = await worker.fetch(message!.imageUrl, { headers: { "If-None-Match": served.headers.get("ETag")! } });
    expect(revalidated.status).toBe(304);

    const files = (await status(d)).files;
    expect(files).toEqual({ count: 1, bytes: data.length, uploading: 0 });
    expect(await objectsOf(d)).toEqual([`${d}/${storageId}`]);
  });

  it("takes an upload URL issued before the object was evicted, and serves the file after another eviction", async () => {
    const d = fresh("files-evicted");
    const url = await uploadUrl(d);
    await evictDurableObject(bindings.DEPLOYMENTS.getByName(d));
    const data = bytes(50_000);
    const response = await post(url, data);
    expect(response.status).toBe(200);
    const { storageId } = (await response.json()) as { storageId: string };
    await evictDurableObject(bindings.DEPLOYMENTS.getByName(d));
    const served = await worker.fetch(`${origin}/d/${d}/api/storage/${storageId}`);
    expect(new Uint8Array(await served.arrayBuffer())).toEqual(data);
    // The URL files get is remembered too: a query after the eviction still answers absolute URLs.
    await call(d, "mutation", "attachments:sendImage", { chatId: "c", author: "ann", storageId });
    await evictDurableObject(bindings.DEPLOYMENTS.getByName(d));
    const [message] = (await call(d, "query", "messages:list", { chatId: "c" })) as { imageUrl: string }[];
    expect(message!.imageUrl).toBe(`${origin}/d/${d}/api/storage/${storageId}`);
  });

  it("refuses a reused, forged, foreign or expired upload URL, and stores nothing", async () => {
    const d = fresh("files-refused");
    const url = await uploadUrl(d);
    expect((await post(url, bytes(10))).status).toBe(200);
    const reused = await post(url, bytes(10));
    expect(reused.status).toBe(410);
    expect(await reused.json()).toMatchObject({ code: "UploadUrlUsed" });

    const fresh_ = new URL(await uploadUrl(d));
    const token = fresh_.searchParams.get("token")!;
    const forged = await post(`${origin}/d/${d}/api/storage/upload?token=${token.slice(0, -4)}AAAA`, bytes(10));
    expect(forged.status).toBe(403);
    expect(await forged.json()).toMatchObject({ code: "UploadUrlInvalid" });
    const other = fresh("files-other");
    const foreign = await post(`${origin}/d/${other}/api/storage/upload?token=${token}`, bytes(10));
    expect(foreign.status).toBe(403);
    expect((await post(`${origin}/d/${d}/api/storage/upload`, bytes(10))).status).toBe(400);

    await deploymentStub(bindings, d).advanceClock(3_600_001);
    const expired = await post(fresh_.toString(), bytes(10));
    expect(expired.status).toBe(410);
    expect(await expired.json()).toMatchObject({ code: "UploadUrlExpired" });

    expect((await status(d)).files).toMatchObject({ count: 1, uploading: 0 });
    expect(await objectsOf(d)).toHaveLength(1);
    expect(await objectsOf(other)).toEqual([]);
  });

  it("answers 413 past maxFileBytes before storing a byte, and the URL still takes a smaller file", async () => {
    const d = fresh("files-large");
    await setKnobs(d, { maxFileBytes: 4096 });
    const url = await uploadUrl(d);
    const refused = await post(url, bytes(4097));
    expect(refused.status).toBe(413);
    expect(await refused.json()).toMatchObject({ code: "FileTooLarge" });
    expect(await objectsOf(d)).toEqual([]);
    expect((await post(url, bytes(4096))).status).toBe(200);
    expect((await status(d)).files).toMatchObject({ count: 1, bytes: 4096 });
  });

  it("stores nothing of an upload cut off halfway, or shorter than it said", async () => {
    const d = fresh("files-cut");
    const half = bytes(64 * 1024);
    const cutOff = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(half);
      },
      pull(controller) {
        controller.error(new Error("connection reset"));
      },
    });
    const cut = await post(await uploadUrl(d), cutOff, { "Content-Type": "video/mp4", "Content-Length": String(128 * 1024) });
    expect(cut.status).toBe(400);
    expect(await cut.json()).toMatchObject({ code: "UploadIncomplete" });

    const short = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(half);
        controller.close();
      },
    });
    expect((await post(await uploadUrl(d), short, { "Content-Type": "video/mp4", "Content-Length": String(128 * 1024) })).status).toBe(400);
    expect((await status(d)).files).toEqual({ count: 0, bytes: 0, uploading: 0 });
    expect(await objectsOf(d)).toEqual([]);
  });

  it("serves byte ranges (206) for media, HEAD, and 416 past the end", async () => {
    const d = fresh("files-range");
    const data = bytes(10_000);
    const id = await upload(d, data, "video/mp4");
    const url = `${origin}/d/${d}/api/storage/${id}`;
    const first = await worker.fetch(url, { headers: { Range: "bytes=0-99" } });
    expect(first.status).toBe(206);
    expect(first.headers.get("Content-Range")).toBe("bytes 0-99/10000");
    expect(first.headers.get("Content-Length")).toBe("100");
    expect(new Uint8Array(await first.arrayBuffer())).toEqual(data.slice(0, 100));
    const tail = await worker.fetch(url, { headers: { Range: "bytes=-10" } });
    expect(tail.headers.get("Content-Range")).toBe("bytes 9990-9999/10000");
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(data.slice(9990));
    const open = await worker.fetch(url, { headers: { Range: "bytes=9000-" } });
    expect(new Uint8Array(await open.arrayBuffer())).toEqual(data.slice(9000));
    const head = await worker.fetch(url, { method: "HEAD" });
    expect([head.status, head.headers.get("Content-Length"), head.headers.get("Accept-Ranges")]).toEqual([200, "10000", "bytes"]);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    const past = await worker.fetch(url, { headers: { Range: "bytes=10000-" } });
    expect(past.status).toBe(416);
    expect(past.headers.get("Content-Range")).toBe("bytes */10000");
    await past.arrayBuffer();
  });

  it("deletes a file's bytes only after its delete commits; a mutation that deletes and throws deletes nothing", async () => {
    const d = fresh("files-delete");
    const id = await upload(d, bytes(1000));
    const messageId = await call(d, "mutation", "attachments:sendImage", { chatId: "c", author: "ann", storageId: id });
    const url = `${origin}/d/${d}/api/storage/${id}`;
    const deleteThenThrow = registerModules({
      t: {
        run: mutationGeneric({
          args: { id: v.id("_storage") },
          handler: async (ctx, { id }) => {
            await ctx.storage.delete(id);
            throw new Error("changed my mind");
          },
        }),
      },
    }).get("t:run")!;
    await runInDurableObject(bindings.DEPLOYMENTS.getByName(d), async (instance: Deployment) => {
      const { engine } = instance.runtime;
      await expect(engine.exclusive(() => engine.executeMutation(deleteThenThrow, { id }))).rejects.toThrow(/changed my mind/);
    });
    expect((await worker.fetch(url)).status).toBe(200);
    expect(await objectsOf(d)).toHaveLength(1);

    await call(d, "mutation", "attachments:removeImage", { id: messageId });
    const gone = await worker.fetch(url);
    expect(gone.status).toBe(404);
    expect(await gone.json()).toMatchObject({ code: "FileNotFound" });
    const [message] = (await call(d, "query", "messages:list", { chatId: "c" })) as Record<string, unknown>[];
    expect(message).not.toHaveProperty("imageUrl");
    await expect.poll(() => objectsOf(d)).toEqual([]);
    expect((await status(d)).files).toMatchObject({ count: 0, bytes: 0 });
  });

  it("never serves one deployment's file from another", async () => {
    const d = fresh("files-mine");
    const other = fresh("files-theirs");
    const id = await upload(d, bytes(100));
    await upload(other, bytes(100, 9));
    expect((await worker.fetch(`${origin}/d/${other}/api/storage/${id}`)).status).toBe(404);
    expect((await worker.fetch(`${origin}/d/${d}/api/storage/${id}`)).status).toBe(200);
    expect((await worker.fetch(`${origin}/d/${d}/api/storage/not-an-id`)).status).toBe(404);
  });

  it("deletes the bytes of an upload that never finished once uploadTimeoutMs has passed (a Worker that died mid-upload)", async () => {
    const d = fresh("files-sweep");
    const stub = deploymentStub(bindings, d);
    const token = new URL(await uploadUrl(d)).searchParams.get("token")!;
    const started = await stub.beginUpload(token, 5);
    if (!started.ok) throw new Error(started.message);
    // What a dying Worker left behind: bytes in R2, no _storage row.
    await bindings.FILES.put(`${d}/${started.storageId}`, "parti");
    expect((await status(d)).files).toMatchObject({ count: 0, uploading: 1 });
    await runDurableObjectAlarm(bindings.DEPLOYMENTS.getByName(d));
    expect(await objectsOf(d)).toHaveLength(1); // not yet: it may still be streaming
    await stub.advanceClock(900_001);
    await runDurableObjectAlarm(bindings.DEPLOYMENTS.getByName(d));
    expect(await objectsOf(d)).toEqual([]);
    expect((await status(d)).files).toMatchObject({ count: 0, uploading: 0 });
    // The Worker comes back to finish it: refused, and nothing is recorded.
    expect(await stub.finishUpload(started.storageId, { sha256: "x", size: 5, contentType: null })).toBe(false);
    expect((await status(d)).files).toMatchObject({ count: 0 });
  });
});
