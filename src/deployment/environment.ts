/**
 * A deployment's environment variables: what `process.env.NAME` reads in its
 * functions before the Worker's vars and secrets (src/engine/syscalls/run-context.ts).
 * Set and removed by the operator (admin API, `npm run env`), kept in the
 * deployment's SQLite (`environment_variables`), applied to the next run
 * without a restart. Every change is audited (`environment_changes`: the
 * name, set or removed, who said they made it, when; never the value), and
 * only an explicit `get` of one name shows a value: status and the
 * dashboard show names.
 */
import type { EnvironmentVariables } from "../engine/index.ts";
import type { KnobValues } from "../knobs/knob-table.ts";

/** Convex's rule for names, so a project's variables move between the two unchanged. */
const VARIABLE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,39}$/;
/** Longest `actor` kept in the audit: a user and host name, not a document. */
const MAX_ACTOR_LENGTH = 100;

export class EnvironmentError extends Error {
  override name = "EnvironmentError";
}

export interface EnvironmentChange {
  name: string;
  action: "set" | "remove";
  /** Who made it, as the caller named themselves (`npm run env` sends user@host); the admin key is shared, so this is a label, not a proof. */
  actor: string;
  at: number;
}

export class DeploymentEnvironment {
  /** Replaced whole on every change: a run keeps the variables it started with. */
  private current: Map<string, string>;
  private readonly updatedAt = new Map<string, number>();
  private readonly storage: DurableObjectStorage;
  private readonly knobs: () => Readonly<KnobValues>;

  constructor(storage: DurableObjectStorage, knobs: () => Readonly<KnobValues>) {
    this.storage = storage;
    this.knobs = knobs;
    this.current = new Map();
    for (const row of storage.sql.exec<{ name: string; value: string; updated_at: number }>("SELECT name, value, updated_at FROM environment_variables")) {
      this.current.set(row.name, row.value);
      this.updatedAt.set(row.name, row.updated_at);
    }
  }

  /** What runs read (the engine asks on each run). */
  get variables(): EnvironmentVariables {
    return this.current;
  }

  /** Names and when each was last set, sorted; no values. */
  list(): { name: string; updatedAt: number }[] {
    return [...this.current.keys()].sort().map((name) => ({ name, updatedAt: this.updatedAt.get(name)! }));
  }

  value(name: string): string | null {
    return this.current.get(name) ?? null;
  }

  /** Sets `name` (checked against Convex's name rule and the knobs), audited; applies to the next run. */
  set(name: string, value: unknown, actor: string, now: number): EnvironmentChange {
    if (!VARIABLE_NAME.test(name))
      throw new EnvironmentError(
        `Environment variable names are a letter then letters, digits or underscores, at most 40 characters (as on Convex): ${JSON.stringify(name)}`,
      );
    if (typeof value !== "string") throw new EnvironmentError(`An environment variable's value is a string, got ${value === null ? "null" : typeof value}`);
    const knobs = this.knobs();
    const bytes = new TextEncoder().encode(value).length;
    if (bytes > knobs.environmentValueMaxBytes)
      throw new EnvironmentError(`The value of ${name} is ${bytes} bytes, limit ${knobs.environmentValueMaxBytes} (knob environmentValueMaxBytes)`);
    if (!this.current.has(name) && this.current.size >= knobs.environmentVariablesMax) {
      throw new EnvironmentError(
        `This deployment already has ${this.current.size} environment variables, limit ${knobs.environmentVariablesMax} (knob environmentVariablesMax); remove one first`,
      );
    }
    const change: EnvironmentChange = { name, action: "set", actor: actorLabel(actor), at: now };
    this.storage.transactionSync(() => {
      this.storage.sql.exec("INSERT OR REPLACE INTO environment_variables (name, value, updated_at) VALUES (?, ?, ?)", name, value, now);
      this.audit(change);
    });
    this.current = new Map(this.current).set(name, value);
    this.updatedAt.set(name, now);
    return change;
  }

  /** Removes `name` (runs fall back to the Worker's var of that name, if any), audited; null if it was not set. */
  remove(name: string, actor: string, now: number): EnvironmentChange | null {
    if (!this.current.has(name)) return null;
    const change: EnvironmentChange = { name, action: "remove", actor: actorLabel(actor), at: now };
    this.storage.transactionSync(() => {
      this.storage.sql.exec("DELETE FROM environment_variables WHERE name = ?", name);
      this.audit(change);
    });
    const next = new Map(this.current);
    next.delete(name);
    this.current = next;
    this.updatedAt.delete(name);
    return change;
  }

  /** Recorded changes, newest first. */
  history(limit = 100): EnvironmentChange[] {
    return this.storage.sql
      .exec<{ name: string; action: string; actor: string; changed_at: number }>(
        "SELECT name, action, actor, changed_at FROM environment_changes ORDER BY id DESC LIMIT ?",
        limit,
      )
      .toArray()
      .map((row) => ({ name: row.name, action: row.action as EnvironmentChange["action"], actor: row.actor, at: row.changed_at }));
  }

  private audit(change: EnvironmentChange): void {
    this.storage.sql.exec(
      "INSERT INTO environment_changes (name, action, actor, changed_at) VALUES (?, ?, ?, ?)",
      change.name,
      change.action,
      change.actor,
      change.at,
    );
    // Bounded, like the knob history: the newest rows only.
    this.storage.sql.exec("DELETE FROM environment_changes WHERE id <= (SELECT max(id) FROM environment_changes) - ?", this.knobs().environmentHistoryRows);
  }
}

function actorLabel(actor: string): string {
  const label = actor.trim().slice(0, MAX_ACTOR_LENGTH);
  return label === "" ? "unnamed holder of the admin key" : label;
}
