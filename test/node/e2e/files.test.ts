/**
 * File storage end to end: `wrangler dev` (R2 simulated on disk) serving an
 * app that uses ctx.storage the way the public Convex file demos do,
 * driven by the official clients. Files of 300 KiB and 8 MiB go up through
 * upload URLs and an HTTP action and come back byte for byte; a live list
 * shows their URLs; `_storage` lists them as a system table; an action
 * stores what it fetched from another service (a loopback stand-in).
 *
 * With CALMSYNC_DEMOS_DIR naming a checkout of get-convex/convex-demos, the
 * same steps also run against the demos' own `convex/` folders, unmodified
 * (they are not vendored here; docs/FILES.md says how to run them).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { startDevServer, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";
import { adminStatus, createDeployment, setKnobs } from "../../../scripts/lib/admin.ts";
import { until } from "../../../scripts/lib/until.ts";

const FIXTURE = fileURLToPath(new URL("../../fixtures/files-app/convex", import.meta.url));
const DEMOS = process.env.CALMSYNC_DEMOS_DIR;
const CLIENT_ORIGIN = "http://app.example";

const api = anyApi;
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("base64");

function bytes(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) out[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return out;
}

const SMALL = bytes(300 * 1024, 1);
const LARGE = bytes(8 * 1024 * 1024, 2);
const PNG = bytes(20_000, 3);

/** A loopback stand-in for the services the apps fetch from: an image host and OpenAI's two endpoints. */
async function imageService(): Promise<{ url: string; close: () => Promise<void> }> {
  let url = "";
  const server: Server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      if (request.url === "/image.png") {
        response.writeHead(200, { "Content-Type": "image/png", "Content-Length": PNG.length }).end(PNG);
      } else if (request.url === "/v1/moderations") {
        response
          .writeHead(200, { "Content-Type": "application/json" })
          .end(JSON.stringify({ id: "m", model: "m", results: [{ flagged: false, categories: {}, category_scores: {} }] }));
      } else if (request.url === "/v1/images/generations") {
        response.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ created: 0, data: [{ url: `${url}/image.png` }] }));
      } else response.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function uploadThroughUrl(client: ConvexHttpClient, module: string, data: Uint8Array<ArrayBuffer>, type: string): Promise<string> {
  const url = (await client.mutation(api[module]!.generateUploadUrl!, {})) as string;
  const response = await fetch(url, { method: "POST", headers: { "Content-Type": type }, body: data });
  expect(response.status).toBe(200);
  return ((await response.json()) as { storageId: string }).storageId;
}

async function download(url: string): Promise<{ sha256: string; type: string | null; size: number }> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  const body = new Uint8Array(await response.arrayBuffer());
  return { sha256: sha256(body), type: response.headers.get("Content-Type"), size: body.length };
}

/** Starts `wrangler dev` for `app` with its vars, and the clients; stopped after the file's tests. */
function serve(app: string, vars: () => Record<string, string>) {
  const state: { server?: DevServer; http?: ConvexHttpClient; live?: ConvexClient } = {};
  beforeAll(async () => {
    state.server = await startDevServer({ app, vars: vars() });
    state.http = new ConvexHttpClient(state.server.url, { skipConvexDeploymentUrlCheck: true });
    state.live = new ConvexClient(state.server.url, {
      skipConvexDeploymentUrlCheck: true,
      webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
      logger: false,
    });
  });
  afterAll(async () => {
    await state.live?.close();
    await state.server?.stop();
  });
  return state as Required<typeof state>;
}

/** Subscribes to `messages:list` and waits until a message has `body === storageId` and a URL in `field`. */
async function liveUrl(live: ConvexClient, storageId: string, field: "url" | "body" = "url"): Promise<string> {
  let found: string | null = null;
  const stop = live.onUpdate(api.messages!.list!, {}, (messages: Record<string, string>[]) => {
    const message = messages.find((m) => m.body === storageId || m._storageId === storageId || (field === "body" && m.format === "dall-e"));
    if (message && typeof message[field] === "string" && message[field]!.startsWith("http")) found = message[field]!;
  });
  try {
    await until(() => found !== null, `a live message with the URL of ${storageId}`);
  } finally {
    stop();
  }
  return found!;
}

