/**
 * Snapshot export and import through the Worker (docs/SNAPSHOTS.md), behind
 * the admin key: `GET /api/admin/export` streams a ZIP in Convex's layout,
 * `POST /api/admin/import` takes one (or, with `?table=`, a JSONL, JSON or CSV
 * file). Both stream: the export asks the deployment object for a page at a
 * time and copies files from R2 into the ZIP as they are read; the import
 * unzips and splits lines as the upload arrives, hands the object batches of
 * at most `snapshotBatchBytes`, and streams files to R2 (hashed on the way).
 * The object stages what it is given and applies it all at once, or nothing.
 */
import { Hono } from "hono";
import { Unzip, UnzipInflate, Zip, ZipDeflate, ZipPassThrough } from "fflate";
import { digestBase64 } from "./engine/index.ts";
import { fileKey } from "./deployment/r2-blob-store.ts";
import type { DeploymentApi } from "./deployment/deployment.ts";
import { problem, stub, type AppEnv } from "./http-context.ts";
import { exportLine } from "./snapshots/export-json.ts";
import { LineSplitter, type NumberedLine } from "./snapshots/lines.ts";
import { CsvDocuments, CsvParser } from "./snapshots/csv.ts";
import { ImportProblem } from "./snapshots/import-problem.ts";
import type { LineEncoding } from "./snapshots/documents.ts";
import { importOptions, isComponentEntry, snapshotEntry, SNAPSHOT_README, UNIFORM_SCHEMA_LINE, type ImportOptions } from "./snapshots/layout.ts";
import { JSON_ARRAY_MAX_BYTES, MAX_UNZIP_INPUT_CHUNK } from "./knobs/fixed.ts";

export const snapshotRoutes = new Hono<AppEnv>();

const encoder = new TextEncoder();

snapshotRoutes.get("/export", async (c) => {
  const deployment = stub(c);
  const tables = await deployment.exportTables();
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writing = writeSnapshot(deployment, c.env.FILES, c.get("deployment"), tables, writable.getWriter());
  // The response streams while the snapshot is written; a failure cuts it off (the ZIP then has no central directory, and an import refuses it).
  c.executionCtx.waitUntil(writing.catch((error: unknown) => console.error(`export of ${c.get("deployment")} failed:`, error)));
  return new Response(readable, {
    headers: { "Content-Type": "application/zip", "Content-Disposition": `attachment; filename="${c.get("deployment")}-snapshot.zip"` },
  });
});

async function writeSnapshot(
  deployment: DeploymentApi,
  bucket: R2Bucket | undefined,
  name: string,
  tables: { name: string; documents: number }[],
  writer: WritableStreamDefaultWriter<Uint8Array>,
): Promise<void> {
  let failure: Error | null = null;
  const zip = new Zip((error, chunk, final) => {
    if (error) failure = error;
    else {
      writer.write(chunk).catch(() => undefined);
      if (final) writer.close().catch(() => undefined);
    }
  });
  // Backpressure: each push waits until the reader has taken what the ZIP wrote.
  const flush = async () => {
    if (failure) throw failure;
    await writer.ready;
  };
  const whole = async (path: string, text: string) => {
    const entry = new ZipDeflate(path, { level: 6 });
    zip.add(entry);
    entry.push(encoder.encode(text), true);
    await flush();
  };
  try {
    await whole("README.md", SNAPSHOT_README);
    // Convex numbers its tables; nothing here depends on the numbers, but its import reads the list.
    await whole("_tables/documents.jsonl", tables.map((table, i) => `${JSON.stringify({ name: table.name, id: 10_001 + i })}\n`).join(""));
    // _storage first: an import meets each file's row before its bytes.
    const ordered = [...tables].sort((a, b) => Number(b.name === "_storage") - Number(a.name === "_storage"));
    for (const table of ordered) {
      const entry = new ZipDeflate(`${table.name}/documents.jsonl`, { level: 6 });
      zip.add(entry);
      for (let after: ArrayBuffer | null = null, first = true; first || after !== null; first = false) {
        const page: Awaited<ReturnType<DeploymentApi["exportPage"]>> = await deployment.exportPage(table.name, after);
        if (page.documents.length > 0) entry.push(encoder.encode(page.documents.map((json) => `${exportLine(json)}\n`).join("")));
        after = page.next;
        await flush();
      }
      entry.push(new Uint8Array(), true);
      await flush();
      if (table.name !== "_storage") await whole(`${table.name}/generated_schema.jsonl`, `${UNIFORM_SCHEMA_LINE}\n`);
    }
    if (ordered[0]?.name === "_storage") {
      if (!bucket) throw new Error("The deployment has files but the Worker has no R2 binding FILES");
      await writeFiles(deployment, bucket, name, zip, flush);
    }
    zip.end();
    await flush();
  } catch (error) {
    zip.terminate();
    await writer.abort(error).catch(() => undefined);
    throw error;
  }
}

