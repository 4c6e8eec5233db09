/**
 * A large file through `wrangler dev` (R2 simulated on disk): uploaded to an
 * upload URL and downloaded from its file URL, both streamed by the Worker,
 * beside the same bytes through an HTTP action (`request.blob()` then
 * `ctx.storage.store`, which holds them in the deployment object's memory)
 * and back through `ctx.storage.get`. Reports throughput and how far the
 * runtime's resident memory rose above where it started, sampled every 20 ms.
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { table } from "./harness.ts";
import { startDevServer, type DevServer } from "../lib/wrangler-dev.ts";
import { setKnobs } from "../lib/admin.ts";

const APP = fileURLToPath(new URL("../../test/fixtures/files-app/convex", import.meta.url));
const MiB = 1_048_576;

interface Measured {
  ms: number;
  peakRiseBytes: number;
  sha256: string;
}

/** Runs `work` while sampling the runtime's RSS; the rise is the peak over the sample just before. */
async function measure(server: DevServer, work: () => Promise<string>): Promise<Measured> {
  const before = server.runtimeRssBytes() ?? 0;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, server.runtimeRssBytes() ?? 0)), 20);
  const start = performance.now();
  try {
    const sha256 = await work();
    return { ms: performance.now() - start, peakRiseBytes: Math.max(0, peak - before), sha256 };
  } finally {
    clearInterval(sampler);
  }
}

async function drain(response: Response): Promise<string> {
  if (!response.ok || !response.body) throw new Error(`download: ${response.status} ${await response.text()}`);
  const hash = createHash("sha256");
  for await (const chunk of response.body) hash.update(chunk);
  return hash.digest("base64");
}

/** One path's upload and download, on a runtime of its own, measured after a first round of the same. */
interface FilePath {
  name: string;
  /** Knobs its runtime runs with. */
  knobs?: Record<string, number>;
  upload(server: DevServer, client: ConvexHttpClient, data: Uint8Array<ArrayBuffer>): Promise<string>;
  download(server: DevServer, storageId: string): Promise<Response>;
}

const PATHS: FilePath[] = [
  {
    name: "upload URL, file URL (streamed by the Worker)",
    async upload(server, client, data) {
      const url = (await client.mutation(anyApi.messages!.generateUploadUrl!, {})) as string;
      const response = await fetch(url, { method: "POST", headers: { "Content-Type": "video/mp4" }, body: data });
      if (!response.ok) throw new Error(`upload: ${response.status} ${await response.text()}`);
      return ((await response.json()) as { storageId: string }).storageId;
    },
    download: (server, storageId) => fetch(`${server.url}/api/storage/${storageId}`),
  },
  {
    name: "HTTP action: store(request.blob()), then new Response(get(id)) (in the object's memory)",
    // An HTTP action's body is capped at 20 MiB by default (Convex's limit): lifted to its most, so both paths carry the same file.
    knobs: { maxHttpActionBodyBytes: 104_857_600 },
    async upload(server, _client, data) {
      const response = await fetch(`${server.url}/http/sendImage?author=bench`, { method: "POST", headers: { "Content-Type": "video/mp4" }, body: data });
      if (!response.ok) throw new Error(`HTTP action: ${response.status} ${await response.text()}`);
      return ((await response.json()) as { storageId: string }).storageId;
    },
    download: (server, storageId) => fetch(`${server.url}/http/getImage?storageId=${storageId}`),
  },
];

export async function benchFiles(sizeMiB = 100): Promise<string> {
  const data = new Uint8Array(sizeMiB * MiB);
  for (let i = 0; i < data.length; i += 4096) data[i] = i & 255;
  const expected = createHash("sha256").update(data).digest("base64");
  const rows: (string | number)[][] = [];
  const row = (label: string, m: Measured) => {
    if (m.sha256 !== expected) throw new Error(`${label}: the bytes came back different`);
    rows.push([
      label,
      (m.ms / 1000).toFixed(2),
      (sizeMiB / (m.ms / 1000)).toFixed(0),
      (m.peakRiseBytes / MiB).toFixed(0),
      (m.peakRiseBytes / data.length).toFixed(2),
    ]);
  };
  for (const path of PATHS) {
    const server = await startDevServer({ app: APP });
    try {
      if (path.knobs) await setKnobs(server.url, path.knobs);
      const client = new ConvexHttpClient(server.url, { skipConvexDeploymentUrlCheck: true });
      // A runtime's first large body grows its allocator's pools by most of its size whatever reads it (even a
      // Worker that drops every chunk): the same file goes up and down once before it is measured.
      await drain(await path.download(server, await path.upload(server, client, data)));
      let storageId = "";
      row(
        `${path.name}: up`,
        await measure(server, async () => {
          storageId = await path.upload(server, client, data);
          return expected;
        }),
      );
      row(`${path.name}: down`, await measure(server, async () => drain(await path.download(server, storageId))));
    } finally {
      await server.stop();
    }
  }
  return `${sizeMiB} MiB, one request at a time, each path on a runtime of its own, measured on its second round (the first grows the runtime's allocator pools whatever the path); memory is the workerd processes' resident size (Worker, deployment object and the R2 simulator together).\n\n${table(["path", "seconds", "MiB/s", "peak memory rise (MiB)", "rise / file size"], rows)}`;
}