/** The 300 KiB and 8 MiB files, each uploaded through an upload URL and posted with `messages:sendImage`. */
async function uploadBoth(http: ConvexHttpClient, types: [string, string]): Promise<{ storageId: string; data: Uint8Array<ArrayBuffer>; type: string }[]> {
  const sent = [];
  for (const [data, type] of [
    [SMALL, types[0]],
    [LARGE, types[1]],
  ] as const) {
    const storageId = await uploadThroughUrl(http, "messages", data, type);
    await http.mutation(api.messages!.sendImage!, { storageId, author: "ann" });
    sent.push({ storageId, data, type });
  }
  return sent;
}

let service: Awaited<ReturnType<typeof imageService>>;
beforeAll(async () => {
  service = await imageService();
});
afterAll(() => service?.close());

describe("file storage against wrangler dev (an app using every part of ctx.storage the demos use)", () => {
  const app = serve(FIXTURE, () => ({ CLIENT_ORIGIN, IMAGE_SERVICE_KEY: "k" }));

  it("uploads 300 KiB and 8 MiB files through upload URLs; the live list shows URLs serving the same bytes", async () => {
    for (const { storageId, data, type } of await uploadBoth(app.http, ["image/jpeg", "video/mp4"])) {
      const url = await liveUrl(app.live, storageId);
      expect(url).toBe(`${app.server.url}/api/storage/${storageId}`);
      expect(await download(url)).toEqual({ sha256: sha256(data), type, size: data.length });
    }
  });

  it("lists uploads from _storage as a system table, with Convex's fields", async () => {
    const rows = (await app.http.query(api.files!.listUploads!, {})) as Record<string, unknown>[];
    expect(rows.map(({ sha256, size, contentType, author }) => ({ sha256, size, contentType, author }))).toEqual([
      { sha256: sha256(SMALL), size: SMALL.length, contentType: "image/jpeg", author: "ann" },
      { sha256: sha256(LARGE), size: LARGE.length, contentType: "video/mp4", author: "ann" },
    ]);
    expect(Object.keys(rows[0]!).sort()).toEqual(["_creationTime", "_id", "author", "contentType", "sha256", "size"]);
    const status = await adminStatus<{ files: { count: number; bytes: number } }>(app.server.url);
    expect(status.files).toMatchObject({ count: 2, bytes: SMALL.length + LARGE.length });
  });

  it("stores a request body from an HTTP action and serves it back from ctx.storage.get, with the CORS origin from the environment", async () => {
    const sent = await fetch(`${app.server.url}/http/sendImage?author=bob`, { method: "POST", headers: { "Content-Type": "image/png" }, body: LARGE });
    expect(sent.status).toBe(200);
    expect(sent.headers.get("Access-Control-Allow-Origin")).toBe(CLIENT_ORIGIN);
    const { storageId } = (await sent.json()) as { storageId: string };
    expect(await download(`${app.server.url}/http/getImage?storageId=${storageId}`)).toMatchObject({ sha256: sha256(LARGE), type: "image/png" });
    expect(await app.http.query(api.files!.metadata!, { id: storageId })).toEqual({
      storageId,
      sha256: sha256(LARGE),
      size: LARGE.length,
      contentType: "image/png",
    });
    expect((await fetch(`${app.server.url}/http/getImage?storageId=${storageId.slice(0, -1)}x`)).status).toBeGreaterThanOrEqual(400);
  });

  it("stores what an action fetched, with a key read from process.env", async () => {
    const storageId = (await app.http.action(api.files!.importImage!, { url: `${service.url}/image.png`, author: "cat" })) as string;
    expect(await download(await liveUrl(app.live, storageId))).toEqual({ sha256: sha256(PNG), type: "image/png", size: PNG.length });
    expect(((await app.http.query(api.files!.listStorage!, {})) as unknown[]).length).toBe(4);
  });

  it("deletes a file: its URL answers 404 and the list no longer shows it", async () => {
    const storageId = await uploadThroughUrl(app.http, "messages", SMALL, "image/jpeg");
    const url = `${app.server.url}/api/storage/${storageId}`;
    expect((await fetch(url)).status).toBe(200);
    await app.http.mutation(api.messages!.removeImage!, { storageId });
    expect((await fetch(url)).status).toBe(404);
  });
});