/** Each file's bytes from R2 into `_storage/<id>`, stored as they are (files are often compressed already). */
async function writeFiles(deployment: DeploymentApi, bucket: R2Bucket, name: string, zip: Zip, flush: () => Promise<void>): Promise<void> {
  for (let after: ArrayBuffer | null = null, first = true; first || after !== null; first = false) {
    const page: Awaited<ReturnType<DeploymentApi["exportPage"]>> = await deployment.exportPage("_storage", after);
    after = page.next;
    for (const json of page.documents) {
      const id = (JSON.parse(json) as { _id: string })._id;
      const object = await bucket.get(fileKey(name, id));
      if (!object) throw new Error(`file ${id} has a _storage row but no bytes in R2`);
      const entry = new ZipPassThrough(`_storage/${id}`);
      zip.add(entry);
      const reader = object.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        entry.push(value);
        await flush();
      }
      entry.push(new Uint8Array(), true);
      await flush();
    }
  }
}

snapshotRoutes.post("/import", async (c) => {
  const options = importOptions({ mode: c.req.query("mode"), format: c.req.query("format"), table: c.req.query("table") });
  if ("error" in options) return problem(c, 400, "BadImportOptions", options.error);
  const body = c.req.raw.body;
  if (!body) return problem(c, 400, "ImportFailed", "The request has no body: send the file itself");
  const deployment = stub(c);
  const started = await deployment.beginImport(options);
  const batches = new Batches(deployment, started.importId, started.batchBytes);
  try {
    if (options.format === "zip") await importZip(body, batches, started.maxLineBytes, c.env.FILES, c.get("deployment"));
    else await importTableFile(body, options, batches, started.maxLineBytes);
    const finished = await deployment.finishImport(started.importId);
    if (!finished.ok) return problem(c, 400, "ImportFailed", finished.error);
    return c.json(finished.report);
  } catch (error) {
    await deployment.abortImport(started.importId);
    if (error instanceof ImportProblem) return problem(c, 400, "ImportFailed", error.message);
    console.error(`import into ${c.get("deployment")} failed:`, error);
    return problem(c, 400, "ImportFailed", `The import failed and nothing was written: ${(error as Error).message}`);
  }
});

/** Lines gathered per file until a batch holds `batchBytes`, then staged in the object. */
class Batches {
  private lines: NumberedLine[] = [];
  private bytes = 0;
  private file = "";
  private table = "";
  private encoding: LineEncoding = "export";
  private readonly deployment: DeploymentApi;
  private readonly importId: string;
  private readonly batchBytes: number;

  constructor(deployment: DeploymentApi, importId: string, batchBytes: number) {
    this.deployment = deployment;
    this.importId = importId;
    this.batchBytes = batchBytes;
  }

  async startFile(file: string, table: string, encoding: LineEncoding): Promise<void> {
    await this.flush();
    Object.assign(this, { file, table, encoding });
  }

  async add(lines: NumberedLine[]): Promise<void> {
    for (const line of lines) {
      this.lines.push(line);
      this.bytes += line.text.length;
      if (this.bytes >= this.batchBytes) await this.flush();
    }
  }

  async flush(): Promise<void> {
    if (this.lines.length === 0) return;
    const lines = this.lines;
    this.lines = [];
    this.bytes = 0;
    const staged = await this.deployment.stageImport(this.importId, this.file, this.table, this.encoding, lines);
    if (!staged.ok) throw ImportProblem.described(staged.error);
  }

  get id(): string {
    return this.importId;
  }

  get api(): DeploymentApi {
    return this.deployment;
  }
}

/** One unzipped entry's events, queued while fflate pushes synchronously and handled in order afterwards. */
type ZipEvent = { entry: string; data: Uint8Array; final: boolean } | { entry: string; error: Error };

