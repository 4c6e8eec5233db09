/// <reference types="vite/client" />
/**
 * Snapshot export and import through the Worker's admin API (docs/SNAPSHOTS.md),
 * in workerd with R2 as wrangler simulates it: a round trip keeps ids,
 * creation times and files; a cut-off ZIP, a bad line and a schema violation
 * each leave the deployment as it was (R2 included); an import re-runs the
 * live queries over the tables it wrote and no other; a snapshot written by
 * hand in Convex's documented layout imports, its references intact. Applied
 * in transactions of one document, an import gives the same deployment, no
 * query sees it half applied, and an object reset halfway finishes it when it
 * starts again, before anything else.
 */
import { describe, expect, it } from "vitest";
import { abortAllDurableObjects, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { unzipSync, zipSync, strToU8 } from "fflate";
import { ProtocolClient } from "./protocol-client.ts";
import { admin, bindings, callFunction, fresh, setKnobs, status, worker } from "./helpers.ts";
import type { Deployment } from "../../src/deployment/deployment.ts";

const origin = "http://snapshots.test";

const call = (deployment: string, kind: "query" | "mutation", path: string, args: Record<string, unknown>) =>
  callFunction(origin, deployment, kind, path, args);

async function upload(deployment: string, text: string, type: string): Promise<string> {
  const url = (await call(deployment, "mutation", "attachments:generateUploadUrl", {})) as string;
  const response = await worker.fetch(url, { method: "POST", headers: { "Content-Type": type }, body: text });
  expect(response.status).toBe(200);
  return ((await response.json()) as { storageId: string }).storageId;
}

async function exportZip(deployment: string): Promise<Uint8Array> {
  const response = await worker.fetch(`${origin}/d/${deployment}/api/admin/export`, { headers: admin });
  expect(response.status).toBe(200);
  expect(response.headers.get("Content-Type")).toBe("application/zip");
  return new Uint8Array(await response.arrayBuffer());
}

async function importFile(deployment: string, body: Uint8Array | string, query = ""): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await worker.fetch(`${origin}/d/${deployment}/api/admin/import${query}`, { method: "POST", headers: admin, body });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const lines = (files: Record<string, Uint8Array>, path: string) =>
  new TextDecoder()
    .decode(files[path] ?? new Uint8Array())
    .split("\n")
    .filter((line) => line !== "");

async function sha256(data: Uint8Array): Promise<string> {
  return btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest("SHA-256", data))));
}

/** What a deployment holds, to compare before and after a refused import: its documents and its files in R2. */
async function contents(deployment: string): Promise<{ documents: string[]; objects: string[]; commits: number }> {
  const files = unzipSync(await exportZip(deployment));
  const documents = Object.keys(files)
    .filter((path) => path.endsWith("/documents.jsonl") && !path.startsWith("_tables"))
    .sort()
    .flatMap((path) => lines(files, path).map((line) => `${path}: ${line}`));
  const objects = (await bindings.FILES.list({ prefix: `${deployment}/` })).objects.map((o) => o.key).sort();
  return { documents, objects, commits: (await status(deployment)).commits };
}

/** A chat with two messages, one of them with an uploaded image. */
async function seed(deployment: string): Promise<{ storageId: string }> {
  await call(deployment, "mutation", "messages:send", { chatId: "general", author: "ada", body: "first" });
  const storageId = await upload(deployment, "picture bytes", "image/png");
  await call(deployment, "mutation", "attachments:sendImage", { chatId: "general", author: "bob", storageId });
  return { storageId };
}

