/**
 * The deployment directory: one Durable Object (named "directory") that
 * records which deployments exist beyond the exact names declared in
 * configuration: those an operator created, and those a `DECLARED_DEPLOYMENTS`
 * wildcard made on first use.
 *
 * Why one place: before it, the Worker asked a name's own object whether it
 * existed, so each request for a new random name started a Durable Object
 * (and loaded the app into it). Now an unknown name costs one lookup here
 * (and none while the Worker's isolate remembers the answer), and no
 * deployment object is addressed at all.
 *
 * Why a count per wildcard: a pattern like `preview-*` lets anyone make a
 * deployment by naming one. Past the Worker's `WILDCARD_DEPLOYMENT_LIMIT`
 * names per pattern, a new name needs the admin key
 * (`POST /d/<name>/api/admin/deployment`); names already made keep working.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.ts";

/** The directory object's name in its namespace: there is one. */
const DIRECTORY_NAME = "directory";

/** What a wildcard-matched name's first use is told. */
export type Claim = { ok: true } | { ok: false; count: number };

/** The directory's RPC surface (typed by hand, as the deployment's is). */
export interface DirectoryApi {
  /** Whether `name` was created or claimed. */
  has(name: string): Promise<boolean>;
  /** Records `name` as existing (an operator created it, or it existed before the directory did). */
  record(name: string): Promise<void>;
  /**
   * `name` matches wildcard `pattern` and is used: true if it was recorded,
   * else it is recorded if fewer than `limit` names were made by `pattern`.
   */
  claim(name: string, pattern: string, limit: number): Promise<Claim>;
  /** Names recorded: all, or those made by `pattern` on first use. */
  count(pattern?: string): Promise<number>;
}

export function directoryStub(env: Pick<Env, "DIRECTORY">): DirectoryApi {
  return env.DIRECTORY.getByName(DIRECTORY_NAME) as unknown as DirectoryApi;
}

export class DeploymentDirectory extends DurableObject<Env> implements DirectoryApi {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // `pattern`: the wildcard that made it on first use; null for one an operator created.
    this.sql.exec("CREATE TABLE IF NOT EXISTS deployments (name TEXT PRIMARY KEY, pattern TEXT, created_at INTEGER NOT NULL)");
    this.sql.exec("CREATE INDEX IF NOT EXISTS deployments_by_pattern ON deployments (pattern)");
  }

  async has(name: string): Promise<boolean> {
    return this.sql.exec("SELECT 1 FROM deployments WHERE name = ?", name).toArray().length > 0;
  }

  async record(name: string): Promise<void> {
    this.sql.exec("INSERT OR IGNORE INTO deployments (name, pattern, created_at) VALUES (?, NULL, ?)", name, Date.now());
  }

  async claim(name: string, pattern: string, limit: number): Promise<Claim> {
    if (await this.has(name)) return { ok: true };
    const count = await this.count(pattern);
    if (count >= limit) return { ok: false, count };
    this.sql.exec("INSERT INTO deployments (name, pattern, created_at) VALUES (?, ?, ?)", name, pattern, Date.now());
    return { ok: true };
  }

  async count(pattern?: string): Promise<number> {
    const row =
      pattern === undefined
        ? this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM deployments").one()
        : this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM deployments WHERE pattern = ?", pattern).one();
    return row.n;
  }
}
