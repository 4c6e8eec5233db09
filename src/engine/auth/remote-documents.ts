/**
 * JSON documents an auth provider publishes (OpenID discovery documents and
 * JWKS key sets), fetched with a timeout and cached in memory and in the
 * deployment's storage, so a restart does not refetch and a known key never
 * costs a fetch on the request path: a document past `authKeysMaxAgeMs` is
 * served as is while a refresh runs behind it, but never past
 * `authKeysMaxStaleMs` (a revoked key must not stay trusted because the
 * provider is unreachable). Only a key id nobody has seen forces a refetch,
 * at most once per `authKeyMissCooldownMs` per document. Concurrent fetches
 * of one URL share one request; a failed one is remembered for
 * `authFetchFailureCooldownMs`, so while a provider is down sign-ins are
 * refused at once instead of each waiting out the timeout. Bodies past
 * `authDocumentMaxBytes` are refused unread.
 */
import { BodyTooLargeError, readBodyWithin } from "../bounded-body.ts";

/** Where fetched documents outlive the process (the deployment's SQLite; a Map in tests). */
export interface DocumentCacheStorage {
  load(url: string): { body: string; fetchedAt: number } | null;
  save(url: string, body: string, fetchedAt: number): void;
}

export interface RemoteDocumentsOptions {
  storage: DocumentCacheStorage;
  fetch?: typeof fetch;
  now?: () => number;
  /** Read on every fetch, so knob changes apply at once. */
  knobs: () => RemoteDocumentKnobs;
  log?: (line: string) => void;
}

export interface RemoteDocumentKnobs {
  authFetchTimeoutMs: number;
  authKeysMaxAgeMs: number;
  authKeysMaxStaleMs: number;
  authKeyMissCooldownMs: number;
  authFetchFailureCooldownMs: number;
  authDocumentMaxBytes: number;
}

export class AuthFetchError extends Error {
  override name = "AuthFetchError";
}

interface Cached {
  value: unknown;
  fetchedAt: number;
}

export class RemoteDocuments {
  private readonly memory = new Map<string, Cached>();
  private readonly inFlight = new Map<string, Promise<Cached>>();
  /** The last failed fetch of each URL, answered again until its cooldown ends. */
  private readonly failures = new Map<string, { error: AuthFetchError; at: number }>();
  private readonly options: RemoteDocumentsOptions;
  /** Network fetches made (tests and status read it). */
  fetches = 0;

  constructor(options: RemoteDocumentsOptions) {
    this.options = options;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** The document at `url`: cached if we have it (refreshed behind the caller when old), else fetched now. */
  async get(url: string): Promise<unknown> {
    if (url.startsWith("data:")) return parseDataUri(url);
    const cached = this.cached(url);
    const knobs = this.options.knobs();
    if (!cached || this.now() - cached.fetchedAt > knobs.authKeysMaxStaleMs) return (await this.fetchShared(url)).value;
    if (this.now() - cached.fetchedAt > knobs.authKeysMaxAgeMs) {
      this.fetchShared(url).catch((error: unknown) => this.log(`refreshing ${url} failed (the cached copy stays in use): ${(error as Error).message}`));
    }
    return cached.value;
  }

  /**
   * Fetches `url` again unless it was fetched within the cooldown (a token
   * naming an unknown key may mean the provider rotated its keys); returns
   * whether a newer copy may now be cached.
   */
  async refresh(url: string): Promise<boolean> {
    if (url.startsWith("data:")) return false;
    const cached = this.cached(url);
    if (cached && this.now() - cached.fetchedAt < this.options.knobs().authKeyMissCooldownMs) return false;
    await this.fetchShared(url);
    return true;
  }

  private cached(url: string): Cached | null {
    const inMemory = this.memory.get(url);
    if (inMemory) return inMemory;
    const stored = this.options.storage.load(url);
    if (!stored) return null;
    const cached = { value: JSON.parse(stored.body) as unknown, fetchedAt: stored.fetchedAt };
    this.memory.set(url, cached);
    return cached;
  }

  private fetchShared(url: string): Promise<Cached> {
    const failure = this.failures.get(url);
    if (failure && this.now() - failure.at < this.options.knobs().authFetchFailureCooldownMs) return Promise.reject(failure.error);
    let pending = this.inFlight.get(url);
    if (!pending) {
      pending = this.fetchNow(url)
        .catch((error: unknown) => {
          if (error instanceof AuthFetchError) this.failures.set(url, { error, at: this.now() });
          throw error;
        })
        .finally(() => this.inFlight.delete(url));
      this.inFlight.set(url, pending);
    }
    return pending;
  }

  private async fetchNow(url: string): Promise<Cached> {
    const { authFetchTimeoutMs: timeoutMs, authDocumentMaxBytes } = this.options.knobs();
    this.fetches++;
    let body: string;
    try {
      const response = await (this.options.fetch ?? fetch)(url, {
        headers: { accept: "application/json" },
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new AuthFetchError(`${url} answered ${response.status}`);
      }
      body = new TextDecoder().decode((await readBodyWithin(response, authDocumentMaxBytes)) ?? new Uint8Array());
    } catch (error) {
      if (error instanceof AuthFetchError) throw error;
      if (error instanceof BodyTooLargeError) throw new AuthFetchError(`${url} answered more than ${authDocumentMaxBytes} bytes (knob authDocumentMaxBytes)`);
      const reason = (error as Error).name === "TimeoutError" ? `no answer within ${timeoutMs} ms (knob authFetchTimeoutMs)` : (error as Error).message;
      throw new AuthFetchError(`Could not fetch ${url}: ${reason}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      throw new AuthFetchError(`${url} did not answer JSON`);
    }
    const cached = { value, fetchedAt: this.now() };
    this.failures.delete(url);
    this.memory.set(url, cached);
    this.options.storage.save(url, body, cached.fetchedAt);
    return cached;
  }

  private log(line: string): void {
    (this.options.log ?? console.warn)(line);
  }
}

/** A `data:` URI's JSON (`data:application/json;base64,...` or URL-encoded). */
function parseDataUri(uri: string): unknown {
  const comma = uri.indexOf(",");
  if (comma < 0) throw new AuthFetchError("A data: URI needs a comma before its data");
  const meta = uri.slice(5, comma);
  const data = uri.slice(comma + 1);
  try {
    return JSON.parse(meta.endsWith(";base64") ? atob(data) : decodeURIComponent(data));
  } catch {
    throw new AuthFetchError("The data: URI does not hold JSON");
  }
}