describe("snapshot export and import", () => {
  it("round-trips a deployment: export, import into a new one, export again gives the same documents and files", async () => {
    const source = fresh("snap-src");
    const { storageId } = await seed(source);
    const first = unzipSync(await exportZip(source));
    expect(Object.keys(first)).toEqual(
      expect.arrayContaining([
        "README.md",
        "_tables/documents.jsonl",
        "messages/documents.jsonl",
        "messages/generated_schema.jsonl",
        "_storage/documents.jsonl",
        `_storage/${storageId}`,
      ]),
    );
    expect(
      lines(first, "_tables/documents.jsonl")
        .map((line) => (JSON.parse(line) as { name: string }).name)
        .sort(),
    ).toEqual(["_storage", "messages"]);
    expect(lines(first, "messages/generated_schema.jsonl")).toEqual(['"uniform"']);

    const target = fresh("snap-dst");
    const imported = await importFile(target, zipSync(first));
    expect(imported).toMatchObject({ status: 200, body: { tables: { messages: 2, _storage: 1 }, files: 1 } });
    const second = unzipSync(await exportZip(target));
    for (const table of ["messages", "_storage"]) expect(lines(second, `${table}/documents.jsonl`)).toEqual(lines(first, `${table}/documents.jsonl`));
    expect(await sha256(second[`_storage/${storageId}`]!)).toBe(await sha256(strToU8("picture bytes")));
    expect(await sha256(second[`_storage/${storageId}`]!)).toBe((JSON.parse(lines(second, "_storage/documents.jsonl")[0]!) as { sha256: string }).sha256);

    // The imported deployment serves them: the message's image resolves to the file, whose bytes are in R2.
    const [message] = (await call(target, "query", "messages:list", { chatId: "general" })) as { image?: string; imageUrl?: string }[];
    expect(message!.image).toBe(storageId);
    const served = await worker.fetch(message!.imageUrl!);
    expect(await served.text()).toBe("picture bytes");
    // A default import refuses a deployment whose tables already have documents.
    const again = await importFile(target, zipSync(first));
    expect(again.status).toBe(400);
    expect(again.body.message).toMatch(/already has documents: import with --replace/);
  });

  it("leaves the deployment unchanged, R2 included, when the ZIP is cut short, a line is not JSON, or a document breaks the schema", async () => {
    const source = fresh("snap-bad-src");
    await seed(source);
    const snapshot = await exportZip(source);
    const target = fresh("snap-bad-dst");
    await call(target, "mutation", "messages:send", { chatId: "general", author: "cy", body: "already here" });
    await upload(target, "a file of its own", "text/plain");
    const before = await contents(target);

    // Cut off halfway (inside an entry), and just before the end (between entries and the central directory).
    for (const cut of [Math.floor(snapshot.length / 2), snapshot.length - 30]) {
      const truncated = await importFile(target, snapshot.slice(0, cut), "?mode=replace");
      expect(truncated.status).toBe(400);
      expect(truncated.body.message).toMatch(/ends early|cut short|not a valid ZIP/);
      expect(await contents(target)).toEqual(before);
    }

    const files = unzipSync(snapshot);
    const badLine = { ...files, "messages/documents.jsonl": strToU8(`${lines(files, "messages/documents.jsonl")[0]}\n{"chatId": "general", "author":\n`) };
    const malformed = await importFile(target, zipSync(badLine), "?mode=replace");
    expect(malformed.status).toBe(400);
    expect(malformed.body.message).toMatch(/^messages\/documents\.jsonl line 2: is not valid JSON/);
    expect(await contents(target)).toEqual(before);

    const broken = {
      ...files,
      "messages/documents.jsonl": strToU8(`${lines(files, "messages/documents.jsonl").join("\n")}\n{"chatId": "general", "body": "no author"}\n`),
    };
    const violation = await importFile(target, zipSync(broken), "?mode=replace");
    expect(violation.status).toBe(400);
    expect(violation.body.message).toMatch(/^messages\/documents\.jsonl line 3: does not match the schema of table messages: .*author/);
    expect(await contents(target)).toEqual(before);

    // The same snapshot, whole, replaces the tables it names.
    const replaced = await importFile(target, snapshot, "?mode=replace");
    expect(replaced.status).toBe(200);
    expect(((await call(target, "query", "messages:list", { chatId: "general" })) as { body: string }[]).map((m) => m.body)).not.toContain("already here");
  });

  it("a deployment's own export imported into itself (--replace, or refused) never touches its live files' bytes", async () => {
    const d = fresh("snap-self");
    await seed(d);
    const snapshot = await exportZip(d);
    const image = async () => {
      const [message] = (await call(d, "query", "messages:list", { chatId: "general" })) as { imageUrl?: string }[];
      return (await worker.fetch(message!.imageUrl!)).text();
    };
    // Refused after its file went up: the live file with the same id still serves its bytes.
    const files = unzipSync(snapshot);
    const broken = {
      ...files,
      "messages/documents.jsonl": strToU8(`${lines(files, "messages/documents.jsonl").join("\n")}\n{"chatId": "general", "body": "no author"}\n`),
    };
    expect((await importFile(d, zipSync(broken), "?mode=replace")).status).toBe(400);
    expect(await image()).toBe("picture bytes");
    // Applied: the replaced file's bytes are deleted, the imported one's are served (under a new id: the old one was live).
    const replaced = await importFile(d, snapshot, "?mode=replace");
    expect(replaced).toMatchObject({ status: 200, body: { files: 1 } });
    expect(await image()).toBe("picture bytes");
    expect((await bindings.FILES.list({ prefix: `${d}/` })).objects).toHaveLength(1);
  });

  it("re-runs exactly the live queries over the tables it wrote", async () => {
    const deployment = fresh("snap-live");
    await call(deployment, "mutation", "messages:send", { chatId: "general", author: "ada", body: "first" });
    const { watcher, transitions } = await watchGeneral(deployment);
    const before = { transitions: transitions(), invalidations: (await status(deployment)).invalidations };

    // Another table: the query over messages is untouched.
    const notes = await importFile(deployment, '{"text": "one"}\n{"text": "two"}\n', "?table=notes&format=jsonl");
    expect(notes).toMatchObject({ status: 200, body: { tables: { notes: 2 } } });
    await call(deployment, "query", "messages:list", { chatId: "general" }); // a round trip through the object: anything owed has been sent
    expect((await status(deployment)).invalidations).toBe(before.invalidations);
    expect(transitions()).toBe(before.transitions);

    // Its own table: re-run, and the new message pushed.
    const appended = await importFile(deployment, "chatId,author,body\ngeneral,csv,from a spreadsheet\n", "?table=messages&format=csv&mode=append");
    expect(appended).toMatchObject({ status: 200, body: { tables: { messages: 1 } } });
    await watcher.until(() => (watcher.results.get(0) as { body: string }[]).some((m) => m.body === "from a spreadsheet"), "the imported message");
    expect((await status(deployment)).invalidations).toBe(before.invalidations + 1);
    watcher.close();
  });

  it("imports a snapshot written by hand in Convex's documented layout, its ids' references rewritten", async () => {
    const fixture = import.meta.glob("../fixtures/snapshots/convex-layout/**/*", { query: "?raw", import: "default", eager: true }) as Record<string, string>;
    const entries = Object.fromEntries(
      Object.entries(fixture).map(([path, text]) => [path.replace("../fixtures/snapshots/convex-layout/", ""), strToU8(text)]),
    );
    expect(Object.keys(entries)).toContain("_storage/kg2a6hz0tq1bm3xr2ha1yd7n9d7a4cf5.txt");
    const deployment = fresh("snap-convex");
    const imported = await importFile(deployment, zipSync(entries));
    expect(imported).toMatchObject({ status: 200, body: { tables: { messages: 2, reactions: 1, _storage: 1 }, files: 1 } });

    const messages = (await call(deployment, "query", "messages:list", { chatId: "general" })) as {
      _id: string;
      _creationTime: number;
      body: string;
      image?: string;
      imageUrl?: string;
    }[];
    expect(messages.map((m) => [m.body, m._creationTime])).toEqual([
      ["with a picture", 1717171718000.5],
      ["A snapshot from Convex", 1717171717171.25],
    ]);
    expect(messages[0]!._id).toMatch(/messages$/);
    expect(await (await worker.fetch(messages[0]!.imageUrl!)).text()).toBe("Hello from a Convex snapshot.\n");

    const files = unzipSync(await exportZip(deployment));
    const reaction = JSON.parse(lines(files, "reactions/documents.jsonl")[0]!) as Record<string, unknown>;
    expect(reaction).toMatchObject({ messageId: messages[0]!._id, emoji: "👍", _creationTime: 1717171719000 });
    // Export JSON keeps the types: an int64 stays an integer, a float64 keeps its fraction.
    expect(lines(files, "reactions/documents.jsonl")[0]).toMatch(/"count":3[,}].*"weight":2\.0/);
  });
});

