/**
 * `npm run export -- <deployment> <out.zip> [--url <origin>]`: a snapshot of
 * the deployment in Convex's ZIP layout (docs/SNAPSHOTS.md), streamed to the
 * file as the Worker writes it.
 */
import { createWriteStream, renameSync, rmSync } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { adminTarget, authorization } from "./lib/admin.ts";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { url: { type: "string" } } });
const [deployment, out] = positionals;
if (!deployment || !out) {
  console.error("usage: npm run export -- <deployment> <out.zip> [--url http://127.0.0.1:8787]");
  process.exit(2);
}
const target = adminTarget({ url: values.url, deployment });
const response = await fetch(`${target.deploymentUrl}/api/admin/export`, { headers: authorization(target) });
if (!response.ok || !response.body) {
  console.error(`export failed: ${response.status} ${await response.text()}`);
  process.exit(1);
}
// Written beside the target and renamed at the end: a cut-off export never looks like a finished one.
const partial = `${out}.partial`;
try {
  await pipeline(Readable.fromWeb(response.body as import("node:stream/web").ReadableStream<Uint8Array>), createWriteStream(partial));
  renameSync(partial, out);
} catch (error) {
  rmSync(partial, { force: true });
  console.error(`export failed: ${(error as Error).message}`);
  process.exit(1);
}
console.log(`exported ${deployment} to ${out}`);