async function importZip(body: ReadableStream<Uint8Array>, batches: Batches, maxLineBytes: number, bucket: R2Bucket | undefined, name: string): Promise<void> {
  const events: ZipEvent[] = [];
  const open = new Set<string>();
  const unzip = new Unzip((file) => {
    open.add(file.name);
    file.ondata = (error, data, final) => {
      if (error) events.push({ entry: file.name, error });
      else events.push({ entry: file.name, data, final });
      if (final) open.delete(file.name);
    };
    // Every entry is started, even those skipped: fflate holds an unstarted entry's bytes in memory.
    file.start();
  });
  unzip.register(UnzipInflate);
  const handler = new ZipEntries(batches, maxLineBytes, bucket, name);
  // The end of central directory record closes every ZIP: a file cut short lacks it even when it ends between entries.
  let tail: Uint8Array = new Uint8Array(0);
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    tail = lastBytes(tail, value, 65_557);
    // Small pushes bound what one push can inflate into memory before it is handled.
    for (let at = 0; at < value.length; at += MAX_UNZIP_INPUT_CHUNK) {
      try {
        unzip.push(value.subarray(at, at + MAX_UNZIP_INPUT_CHUNK));
      } catch (error) {
        throw new ImportProblem("the ZIP", null, `is not a valid ZIP file (${(error as Error).message})`);
      }
      await handler.handle(events.splice(0));
    }
  }
  try {
    unzip.push(new Uint8Array(0), true);
  } catch (error) {
    throw new ImportProblem("the ZIP", null, `ends early: it was cut short (${(error as Error).message})`);
  }
  await handler.handle(events.splice(0));
  if (open.size > 0) throw new ImportProblem([...open][0]!, null, "ends early: the ZIP was cut short inside it");
  if (!hasEndOfCentralDirectory(tail))
    throw new ImportProblem("the ZIP", null, "ends early: it has no end of central directory record, so it was cut short (or is not a ZIP)");
  await handler.finish();
}

/** What each entry of a snapshot becomes: documents staged line by line, files streamed to R2, the rest skipped. */
class ZipEntries {
  private current: { entry: string; sink: EntrySink } | null = null;
  private readonly batches: Batches;
  private readonly maxLineBytes: number;
  private readonly bucket: R2Bucket | undefined;
  private readonly name: string;

  constructor(batches: Batches, maxLineBytes: number, bucket: R2Bucket | undefined, name: string) {
    this.batches = batches;
    this.maxLineBytes = maxLineBytes;
    this.bucket = bucket;
    this.name = name;
  }

  async handle(events: ZipEvent[]): Promise<void> {
    for (const event of events) {
      if ("error" in event) throw new ImportProblem(event.entry, null, `cannot be unzipped (${event.error.message})`);
      if (this.current?.entry !== event.entry) {
        await this.current?.sink.end();
        this.current = { entry: event.entry, sink: await this.sinkFor(event.entry) };
      }
      await this.current.sink.push(event.data);
      if (event.final) {
        await this.current.sink.end();
        this.current = null;
      }
    }
  }

  async finish(): Promise<void> {
    await this.current?.sink.end();
    await this.batches.flush();
  }

  private async sinkFor(entry: string): Promise<EntrySink> {
    if (isComponentEntry(entry)) throw new ImportProblem(entry, null, "belongs to a component's tables, which this import does not take");
    const kind = snapshotEntry(entry);
    if (kind.kind === "documents") {
      await this.batches.startFile(entry, kind.table, "export");
      const lines = new LineSplitter(entry, this.maxLineBytes);
      return { push: (data) => this.batches.add(lines.push(data)), end: () => this.batches.add(lines.end()) };
    }
    if (kind.kind === "generatedSchema") return generatedSchemaCheck(entry);
    if (kind.kind === "storageFile") return this.fileSink(entry, kind.sourceId);
    return { push: async () => undefined, end: async () => undefined };
  }

