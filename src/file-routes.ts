/**
 * File storage's HTTP side (docs/FILES.md), at `/api/storage/...` of a
 * deployment, as Convex serves it: `POST /upload?token=...` takes the bytes
 * of an upload URL, `GET /<storage id>` serves a file. The Worker streams the
 * bytes between the client and R2 itself, hashing an upload on the way
 * (`crypto.DigestStream`): a file never passes through the deployment
 * object's memory, which only checks tokens and records metadata.
 */
import { Hono, type Context } from "hono";
import { digestBase64 } from "./engine/index.ts";
import { fileKey } from "./deployment/r2-blob-store.ts";
import { problem, stub, type AppEnv } from "./http-context.ts";

export const fileRoutes = new Hono<AppEnv>();

/** Files never change under their id: caches may keep them (a deleted file stays in a cache it reached). */
const IMMUTABLE = "public, max-age=31536000, immutable";

fileRoutes.post("/upload", async (c) => {
  const token = c.req.query("token");
  if (!token) return problem(c, 400, "UploadTokenMissing", "An upload URL carries ?token=...: get one from ctx.storage.generateUploadUrl()");
  const length = c.req.header("Content-Length");
  if (length === undefined || !/^\d+$/.test(length)) {
    return problem(c, 411, "LengthRequired", 'An upload needs a Content-Length: send the file itself as the body (fetch(url, { method: "POST", body: file }))');
  }
  const size = Number(length);
  const started = await stub(c).beginUpload(token, size);
  if (!started.ok) return problem(c, started.status, started.code, started.message);
  const contentType = c.req.header("Content-Type") || null;
  let sha256: string;
  try {
    sha256 = await streamToR2(c.env.FILES, fileKey(c.get("deployment"), started.storageId), c.req.raw.body, size, contentType);
  } catch (error) {
    await stub(c).abortUpload(started.storageId);
    return problem(c, 400, "UploadIncomplete", `The upload did not complete (${(error as Error).message}); nothing was stored`);
  }
  if (!(await stub(c).finishUpload(started.storageId, { sha256, size, contentType }))) {
    return problem(c, 408, "UploadTimedOut", "The upload took longer than this deployment allows (knob uploadTimeoutMs); nothing was stored");
  }
  return c.json({ storageId: started.storageId });
});

/** Chunks the digest may fall behind the upload before the upload waits for it. */
const MAX_HASH_BACKLOG = 64;

/** The body, counted and hashed as it goes, into R2 under `key`; its SHA-256, base64. Fails unless exactly `size` bytes arrive. */
async function streamToR2(bucket: R2Bucket, key: string, body: ReadableStream<Uint8Array> | null, size: number, contentType: string | null): Promise<string> {
  const digest = new crypto.DigestStream("SHA-256");
  const hash = digest.getWriter();
  const hashing = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      controller.enqueue(chunk);
      // Waiting for each write made uploads slower (docs/BENCHMARKS.md); wait only when the digest is
      // MAX_HASH_BACKLOG chunks behind, which bounds what it holds. A failed write fails the digest, read below.
      hash.write(chunk).catch(() => undefined);
      if ((hash.desiredSize ?? 0) < -MAX_HASH_BACKLOG) return hash.ready;
    },
    flush: () => hash.close(),
  });
  // R2 needs a stream of known length; this one also errors if the client sends fewer bytes than it declared.
  const sized = new FixedLengthStream(size);
  const source = body ?? new Blob([]).stream();
  try {
    await Promise.all([
      source.pipeThrough(hashing).pipeTo(sized.writable),
      bucket.put(key, sized.readable, contentType ? { httpMetadata: { contentType } } : {}),
    ]);
  } catch (error) {
    // The digest of a stream that never ended is never read.
    digest.digest.catch(() => undefined);
    await hash.abort(error).catch(() => undefined);
    throw error;
  }
  return digestBase64(await digest.digest);
}

fileRoutes.get("/:storageId", async (c) => {
  const storageId = c.req.param("storageId");
  const file = await stub(c).fileMetadata(storageId);
  if (!file) return notFound(c, storageId);
  const etag = `"${file.sha256}"`;
  const headers = new Headers({
    ETag: etag,
    "Cache-Control": IMMUTABLE,
    "Accept-Ranges": "bytes",
    "Content-Type": file.contentType ?? "application/octet-stream",
  });
  if (
    c.req
      .header("If-None-Match")
      ?.split(",")
      .some((tag) => tag.trim() === etag || tag.trim() === "*")
  )
    return new Response(null, { status: 304, headers });
  const range = requestedRange(c.req.header("Range"), file.size);
  if (range === "unsatisfiable") {
    headers.set("Content-Range", `bytes */${file.size}`);
    return new Response(JSON.stringify({ code: "RangeNotSatisfiable", message: `The file has ${file.size} bytes` }), { status: 416, headers });
  }
  const object = await c.env.FILES.get(fileKey(c.get("deployment"), storageId), range ? { range } : {});
  if (!object) {
    console.error(`file ${storageId} has a _storage row but no bytes in R2`);
    return notFound(c, storageId);
  }
  if (!range) {
    headers.set("Content-Length", String(file.size));
    return new Response(object.body, { status: 200, headers });
  }
  headers.set("Content-Length", String(range.length));
  headers.set("Content-Range", `bytes ${range.offset}-${range.offset + range.length - 1}/${file.size}`);
  return new Response(object.body, { status: 206, headers });
});

const notFound = (c: Context<AppEnv>, storageId: string) => problem(c, 404, "FileNotFound", `No file ${JSON.stringify(storageId)} in this deployment`);

/**
 * One byte range of a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`), or null to send the
 * whole file (no header, one that is not bytes, or several ranges, which a server may answer whole).
 */
export function requestedRange(header: string | undefined, size: number): { offset: number; length: number } | "unsatisfiable" | null {
  const match = header?.trim().match(/^bytes=(\d*)-(\d*)$/);
  if (!match || (match[1] === "" && match[2] === "")) return null;
  if (match[1] === "") {
    const suffix = Math.min(Number(match[2]), size);
    return suffix === 0 ? "unsatisfiable" : { offset: size - suffix, length: suffix };
  }
  const start = Number(match[1]);
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { offset: start, length: end - start + 1 };
}
