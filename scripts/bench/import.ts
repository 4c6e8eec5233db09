/**
 * A snapshot import of many small documents into one deployment object,
 * through `wrangler dev` (workerd): JSONL generated as it is uploaded (never
 * whole in this process), staged in batches of `snapshotBatchBytes` and
 * applied in transactions of bounded size; then the same table exported as a ZIP. Reports
 * documents per second and the runtime's resident memory (workerd RSS,
 * sampled every 100 ms): the peak, and its rise over the moment before.
 */
import { request as httpRequest } from "node:http";
import { Readable } from "node:stream";
import { startDevServer, TEST_ADMIN_KEY, type DevServer } from "../lib/wrangler-dev.ts";
import { createDeployment } from "../lib/admin.ts";
import { table } from "./harness.ts";

const MiB = 1_048_576;

/** `count` documents of about 60 bytes, as JSONL, produced a chunk at a time as the upload pulls. */
function jsonl(count: number): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let next = 0;
  return new ReadableStream({
    pull(controller) {
      if (next >= count) return controller.close();
      const lines: string[] = [];
      for (const end = Math.min(count, next + 5_000); next < end; next++) lines.push(`{"n":${next},"tag":"t${next % 100}","text":"document number ${next}"}\n`);
      controller.enqueue(encoder.encode(lines.join("")));
    },
  });
}

interface Measured<T> {
  result: T;
  seconds: number;
  /** CPU seconds the runtime (wrangler's proxy and the Worker's runtime) used meanwhile (load on the machine stretches the seconds, hardly these). */
  cpuSeconds: number;
  before: number;
  peak: number;
  /** Anonymous memory (heaps, SQLite's page cache) and mapped files at the peak. */
  peakAnon: number;
  peakFile: number;
}

async function measured<T>(server: DevServer, work: () => Promise<T>): Promise<Measured<T>> {
  const before = server.runtimeRssBytes() ?? 0;
  const cpu = () => {
    const ms = server.runtimeCpuMs();
    return ms ? (ms.proxy + ms.worker) / 1000 : 0;
  };
  const cpuBefore = cpu();
  let peak = before;
  let split = server.runtimeRssSplit() ?? { anon: 0, file: 0 };
  const start = performance.now();
  // Every second's RSS (anonymous + mapped files), on stderr: where in the run memory rises.
  const trace: string[] = [];
  const sampler = setInterval(() => {
    const rss = server.runtimeRssBytes() ?? 0;
    const now = server.runtimeRssSplit() ?? { anon: 0, file: 0 };
    if (rss > peak) [peak, split] = [rss, now];
    const second = Math.floor((performance.now() - start) / 1000);
    if (trace.length <= second) trace.push(`${second}s ${(now.anon / MiB).toFixed(0)}+${(now.file / MiB).toFixed(0)}`);
  }, 100);
  try {
    const result = await work();
    console.error(`workerd RSS (MiB, anonymous+file) by second: ${trace.join(", ")}`);
    return {
      result,
      seconds: (performance.now() - start) / 1000,
      cpuSeconds: cpu() - cpuBefore,
      before,
      peak,
      peakAnon: split.anon,
      peakFile: split.file,
    };
  } finally {
    clearInterval(sampler);
  }
}

/**
 * POSTs a stream and reads the answer, however long the server takes to give it: `fetch` gives up
 * after 300 s without response headers (undici's headers timeout), less than a large import takes.
 */
function postStream(url: string, headers: Record<string, string>, body: ReadableStream<Uint8Array>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: "POST", headers }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
      response.on("error", reject);
    });
    request.on("error", reject);
    Readable.fromWeb(body as import("node:stream/web").ReadableStream<Uint8Array>).pipe(request);
  });
}

export async function benchImport(count: number): Promise<string> {
  // Without wrangler dev's tracing of every invocation (each staged batch is one): its store would count as the runtime's.
  const server = await startDevServer({ timeoutMs: 120_000, localObservability: false });
  try {
    const url = await createDeployment(server.url, "bench-import");
    const auth = { Authorization: `Bearer ${TEST_ADMIN_KEY}` };
    const imported = await measured(server, async () => {
      const { status, body } = await postStream(`${url}/api/admin/import?table=rows&format=jsonl`, auth, jsonl(count));
      const answer = JSON.parse(body) as { tables?: Record<string, number>; message?: string };
      if (status !== 200 || answer.tables?.rows !== count) throw new Error(`import: ${status} ${body}`);
      return answer;
    });
    const exported = await measured(server, async () => {
      const response = await fetch(`${url}/api/admin/export`, { headers: auth });
      if (!response.ok || !response.body) throw new Error(`export: ${response.status}`);
      let bytes = 0;
      for await (const chunk of response.body) bytes += (chunk as Uint8Array).length;
      return bytes;
    });
    const mib = (bytes: number) => (bytes / MiB).toFixed(0);
    return table(
      ["step", "documents", "seconds", "documents/s", "workerd CPU s", "workerd RSS before (MiB)", "peak (MiB)", "of it anonymous / files", "rise (MiB)"],
      [
        [
          "import (JSONL, one table)",
          count.toLocaleString("en-US"),
          imported.seconds.toFixed(1),
          Math.round(count / imported.seconds).toLocaleString("en-US"),
          imported.cpuSeconds.toFixed(1),
          mib(imported.before),
          mib(imported.peak),
          `${mib(imported.peakAnon)} / ${mib(imported.peakFile)}`,
          mib(imported.peak - imported.before),
        ],
        [
          `export (ZIP, ${mib(exported.result)} MiB)`,
          count.toLocaleString("en-US"),
          exported.seconds.toFixed(1),
          Math.round(count / exported.seconds).toLocaleString("en-US"),
          exported.cpuSeconds.toFixed(1),
          mib(exported.before),
          mib(exported.peak),
          `${mib(exported.peakAnon)} / ${mib(exported.peakFile)}`,
          mib(exported.peak - exported.before),
        ],
      ],
    );
  } finally {
    if (process.env.IMPORT_BENCH_LOG)
      console.error(
        server
          .output()
          .split("\n")
          .filter((l) => l.includes("TIMING"))
          .join("\n"),
      );
    await server.stop();
  }
}