  /** A file's bytes, streamed to R2 under the id its row was given, hashed on the way; its size must be the row's. */
  private async fileSink(entry: string, sourceId: string): Promise<EntrySink> {
    await this.batches.flush();
    const target = await this.batches.api.importFileTarget(this.batches.id, sourceId, entry);
    if (!target.ok) throw ImportProblem.described(target.error);
    if (!this.bucket) throw new ImportProblem(entry, null, "this Worker has no R2 binding FILES");
    const sized = new FixedLengthStream(target.size);
    const writer = sized.writable.getWriter();
    const digest = new crypto.DigestStream("SHA-256");
    const hash = digest.getWriter();
    const stored = this.bucket.put(fileKey(this.name, target.storageId), sized.readable);
    // If the upload fails early, the write that notices says so; the put's own rejection is read at the end.
    stored.catch(() => undefined);
    digest.digest.catch(() => undefined);
    let received = 0;
    return {
      push: async (data) => {
        received += data.length;
        if (received > target.size) throw new ImportProblem(entry, null, `has more bytes than the ${target.size} its _storage row says`);
        await Promise.all([writer.write(data), hash.write(data)]);
      },
      end: async () => {
        if (received !== target.size) throw new ImportProblem(entry, null, `has ${received} bytes, its _storage row says ${target.size}`);
        await Promise.all([writer.close(), hash.close()]);
        await stored;
        await this.batches.api.importFileStored(this.batches.id, sourceId, digestBase64(await digest.digest), received);
      },
    };
  }
}

interface EntrySink {
  push(data: Uint8Array): Promise<void>;
  end(): Promise<void>;
}

/** `generated_schema.jsonl` must say "uniform": older exports described shapes that change how numbers read, which this import does not follow. */
function generatedSchemaCheck(entry: string): EntrySink {
  const lines = new LineSplitter(entry, 1_048_576);
  const check = (found: NumberedLine[]) => {
    const first = found.find((line) => line.line === 1);
    if (first && first.text.trim() !== UNIFORM_SCHEMA_LINE) {
      throw new ImportProblem(entry, 1, 'is a generated schema from an older Convex export (not "uniform"); export the snapshot again with a current Convex');
    }
  };
  return { push: async (data) => check(lines.push(data)), end: async () => check(lines.end()) };
}

async function importTableFile(body: ReadableStream<Uint8Array>, options: ImportOptions, batches: Batches, maxLineBytes: number): Promise<void> {
  const table = options.table!;
  const file = `${table}.${options.format}`;
  await batches.startFile(file, table, "convex");
  const reader = body.getReader();
  if (options.format === "json") {
    // A JSON array is one value: it is read whole, within Convex's own limit for it.
    const text = await readWithin(reader, JSON_ARRAY_MAX_BYTES, file);
    let array: unknown;
    try {
      array = JSON.parse(text);
    } catch (error) {
      throw new ImportProblem(file, null, `is not valid JSON (${(error as Error).message})`);
    }
    if (!Array.isArray(array)) throw new ImportProblem(file, null, "is not a JSON array of documents");
    // "Line" is the element's position here: the first document is 1.
    await batches.add(array.map((element, i) => ({ line: i + 1, text: JSON.stringify(element) })));
  } else if (options.format === "csv") {
    const parser = new CsvParser(file, maxLineBytes);
    const documents = new CsvDocuments(file);
    const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await batches.add(documents.lines(parser.push(decoder.decode(value, { stream: true }))));
    }
    await batches.add(documents.lines([...parser.push(decoder.decode()), ...parser.end()]));
  } else {
    const lines = new LineSplitter(file, maxLineBytes);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await batches.add(lines.push(value));
    }
    await batches.add(lines.end());
  }
  await batches.flush();
}

async function readWithin(reader: ReadableStreamDefaultReader<Uint8Array>, maxBytes: number, file: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > maxBytes) throw new ImportProblem(file, null, `is a JSON array larger than ${maxBytes} bytes (Convex's limit too): import JSONL instead`);
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) all.set(chunk, (at += chunk.length) - chunk.length);
  return new TextDecoder().decode(all);
}

/** The last `keep` bytes of `tail` followed by `chunk`. */
function lastBytes(tail: Uint8Array, chunk: Uint8Array, keep: number): Uint8Array {
  if (chunk.length >= keep) return chunk.slice(chunk.length - keep);
  const out = new Uint8Array(Math.min(keep, tail.length + chunk.length));
  const fromTail = out.length - chunk.length;
  out.set(tail.subarray(tail.length - fromTail), 0);
  out.set(chunk, fromTail);
  return out;
}

/** Whether `tail` (a ZIP's last bytes) holds an end of central directory record ("PK\x05\x06" with its comment reaching the end). */
function hasEndOfCentralDirectory(tail: Uint8Array): boolean {
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail[i] === 0x50 && tail[i + 1] === 0x4b && tail[i + 2] === 0x05 && tail[i + 3] === 0x06) {
      const commentLength = tail[i + 20]! | (tail[i + 21]! << 8);
      if (i + 22 + commentLength === tail.length) return true;
    }
  }
  return false;
}
