/**
 * Where this deployment is reached, and the two variables Convex gives every
 * function from it: `CONVEX_CLOUD_URL` (where clients call functions: the
 * deployment's base URL, `https://host` or `https://host/d/<name>`) and
 * `CONVEX_SITE_URL` (where its HTTP actions are: the base URL + `/http`, as
 * `.convex.site` is on Convex). Convex Auth signs its tokens with
 * CONVEX_SITE_URL as their issuer and its auth.config.ts names it as the
 * provider's domain.
 *
 * The Worker tells the base URL on requests (`noteBaseUrl` in src/worker.ts;
 * `CALMSYNC_PUBLIC_URL` behind a proxy); it is kept in the row file storage
 * keeps it in (`storage_settings`), so a function run after a restart, before
 * any request (a cron), still knows it. Until the first request ever, the
 * two variables are unset.
 */
import type { EnvironmentVariables } from "../engine/index.ts";

/** The row Uploads (uploads.ts) reads for file URLs too. */
const PUBLIC_URL = "public_url";

export class DeploymentUrls {
  private base: string | null;
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    this.base = sql.exec<{ value: string }>("SELECT value FROM storage_settings WHERE key = ?", PUBLIC_URL).toArray()[0]?.value ?? null;
  }

  note(url: string): void {
    if (url === this.base) return;
    this.base = url;
    this.sql.exec("INSERT OR REPLACE INTO storage_settings (key, value) VALUES (?, ?)", PUBLIC_URL, url);
  }

  get cloudUrl(): string | null {
    return this.base;
  }

  get siteUrl(): string | null {
    return this.base === null ? null : `${this.base}/http`;
  }

  /** The variables Convex sets for functions (none before the URL is known): SYSTEM_VARIABLES in src/engine/auth/config-variables.ts. */
  systemVariables(): Record<string, string> {
    return this.base === null ? {} : { CONVEX_CLOUD_URL: this.cloudUrl!, CONVEX_SITE_URL: this.siteUrl! };
  }
}

/**
 * The operator's variables with the system ones beneath them (one the
 * operator sets wins: a way out when the public URL is not what clients
 * see). Made again only when either changes, since every run asks.
 */
export function functionVariables(operator: () => EnvironmentVariables, urls: DeploymentUrls): () => EnvironmentVariables {
  let made: { from: EnvironmentVariables; base: string | null; variables: EnvironmentVariables } | null = null;
  return () => {
    const from = operator();
    if (made && made.from === from && made.base === urls.cloudUrl) return made.variables;
    const variables = new Map([...Object.entries(urls.systemVariables()), ...from]);
    made = { from, base: urls.cloudUrl, variables };
    return variables;
  };
}
