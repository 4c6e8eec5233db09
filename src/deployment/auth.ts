/**
 * A deployment's side of sign-in: the app's providers (read once per
 * isolate from convex/auth.config.ts), token verification with provider
 * documents cached in this deployment's SQLite, and, in local development
 * only, the dev issuer. The rules themselves live in src/engine/auth.
 */
import {
  AuthConfigError,
  AuthenticationError,
  DevIssuer,
  readAuthConfig,
  RemoteDocuments,
  TokenVerifier,
  type AuthProvider,
  type DocumentCacheStorage,
  type UserIdentity,
  type VerifiedToken,
} from "../engine/index.ts";
import type { KnobValues } from "../knobs/knob-table.ts";

/** The dev issuer's key pair is kept beside the cached documents, under a name no URL has. */
const DEV_ISSUER_KEY = "calmsync:dev-issuer-key";

/** The app's providers, or why its auth.config.ts is unusable (told to whoever presents a token). */
export type AppProviders = { providers: AuthProvider[]; error: string | null };

export function appProviders(authConfig: unknown): AppProviders {
  try {
    return { providers: readAuthConfig(authConfig), error: null };
  } catch (error) {
    if (error instanceof AuthConfigError) return { providers: [], error: error.message };
    throw error;
  }
}

/** The `auth_documents` table (migration 8). */
function storedDocuments(sql: SqlStorage): DocumentCacheStorage {
  return {
    load(url) {
      const row = sql.exec<{ body: string; fetched_at: number }>("SELECT body, fetched_at FROM auth_documents WHERE url = ?", url).toArray()[0];
      return row ? { body: row.body, fetchedAt: row.fetched_at } : null;
    },
    save(url, body, fetchedAt) {
      sql.exec("INSERT OR REPLACE INTO auth_documents (url, body, fetched_at) VALUES (?, ?, ?)", url, body, fetchedAt);
    },
  };
}

export class DeploymentAuth {
  readonly documents: RemoteDocuments;
  /** Present only where local development sign-in is allowed (see `devIssuerAllowed`). */
  readonly devIssuer: DevIssuer | null;
  readonly verifier: TokenVerifier;
  private readonly app: AppProviders;

  constructor(sql: SqlStorage, app: AppProviders, knobs: () => KnobValues, { devIssuer }: { devIssuer: boolean }) {
    this.app = app;
    const stored = storedDocuments(sql);
    this.documents = new RemoteDocuments({ storage: stored, knobs });
    this.devIssuer = devIssuer
      ? new DevIssuer({ load: () => stored.load(DEV_ISSUER_KEY)?.body ?? null, save: (body) => stored.save(DEV_ISSUER_KEY, body, Date.now()) })
      : null;
    this.verifier = new TokenVerifier({
      providers: () => {
        const dev = this.devIssuer?.provider();
        return dev ? [...this.app.providers, dev] : this.app.providers;
      },
      documents: this.documents,
      maxCachedTokens: () => knobs().authVerifiedTokens,
    });
    if (app.error) console.error(`convex/auth.config.ts is not usable, so every token is refused: ${app.error}`);
  }

  /** Verifies a user token (throws `AuthenticationError`). */
  verify(token: string): Promise<VerifiedToken> {
    if (this.app.error) {
      this.verifier.counters.refused++;
      return Promise.reject(new AuthenticationError("NoAuthProvider", `convex/auth.config.ts is not usable: ${this.app.error}`));
    }
    return this.verifier.verify(token);
  }

  /**
   * The caller named by an HTTP `Authorization` header: none for no header,
   * the verified identity for `Bearer <jwt>` (the scheme in any case, as
   * Convex accepts it); anything else is refused.
   */
  async identityFromHeader(header: string | null | undefined): Promise<UserIdentity | null> {
    if (!header) return null;
    const bearer = /^bearer\s+(\S+)\s*$/i.exec(header);
    if (!bearer) throw new AuthenticationError("InvalidAuthHeader", 'The Authorization header must be "Bearer <token>"');
    return (await this.verify(bearer[1]!)).identity;
  }
}