/** `count` messages in chat "general" as single-table JSONL, each body `${label} ${i}`. */
const messagesJsonl = (label: string, count: number) =>
  Array.from({ length: count }, (_, i) => JSON.stringify({ chatId: "general", author: "import", body: `${label} ${i}` })).join("\n") + "\n";

/** The chat's messages' bodies, newest first, through a query no cached answer can give (`numItems` makes the key). */
const history = async (deployment: string, numItems: number) =>
  (
    (await call(deployment, "query", "messages:history", { chatId: "general", paginationOpts: { numItems, cursor: null } })) as {
      page: { body: string }[];
    }
  ).page.map((m) => m.body);

const bodies = async (deployment: string) =>
  ((await call(deployment, "query", "messages:list", { chatId: "general" })) as { body: string }[]).map((m) => m.body);

/** What an import left behind in the object: a mark, staged rows. */
/** A client holding `messages:list` of chat "general" (its first result in), and how many Transitions it has had. */
async function watchGeneral(deployment: string): Promise<{ watcher: ProtocolClient; transitions: () => number }> {
  const watcher = await ProtocolClient.open(deployment);
  watcher.add(0, "messages:list", { chatId: "general" });
  await watcher.until(() => watcher.results.has(0), "first result");
  return { watcher, transitions: () => watcher.messages.filter((m) => m.type === "Transition").length };
}