describe("file storage with sync shards (wrangler dev)", () => {
  const app = serve(FIXTURE, () => ({ CLIENT_ORIGIN, IMAGE_SERVICE_KEY: "k" }));

  it("clients on shards get upload URLs from their mutations and see the file's URL in their live list", async () => {
    const url = await createDeployment(app.server.url, "files-shards");
    await setKnobs(url, { syncShards: 3 });
    const clients = Array.from(
      { length: 3 },
      () =>
        new ConvexClient(url, { skipConvexDeploymentUrlCheck: true, webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket, logger: false }),
    );
    try {
      for (const [i, client] of clients.entries()) {
        const uploadUrl = (await client.mutation(api.messages!.generateUploadUrl!, {})) as string;
        expect(uploadUrl.startsWith(`${url}/api/storage/upload?token=`)).toBe(true);
        const data = bytes(100_000, 10 + i);
        const sent = await fetch(uploadUrl, { method: "POST", headers: { "Content-Type": "image/webp" }, body: data });
        const { storageId } = (await sent.json()) as { storageId: string };
        await client.mutation(api.messages!.sendImage!, { storageId, author: `client-${i}` });
        // Every client, whichever shard holds it, sees the new image's URL.
        for (const watcher of clients) expect(await download(await liveUrl(watcher, storageId))).toMatchObject({ sha256: sha256(data), type: "image/webp" });
      }
      const status = await adminStatus<{ files: { count: number }; shards: { sessions: number | null }[] }>(url);
      expect(status.files.count).toBe(3);
      expect(status.shards.reduce((sum, shard) => sum + (shard.sessions ?? 0), 0)).toBe(3);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });
});

/** The public demos themselves, unmodified, when a checkout is at hand. */
describe.runIf(DEMOS)("the Convex file demos, unmodified (CALMSYNC_DEMOS_DIR)", () => {
  describe("file-storage", () => {
    const app = serve(join(DEMOS ?? "", "file-storage/convex"), () => ({}));
    it("uploads 300 KiB and 8 MiB files; the live list shows their URLs", async () => {
      for (const { storageId, data, type } of await uploadBoth(app.http, ["image/jpeg", "image/png"])) {
        expect(await download(await liveUrl(app.live, storageId))).toEqual({ sha256: sha256(data), type, size: data.length });
      }
    });
  });

  describe("file-storage-with-http", () => {
    const app = serve(join(DEMOS ?? "", "file-storage-with-http/convex"), () => ({ CLIENT_ORIGIN }));
    it("stores through its HTTP action and serves through the other", async () => {
      for (const data of [SMALL, LARGE]) {
        const sent = await fetch(`${app.server.url}/http/sendImage?author=ann`, { method: "POST", headers: { "Content-Type": "image/jpeg" }, body: data });
        expect(sent.status).toBe(200);
        expect(sent.headers.get("Access-Control-Allow-Origin")).toBe(CLIENT_ORIGIN);
        const messages = (await app.http.query(api.messages!.list!, {})) as { body: string }[];
        const storageId = messages.at(-1)!.body;
        expect(await download(`${app.server.url}/http/getImage?storageId=${storageId}`)).toMatchObject({
          sha256: sha256(data),
          type: "image/jpeg",
          size: data.length,
        });
      }
      const preflight = await fetch(`${app.server.url}/http/sendImage`, {
        method: "OPTIONS",
        headers: { Origin: CLIENT_ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Content-Type" },
      });
      expect(preflight.headers.get("Access-Control-Allow-Origin")).toBe(CLIENT_ORIGIN);
    });
  });

  describe("system-tables", () => {
    const app = serve(join(DEMOS ?? "", "system-tables/convex"), () => ({}));
    it("lists the uploads from _storage", async () => {
      const sent = await uploadBoth(app.http, ["image/jpeg", "image/png"]);
      for (const { storageId, data, type } of sent) {
        expect(await download((await app.http.query(api.admin!.getFileUrl!, { id: storageId })) as string)).toEqual({
          sha256: sha256(data),
          type,
          size: data.length,
        });
      }
      const ids = sent.map((file) => file.storageId);
      const files = (await app.http.query(api.admin!.listFiles!, {})) as Record<string, unknown>[];
      expect(files.map((f) => [f._id, f.sha256, f.size, f.contentType, f.author])).toEqual([
        [ids[0], sha256(SMALL), SMALL.length, "image/jpeg", "ann"],
        [ids[1], sha256(LARGE), LARGE.length, "image/png", "ann"],
      ]);
    });
  });

  describe("dall-e-storage-action", () => {
    const app = serve(join(DEMOS ?? "", "dall-e-storage-action/convex"), () => ({ OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${service.url}/v1` }));
    it("stores the generated image from its action; the live list shows its URL", async () => {
      await app.http.action(api.dallE!.send!, { prompt: "a cat", author: "ann" });
      expect(await download(await liveUrl(app.live, "", "body"))).toEqual({ sha256: sha256(PNG), type: "image/png", size: PNG.length });
    });
  });
});
