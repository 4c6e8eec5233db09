/**
 * A deployment's side of sign-in: the app's providers (convex/auth.config.ts,
 * loaded once per isolate, with this deployment's variables put in:
 * src/engine/auth/config-variables.ts), token verification with provider
 * documents cached in this deployment's SQLite, and, in local development
 * only, the dev issuer. The rules themselves live in src/engine/auth.
 *
 * A provider may be the deployment itself (Convex Auth: its HTTP actions
 * publish the discovery document and keys at CONVEX_SITE_URL). Those
 * documents are asked of the deployment's own HTTP actions directly, not
 * over the network: a Worker fetching its own public URL is not always
 * allowed, and it would be a round trip to reach this same object. So are
 * the deployment's own keys (Convex Auth 2.0.0 signs with `ctx.auth.signJwt`
 * and names `${CONVEX_CLOUD_URL}/.well-known/jwks.json`).
 */
import {
  AuthConfigError,
  AuthenticationError,
  DeploymentKey,
  DevIssuer,
  readAuthConfig,
  RemoteDocuments,
  resolveConfigVariables,
  SYSTEM_VARIABLES,
  TokenVerifier,
  type AuthProvider,
  type DocumentCacheStorage,
  type UserIdentity,
  type VerifiedToken,
} from "../engine/index.ts";
import type { KnobValues } from "../knobs/knob-table.ts";

/** The dev issuer's key pair is kept beside the cached documents, under a name no URL has. */
const DEV_ISSUER_KEY = "calmsync:dev-issuer-key";
/** So is the deployment's own signing key (`ctx.auth.signJwt`). */
const DEPLOYMENT_KEY = "calmsync:deployment-key";

/** The app's providers, or why its auth.config.ts is unusable (told to whoever presents a token). */
export type AppProviders = { providers: AuthProvider[]; error: string | null };

function appProviders(authConfig: unknown): AppProviders {
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

export interface DeploymentAuthOptions {
  devIssuer: boolean;
  /** A variable's value as this deployment's functions read it (its own, the system's, the Worker's), for auth.config.ts. */
  variable: (name: string) => string | undefined;
  /** Answers a URL the deployment serves itself (its HTTP actions), or null for any other URL. */
  serveOwn?: (url: string) => Promise<Response> | null;
}

export class DeploymentAuth {
  readonly documents: RemoteDocuments;
  /** Present only where local development sign-in is allowed (see `devIssuerAllowed`). */
  readonly devIssuer: DevIssuer | null;
  readonly verifier: TokenVerifier;
  /** The deployment's own key: `ctx.auth.signJwt` signs with it, `/.well-known/jwks.json` publishes it. */
  readonly deploymentKey: DeploymentKey;
  private readonly authConfig: unknown;
  private readonly variable: (name: string) => string | undefined;
  /** The providers as last resolved, by the resolved config's JSON (variables change, so it is checked on use). */
  private resolved: { key: string; app: AppProviders } | null = null;

  constructor(sql: SqlStorage, authConfig: unknown, knobs: () => KnobValues, { devIssuer, variable, serveOwn }: DeploymentAuthOptions) {
    this.authConfig = authConfig;
    this.variable = variable;
    const stored = storedDocuments(sql);
    const fetchDocument: typeof fetch = (input, init) => serveOwn?.(String(input)) ?? fetch(input, init);
    this.documents = new RemoteDocuments({ storage: stored, knobs, fetch: fetchDocument });
    this.deploymentKey = new DeploymentKey({
      load: () => stored.load(DEPLOYMENT_KEY)?.body ?? null,
      save: (body) => stored.save(DEPLOYMENT_KEY, body, Date.now()),
    });
    this.devIssuer = devIssuer
      ? new DevIssuer({ load: () => stored.load(DEV_ISSUER_KEY)?.body ?? null, save: (body) => stored.save(DEV_ISSUER_KEY, body, Date.now()) })
      : null;
    this.verifier = new TokenVerifier({
      providers: () => {
        const dev = this.devIssuer?.provider();
        const { providers } = this.app();
        return dev ? [...providers, dev] : providers;
      },
      documents: this.documents,
      maxCachedTokens: () => knobs().authVerifiedTokens,
    });
    this.app();
  }

  /** The app's providers with the variables as they are now (resolved again only when one it reads changed). */
  private app(): AppProviders {
    // A deployment learns its URL from its first request ever (deployment-urls.ts): until then a config naming
    // CONVEX_SITE_URL (Convex Auth's) cannot be used, which is no fault of the app, so it is not reported.
    let urlUnknown = false;
    const config = resolveConfigVariables(this.authConfig, (name) => {
      const value = this.variable(name);
      if (value === undefined && SYSTEM_VARIABLES.includes(name)) urlUnknown = true;
      return value;
    });
    const key = JSON.stringify(config) ?? "null";
    if (this.resolved?.key === key) return this.resolved.app;
    const app = appProviders(config);
    if (app.error && !urlUnknown) console.error(`convex/auth.config.ts is not usable, so every token is refused: ${app.error}`);
    this.resolved = { key, app };
    return app;
  }

  /** Verifies a user token (throws `AuthenticationError`). */
  verify(token: string): Promise<VerifiedToken> {
    const { error } = this.app();
    if (error) {
      this.verifier.counters.refused++;
      return Promise.reject(new AuthenticationError("NoAuthProvider", `convex/auth.config.ts is not usable: ${error}`));
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
