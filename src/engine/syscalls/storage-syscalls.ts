/**
 * `ctx.storage`'s syscalls, one path for every kind of function: a query and
 * a mutation read `_storage` rows through their transaction (a query's read
 * is recorded, so an upload or delete re-runs it); a mutation deletes in its
 * own transaction; an action reads the latest commit and writes each change
 * as its own system transaction, as it does everything else.
 */
import type { Document, JSONValue } from "../values.ts";
import { FunctionError } from "../errors.ts";
import type { Transaction } from "../transaction.ts";
import { newDocumentId } from "../ids.ts";
import { digestBase64, fileMetadata, STORAGE_TABLE, storageIdArgument, storedFile, type FileStorage } from "../files/file-storage.ts";

export interface StorageContext {
  files: FileStorage | null;
  /** What kind of function asks: queries cannot write, and only actions hold bytes. */
  kind: "query" | "mutation" | "action";
  /** A `_storage` row as this function sees it (a query records the read). */
  read(id: string): Document | null;
  /** Runs a write in the function's transaction (a mutation) or in one of its own (an action). */
  write<T>(change: (tx: Transaction) => T): Promise<T>;
  maxFileBytes: number;
}

const ASYNC_OPS = new Set([
  "1.0/storageGetUrl",
  "1.0/storageGetMetadata",
  "1.0/storageGenerateUploadUrl",
  "1.0/storageDelete",
  "1.0/storageStore",
  "1.0/storageGet",
]);

export function isStorageSyscall(op: string): boolean {
  return ASYNC_OPS.has(op);
}

function configured(context: StorageContext): FileStorage {
  if (!context.files) throw new FunctionError("BadRequest", "File storage is not configured for this deployment");
  return context.files;
}

function writer(context: StorageContext, method: string): void {
  if (context.kind === "query")
    throw new FunctionError("ReadOnly", `Queries cannot write: ctx.storage.${method} was called from a query. Use a mutation or an action.`);
}

/** The async syscalls (`1.0/storage*`): wire JSON in, wire JSON out. */
export async function storageSyscall(op: string, args: Record<string, JSONValue>, context: StorageContext): Promise<string> {
  const files = configured(context);
  switch (op) {
    case "1.0/storageGetUrl": {
      const id = storageIdArgument(args.storageId, "getUrl");
      return JSON.stringify(context.read(id) === null ? null : files.fileUrl(id));
    }
    case "1.0/storageGetMetadata":
      return JSON.stringify(fileMetadata(context.read(storageIdArgument(args.storageId, "getMetadata"))));
    case "1.0/storageGenerateUploadUrl":
      writer(context, "generateUploadUrl");
      return JSON.stringify(await files.uploadUrl());
    case "1.0/storageDelete": {
      writer(context, "delete");
      const id = storageIdArgument(args.storageId, "delete");
      await context.write((tx) => {
        if (tx.get(id) === null) throw new FunctionError("BadRequest", `Storage ID "${id}" not found: the file does not exist or was already deleted`);
        tx.delete(id, { system: true });
      });
      return "null";
    }
    default: {
      // `storageStore`/`storageGet` carry bytes as base64 in JSON; Convex gives them to actions only (as Blobs).
      const method = op === "1.0/storageStore" ? "store" : "get";
      throw new FunctionError("BadRequest", `ctx.storage.${method} runs in actions only; a ${context.kind} uploads with ctx.storage.generateUploadUrl()`);
    }
  }
}

/** An action's `ctx.storage.store(blob, { sha256 })`: bytes first, then their row (a failed row removes the bytes). */
export async function storeBlob(context: StorageContext, blob: unknown, options: { sha256?: string } | undefined): Promise<string> {
  const files = configured(context);
  if (!(blob instanceof Blob)) throw new FunctionError("BadRequest", "ctx.storage.store expects a Blob; for a Request, pass `await request.blob()`");
  if (blob.size > context.maxFileBytes) {
    throw new FunctionError("LimitExceeded", `The file is too large: ${blob.size} bytes, limit ${context.maxFileBytes} (knob maxFileBytes)`);
  }
  const sha256 = digestBase64(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
  if (options?.sha256 != null && options.sha256 !== sha256)
    throw new FunctionError("BadRequest", `Sha256 mismatch. Expected: ${options.sha256} Actual: ${sha256}`);
  const id = newDocumentId(STORAGE_TABLE);
  await files.blobs.put(id, blob);
  try {
    await context.write((tx) => tx.insertSystem(STORAGE_TABLE, { ...storedFile(sha256, blob.size, blob.type) }, id));
  } catch (error) {
    await files.blobs.delete(id).catch(() => undefined);
    throw error;
  }
  return id;
}

/** An action's `ctx.storage.get(id)`: the bytes as a Blob of the file's type, or null for no such file. */
export async function getBlob(context: StorageContext, storageId: unknown): Promise<Blob | null> {
  const files = configured(context);
  const row = fileMetadata(context.read(storageIdArgument(storageId, "get")));
  if (row === null) return null;
  const blob = await files.blobs.get(row.storageId);
  if (blob === null) return null;
  const type = row.contentType ?? "";
  return blob.type === type ? blob : new Blob([blob], { type });
}
