/**
 * File storage (`ctx.storage`): a file's metadata is a row of the system
 * table `_storage` (`sha256` base64, `size`, `contentType?`), read and written
 * in transactions like any document, so queries that read it are invalidated
 * by exactly the uploads and deletes that touch it. The bytes live in a
 * `BlobStore` under the row's id (R2 in a deployment), never in a document.
 *
 * Order of effects, so that no row ever points at missing bytes: bytes are
 * stored before their row commits; they are removed only after the commit
 * that deleted their row (a mutation that deletes and then throws deletes
 * nothing).
 */
import type { Document } from "../values.ts";
import { describe } from "../values.ts";
import { FunctionError } from "../errors.ts";
import { tableOfId } from "../ids.ts";
import type { IndexWrite } from "../store.ts";
import type { UploadTokens } from "./upload-tokens.ts";

export const STORAGE_TABLE = "_storage";
/** Every `_storage` row's write appears in this index: how a commit's deleted files are found. */
const STORAGE_BY_ID = `${STORAGE_TABLE}.by_id`;

/** A `_storage` row's own fields. */
export interface StoredFile {
  sha256: string;
  size: number;
  contentType?: string;
}

/** What `ctx.storage.getMetadata` answers (Convex's shape: `contentType` is null when unknown). */
export interface FileMetadata {
  storageId: string;
  sha256: string;
  size: number;
  contentType: string | null;
}

/** Where file bytes live, by storage id. The store scopes ids to its deployment. */
export interface BlobStore {
  put(storageId: string, blob: Blob): Promise<void>;
  /** The bytes, typed with the content type they were stored with; null if absent. */
  get(storageId: string): Promise<Blob | null>;
  delete(storageId: string): Promise<void>;
}

export interface FileStorageOptions {
  blobs: BlobStore;
  /** The deployment's public URL (`https://host`, or `https://host/d/<name>`), or null while unknown. */
  baseUrl: () => string | null;
  tokens: UploadTokens;
  /** The bytes of a deleted row could not be removed (they are orphaned; the row is gone either way). */
  onDeleteFailed?: (storageId: string, error: unknown) => void;
}

export class FileStorage {
  readonly blobs: BlobStore;
  readonly tokens: UploadTokens;
  private readonly options: FileStorageOptions;

  constructor(options: FileStorageOptions) {
    this.options = options;
    this.blobs = options.blobs;
    this.tokens = options.tokens;
  }

  private base(): string {
    const base = this.options.baseUrl();
    if (base === null)
      throw new FunctionError("BadRequest", "This deployment's public URL is not known yet (no request has reached it); set CALMSYNC_PUBLIC_URL");
    return base;
  }

  /** Where a file is served (`GET`), as Convex's `getUrl` answers. */
  fileUrl(storageId: string): string {
    return `${this.base()}/api/storage/${storageId}`;
  }

  /** A new signed, single-use upload URL (`POST` the bytes to it). */
  async uploadUrl(): Promise<string> {
    return `${this.base()}/api/storage/upload?token=${await this.tokens.issue()}`;
  }

  /** After a commit: removes the bytes of every `_storage` row it deleted. */
  committed(writes: readonly IndexWrite[]): void {
    for (const write of writes) {
      if (write.index !== STORAGE_BY_ID || write.newKey !== null || write.oldKey === null) continue;
      this.blobs.delete(write.id).catch((error: unknown) => this.options.onDeleteFailed?.(write.id, error));
    }
  }
}

/** The storage id a `ctx.storage` call names, or Convex's kind of error. */
export function storageIdArgument(value: unknown, method: string): string {
  if (typeof value !== "string" || tableOfId(value) !== STORAGE_TABLE) {
    throw new FunctionError(
      "BadRequest",
      `Invalid argument \`storageId\` for \`storage.${method}\`: expected an Id<"_storage">, got ${describe(value as never)}`,
    );
  }
  return value;
}

export function fileMetadata(row: Document | null): FileMetadata | null {
  if (row === null) return null;
  const file = row as unknown as StoredFile & { _id: string };
  return { storageId: file._id, sha256: file.sha256, size: file.size, contentType: file.contentType ?? null };
}

/** The `_storage` row for bytes of this digest, size and type (no `contentType` when the type is empty). */
export function storedFile(sha256: string, size: number, contentType: string | null | undefined): StoredFile {
  return contentType ? { sha256, size, contentType } : { sha256, size };
}

/** Base64 (standard, padded: Convex's `sha256` encoding) of a digest, or of any bytes. */
export function digestBase64(digest: ArrayBufferLike): string {
  let binary = "";
  for (const byte of new Uint8Array(digest)) binary += String.fromCharCode(byte);
  return btoa(binary);
}
