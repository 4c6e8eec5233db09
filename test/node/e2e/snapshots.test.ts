/**
 * `npm run export` and `npm run import` against `wrangler dev`: a deployment
 * with messages and a file is exported to a ZIP on disk, imported into a new
 * deployment, and exported again: the same documents (ids, creation times)
 * and the same files by sha256. A refused import exits non-zero naming the
 * line, and the deployment keeps what it had.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unzipSync } from "fflate";
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { startDevServer, TEST_ADMIN_KEY, type DevServer } from "../../../scripts/lib/wrangler-dev.ts";
import { createDeployment } from "../../../scripts/lib/admin.ts";

const api = anyApi;
let server: DevServer;
let dir: string;

beforeAll(async () => {
  server = await startDevServer();
  dir = mkdtempSync(join(tmpdir(), "calmsync-snapshots-"));
});
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `npm run <script> -- ...args` as an operator would, against the dev server. */
function npmRun(script: "export" | "import", ...args: string[]): { status: number | null; output: string } {
  const result = spawnSync("npm", ["run", "--silent", script, "--", ...args, "--url", server.url], {
    encoding: "utf8",
    env: { ...process.env, ADMIN_KEY: TEST_ADMIN_KEY },
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const documentLines = (zip: Record<string, Uint8Array>, table: string) => new TextDecoder().decode(zip[`${table}/documents.jsonl`]).split("\n").filter(Boolean);

describe("npm run export / npm run import (wrangler dev)", () => {
  it("round-trips a deployment through a ZIP on disk, and refuses a bad file leaving the deployment as it was", async () => {
    const source = new ConvexHttpClient(await createDeployment(server.url, "snap-source"));
    await source.mutation(api.messages!.send!, { chatId: "general", author: "ada", body: "hello" });
    const uploadUrl = (await source.mutation(api.attachments!.generateUploadUrl!, {})) as string;
    const picture = new TextEncoder().encode("e2e picture bytes");
    const { storageId } = (await (await fetch(uploadUrl, { method: "POST", headers: { "Content-Type": "image/png" }, body: picture })).json()) as {
      storageId: string;
    };
    await source.mutation(api.attachments!.sendImage!, { chatId: "general", author: "bob", storageId });

    const first = join(dir, "first.zip");
    expect(npmRun("export", "snap-source", first)).toMatchObject({ status: 0 });
    await createDeployment(server.url, "snap-target");
    const imported = npmRun("import", "snap-target", first);
    expect(imported).toMatchObject({ status: 0, output: expect.stringMatching(/messages: 2.*1 files/) });
    const second = join(dir, "second.zip");
    expect(npmRun("export", "snap-target", second)).toMatchObject({ status: 0 });

    const [a, b] = [unzipSync(readFileSync(first)), unzipSync(readFileSync(second))];
    for (const table of ["messages", "_storage"]) expect(documentLines(b, table)).toEqual(documentLines(a, table));
    const sha = (data: Uint8Array) => createHash("sha256").update(data).digest("base64");
    expect(sha(b[`_storage/${storageId}`]!)).toBe(sha(picture));

    // A single-table JSONL with a bad third line: refused, naming it; the table keeps its two messages.
    const bad = join(dir, "bad.jsonl");
    writeFileSync(bad, '{"chatId":"x","author":"a","body":"1"}\n{"chatId":"x","author":"a","body":"2"}\n{"chatId":"x","author":\n');
    const refused = npmRun("import", "snap-target", bad, "--table", "messages", "--append");
    expect(refused.status).toBe(1);
    expect(refused.output).toMatch(/messages\.jsonl line 3: is not valid JSON/);
    const target = new ConvexHttpClient(`${server.url}/d/snap-target`);
    expect(((await target.query(api.messages!.list!, { chatId: "general" })) as unknown[]).length).toBe(2);
    expect(((await target.query(api.messages!.list!, { chatId: "x" })) as unknown[]).length).toBe(0);
  });
});
