/**
 * `npm run import -- <deployment> <file> [--table <name>] [--format zip|jsonl|json|csv]
 * [--replace | --append] [--url <origin>]`: a snapshot ZIP (Convex's layout),
 * or one table's JSONL, JSON or CSV, streamed to the deployment, which
 * applies all of it or nothing (docs/SNAPSHOTS.md). As on Convex, tables that
 * already have documents are refused unless --replace or --append says what to do.
 */
import { createReadStream, statSync } from "node:fs";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { adminTarget, authorization } from "./lib/admin.ts";
import { formatOfPath } from "../src/snapshots/layout.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { url: { type: "string" }, table: { type: "string" }, format: { type: "string" }, replace: { type: "boolean" }, append: { type: "boolean" } },
});
const [deployment, file] = positionals;
const { table } = values;
const format = values.format ?? formatOfPath(file ?? "") ?? undefined;
if (!deployment || !file || (values.replace && values.append)) {
  console.error(
    "usage: npm run import -- <deployment> <file> [--table <name>] [--format zip|jsonl|json|csv] [--replace | --append] [--url http://127.0.0.1:8787]",
  );
  process.exit(2);
}
const mode = values.replace ? "replace" : values.append ? "append" : "requireEmpty";
const query = new URLSearchParams({ mode, ...(format ? { format } : {}), ...(table ? { table } : {}) });
const target = adminTarget({ url: values.url, deployment });
const response = await fetch(`${target.deploymentUrl}/api/admin/import?${query}`, {
  method: "POST",
  headers: { ...authorization(target), "Content-Type": "application/octet-stream", "Content-Length": String(statSync(file).size) },
  body: Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>,
  duplex: "half",
} as RequestInit);
const answer = (await response.json()) as { tables?: Record<string, number>; files?: number; message?: string };
if (!response.ok) {
  console.error(`import failed, nothing was written: ${answer.message ?? response.status}`);
  process.exit(1);
}
const counts = Object.entries(answer.tables ?? {}).map(([name, count]) => `${name}: ${count}`);
console.log(`imported into ${deployment}: ${counts.join(", ")}${answer.files ? `; ${answer.files} files` : ""}`);