const leftovers = (deployment: string) =>
  runInDurableObject(bindings.DEPLOYMENTS.getByName(deployment), (_instance, state: DurableObjectState) => ({
    applying: state.storage.sql.exec("SELECT count(*) AS n FROM snapshot_import_applying").one().n,
    staged: state.storage.sql.exec("SELECT count(*) AS n FROM snapshot_import_rows").one().n,
  }));

describe("snapshot import applied in several transactions", () => {
  it("gives what one transaction gave, and a query sent during the apply waits for all of it", async () => {
    const source = fresh("snap-batch-src");
    for (let i = 0; i < 5; i++) await call(source, "mutation", "messages:send", { chatId: "general", author: "ada", body: `snapshot ${i}` });
    await seed(source);
    const snapshot = await exportZip(source);

    const target = fresh("snap-batch-dst");
    for (let i = 0; i < 3; i++) await call(target, "mutation", "messages:send", { chatId: "general", author: "cy", body: `old ${i}` });
    const old = await bodies(target);
    await setKnobs(target, { snapshotApplyBatchDocuments: 1 });
    const importing = importFile(target, snapshot, "?mode=replace");
    // Queries sent one after another while the import runs: each sees the old messages or the snapshot's, never a mix.
    // Each asks for a page of another size, so none is answered from the query cache (which holds the state before the import).
    const seen: string[][] = [];
    let done = false;
    void importing.finally(() => (done = true));
    for (let i = 0; !done; i++) seen.push(await history(target, 50 + i));
    expect(await importing).toMatchObject({ status: 200, body: { tables: { messages: 7, _storage: 1 }, files: 1 } });
    const imported = await bodies(target);
    expect(imported).toHaveLength(7);

    for (const result of seen) expect([old, imported]).toContainEqual(result);

    // The same snapshot applied in one transaction (the default knob) gives the same deployment.
    const reference = fresh("snap-batch-ref");
    expect(await importFile(reference, snapshot)).toMatchObject({ status: 200 });
    const documents = async (deployment: string) => (await contents(deployment)).documents;
    expect(await documents(target)).toEqual(await documents(reference));
    expect(await leftovers(target)).toEqual({ applying: 0, staged: 0 });
  });

  it("finishes at the object's next start an apply cut off halfway (a crash), before any function runs", async () => {
    const deployment = fresh("snap-crash");
    for (let i = 0; i < 3; i++) await call(deployment, "mutation", "messages:send", { chatId: "general", author: "cy", body: `old ${i}` });
    const commits = (await status(deployment)).commits;
    await setKnobs(deployment, { snapshotApplyBatchDocuments: 1 });
    const importing = importFile(deployment, messagesJsonl("new", 300), "?table=messages&mode=replace");
    // Wait until the apply is halfway through writing (old messages gone, some new ones written), then reset the object hard.
    const progress = () =>
      runInDurableObject(
        bindings.DEPLOYMENTS.getByName(deployment),
        (_instance, state: DurableObjectState) =>
          state.storage.sql.exec<{ phase: string; cursor: number }>("SELECT phase, cursor FROM snapshot_import_applying").toArray()[0],
      );
    let settled = false;
    void importing.finally(() => (settled = true));
    for (let mark = await progress(); !(mark?.phase === "insert" && mark.cursor > 0); mark = await progress()) {
      if (settled) throw new Error("the import finished before it could be cut off");
      await scheduler.wait(1);
    }
    await abortAllDurableObjects();
    await importing.catch(() => null); // its caller sees the object go away; the import is applied nonetheless

    const after = await bodies(deployment);
    expect(after).toEqual(Array.from({ length: 20 }, (_, i) => `new ${299 - i}`));
    expect(await leftovers(deployment)).toEqual({ applying: 0, staged: 0 });
    expect(await status(deployment)).toMatchObject({ documents: 300, commits: commits + 1 });
  });

  it("a restart with an import marked as applying finishes it first and re-runs the live queries over its tables once", async () => {
    const deployment = fresh("snap-restart");
    await call(deployment, "mutation", "messages:send", { chatId: "general", author: "ada", body: "old" });
    const { watcher, transitions } = await watchGeneral(deployment);
    const before = transitions();

    // As a run of the object left it: the import staged and checked, its mark written, nothing applied yet.
    const stub = bindings.DEPLOYMENTS.getByName(deployment);
    await runInDurableObject(stub, async (instance: Deployment, state: DurableObjectState) => {
      const imports = instance.runtime.imports;
      const { importId } = await imports.begin({ mode: "replace", format: "jsonl", table: "messages" });
      const lines = messagesJsonl("new", 5)
        .trim()
        .split("\n")
        .map((text, i) => ({ line: i + 1, text }));
      imports.stage(importId, "messages.jsonl", "messages", "convex", lines);
      state.storage.sql.exec(
        "INSERT INTO snapshot_import_applying (import_id, ts, tables, mode, phase, cursor, documents_delta, files) VALUES (?, ?, ?, 'replace', 'clear', 0, 0, 0)",
        importId,
        instance.runtime.engine.nextCommitTimestamp().toString(),
        JSON.stringify({ messages: 5 }),
      );
    });
    await evictDurableObject(stub, { webSockets: "hibernate" });

    // The next event starts the object: the import is finished before the query runs, and the watcher hears of it once.
    expect(await bodies(deployment)).toEqual(["new 4", "new 3", "new 2", "new 1", "new 0"]);
    await watcher.until(() => (watcher.results.get(0) as { body: string }[]).length === 5, "the imported messages");
    await call(deployment, "query", "messages:list", { chatId: "general" }); // a round trip through the object: anything owed has been sent
    expect(transitions()).toBe(before + 1);
    expect(await leftovers(deployment)).toEqual({ applying: 0, staged: 0 });
    watcher.close();
  });
});
