/**
 * Uploads through the URLs `ctx.storage.generateUploadUrl()` signs. The
 * Worker streams the bytes to R2 itself; this object only decides and
 * records, in three steps:
 *
 * 1. `begin`: checks the token (this deployment's MAC, not expired, never
 *    used) and the declared size, marks the token used and hands out the
 *    storage id the bytes go under, remembered as an upload in progress;
 * 2. `finish`: the row `_storage` gets, committed together with the end of
 *    the upload in progress, so a crash leaves one or the other;
 * 3. `abort`, or the sweep after `uploadTimeoutMs`: an upload that never
 *    finished (the client went away, the Worker died) loses its bytes.
 *
 * The secret and the public URL are kept beside them (`storage_settings`).
 */
import { digestBase64, newDocumentId, newUploadSecret, STORAGE_TABLE, storedFile, UploadTokens, type BlobStore, type Engine } from "../engine/index.ts";
import type { KnobValues } from "../knobs/knob-table.ts";

const SECRET = "upload_secret";
const PUBLIC_URL = "public_url";

export type UploadRefusal = { ok: false; status: 403 | 410 | 413; code: string; message: string };
export type UploadStart = { ok: true; storageId: string } | UploadRefusal;

export interface UploadedFile {
  sha256: string;
  size: number;
  contentType: string | null;
}

export interface UploadsOptions {
  sql: SqlStorage;
  blobs: BlobStore;
  knobs: () => KnobValues;
  now: () => number;
}

export class Uploads {
  readonly tokens: UploadTokens;
  private readonly options: UploadsOptions;
  private publicUrl: string | null;

  constructor(options: UploadsOptions) {
    this.options = options;
    this.tokens = new UploadTokens({ secret: () => this.secret(), ttlMs: () => options.knobs().uploadUrlTtlMs, now: options.now });
    this.publicUrl = this.setting(PUBLIC_URL);
  }

  private setting(key: string): string | null {
    return this.options.sql.exec<{ value: string }>("SELECT value FROM storage_settings WHERE key = ?", key).toArray()[0]?.value ?? null;
  }

  private save(key: string, value: string): void {
    this.options.sql.exec("INSERT OR REPLACE INTO storage_settings (key, value) VALUES (?, ?)", key, value);
  }

  /** The deployment's own secret, made on first use. */
  private secret(): Uint8Array {
    const stored = this.setting(SECRET);
    if (stored !== null) return Uint8Array.from(atob(stored), (c) => c.charCodeAt(0));
    const secret = newUploadSecret();
    this.save(SECRET, digestBase64(secret.buffer));
    return secret;
  }

  /** Where clients reach this deployment (`https://host` or `https://host/d/<name>`), for the URLs files get. */
  get baseUrl(): string | null {
    return this.publicUrl;
  }

  /** The Worker says where this deployment is reached (`CALMSYNC_PUBLIC_URL`, else where requests arrive); kept across restarts. */
  noteBaseUrl(url: string): void {
    if (url === this.publicUrl) return;
    this.publicUrl = url;
    this.save(PUBLIC_URL, url);
  }

  async begin(token: string, declaredBytes: number): Promise<UploadStart> {
    const verified = await this.tokens.verify(token);
    if (!verified.ok) {
      return verified.reason === "expired"
        ? { ok: false, status: 410, code: "UploadUrlExpired", message: "This upload URL has expired; ask for a new one with ctx.storage.generateUploadUrl()" }
        : { ok: false, status: 403, code: "UploadUrlInvalid", message: "This upload URL was not issued by this deployment (its token does not verify)" };
    }
    const limit = this.options.knobs().maxFileBytes;
    // Refused before the token is spent: the client may retry the same URL with a smaller file.
    if (declaredBytes > limit) return tooLarge(declaredBytes, limit);
    const { sql, now } = this.options;
    if (sql.exec("SELECT 1 FROM storage_used_tokens WHERE nonce = ?", verified.nonce).toArray().length > 0) {
      return { ok: false, status: 410, code: "UploadUrlUsed", message: "This upload URL was already used; each one takes one upload" };
    }
    const storageId = newDocumentId(STORAGE_TABLE);
    sql.exec("INSERT INTO storage_used_tokens (nonce, expires_at) VALUES (?, ?)", verified.nonce, verified.expiresAt);
    sql.exec("INSERT INTO storage_uploads (storage_id, started_at) VALUES (?, ?)", storageId, now());
    return { ok: true, storageId };
  }

  /** Records a finished upload as a file; false if it was abandoned meanwhile (its bytes are then deleted). */
  async finish(engine: Engine, storageId: string, file: UploadedFile): Promise<boolean> {
    const { sql, blobs } = this.options;
    return engine.exclusive(async () => {
      if (sql.exec("SELECT 1 FROM storage_uploads WHERE storage_id = ?", storageId).toArray().length === 0) {
        await blobs.delete(storageId);
        return false;
      }
      engine.executeSystemWrite(
        (tx) => tx.insertSystem(STORAGE_TABLE, { ...storedFile(file.sha256, file.size, file.contentType) }, storageId),
        () => sql.exec("DELETE FROM storage_uploads WHERE storage_id = ?", storageId),
      );
      return true;
    });
  }

  /** The Worker could not store the bytes (the client went away, a size mismatch): nothing of the upload stays. */
  async abort(storageId: string): Promise<void> {
    this.options.sql.exec("DELETE FROM storage_uploads WHERE storage_id = ?", storageId);
    await this.options.blobs.delete(storageId);
  }

  /** Uploads streaming now. */
  get inProgress(): number {
    return this.options.sql.exec<{ n: number }>("SELECT count(*) AS n FROM storage_uploads").one().n;
  }

  /**
   * The alarm's task: deletes the bytes of uploads older than `uploadTimeoutMs`
   * and forgets used tokens that have expired anyway. Returns when it next has work.
   */
  async sweep(): Promise<number | null> {
    const { sql, blobs, now } = this.options;
    const timeout = this.options.knobs().uploadTimeoutMs;
    const cutoff = now() - timeout;
    const stale = sql.exec<{ storage_id: string }>("SELECT storage_id FROM storage_uploads WHERE started_at <= ?", cutoff).toArray();
    for (const { storage_id } of stale) {
      // Checked again one by one: an upload may finish while an earlier one's bytes are being deleted.
      if (sql.exec("DELETE FROM storage_uploads WHERE storage_id = ?", storage_id).rowsWritten === 0) continue;
      await blobs.delete(storage_id);
    }
    sql.exec("DELETE FROM storage_used_tokens WHERE expires_at <= ?", now());
    const next = sql.exec<{ at: number | null }>("SELECT min(started_at) AS at FROM storage_uploads").one().at;
    return next === null ? null : next + timeout;
  }
}

function tooLarge(bytes: number, limit: number): UploadRefusal {
  return {
    ok: false,
    status: 413,
    code: "FileTooLarge",
    message: `The file is ${bytes} bytes; this deployment stores files of at most ${limit} bytes (knob maxFileBytes)`,
  };
}
