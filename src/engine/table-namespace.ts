/**
 * Each component instance has tables of its own: the app's `messages` and a
 * rate limiter's `rateLimits` share one store, so a component's tables are
 * stored under a prefix of its instance (`_c1a2b3c4d_rateLimits`,
 * `_c1a2b3c4d__scheduled_functions`). The prefix starts with `_`, which no
 * app table can, so no app table is ever mistaken for a component's; it is
 * a hash of the instance's path, so it is the same on every start without a
 * stored mapping. User code never sees it: an `Execution` speaks its
 * instance's local names and this class translates them, and an id or table
 * of another instance is simply not found.
 */
import { tableOfId } from "./ids.ts";

const NAMESPACED = /^_c([0-9a-f]{8})_(.+)$/;

/** The storage prefix of the component instance at `componentPath` ("" for the app itself). */
export function namespacePrefix(componentPath: string): string {
  if (componentPath === "") return "";
  // FNV-1a: stable across isolates and versions, and enough for a deployment's few instances (collisions are refused at load).
  let hash = 0x811c9dc5;
  for (let i = 0; i < componentPath.length; i++) {
    hash ^= componentPath.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `_c${hash.toString(16).padStart(8, "0")}_`;
}

/** A stored table name's prefix and local name: `_c1a2b3c4d_rateLimits` -> `["_c1a2b3c4d_", "rateLimits"]`, `messages` -> `["", "messages"]`. */
export function splitTableName(storageName: string): [prefix: string, local: string] {
  const match = NAMESPACED.exec(storageName);
  return match ? [`_c${match[1]}_`, match[2]!] : ["", storageName];
}

/** The name a table has inside its instance (what user code and error messages use). */
export function localTableName(storageName: string): string {
  return splitTableName(storageName)[1];
}

/**
 * What a table of another instance is called inside this one: never a table
 * name (it has spaces), so a `v.id("t")` check or `normalizeId` cannot match it.
 */
export const FOREIGN_TABLE = "<a table of another component>";

export class TableNamespace {
  /** The storage prefix ("" for the app's own tables). */
  readonly prefix: string;

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  /** The stored name of this instance's table `local`. */
  storageName(local: string): string {
    return this.prefix + local;
  }

  /** The local name of a stored table, or null when it belongs to another instance. */
  localName(storageName: string): string | null {
    const [prefix, local] = splitTableName(storageName);
    return prefix === this.prefix ? local : null;
  }

  /** `"rateLimits.by_name"` -> the stored index name (a qualified index name is `<table>.<index>`). */
  storageIndexName(qualified: string): string {
    return typeof qualified === "string" && qualified.includes(".") ? this.prefix + qualified : qualified;
  }

  /** The local name of a stored table as a validator or message shows it: another instance's is `FOREIGN_TABLE`. */
  shownName(storageName: string): string {
    return this.localName(storageName) ?? FOREIGN_TABLE;
  }

  /** The table an id names, seen from this instance (`FOREIGN_TABLE` for another's), or null for an old bare id. */
  tableOfId(id: string): string | null {
    const stored = tableOfId(id);
    return stored === null ? null : this.shownName(stored);
  }
}
