/**
 * The component instances as their operator sees them (status, dashboard):
 * each one's path, the npm package it comes from, its tables with their
 * documents and bytes, its jobs waiting to run and its cron jobs.
 *
 * The app's tables carry no per-table counters (a commit keeps the whole
 * deployment's count only), so a component table is counted when status is
 * read: its `by_id` entries joined to their documents' stored sizes, at most
 * `statusTableRowsCounted` of them (past it, `more: true`), so one large
 * table cannot make a status read slow without bound.
 */
import { encodeKey, keyToBytes, prefixSuccessor, type ComponentInstance, type Components, type Schema } from "../engine/index.ts";

export interface ComponentTableStatus {
  /** The name the component's code uses (`rateLimits`; its stored name has the instance's prefix). */
  name: string;
  documents: number;
  /** Stored Convex JSON, UTF-8 bytes (what reads are charged). */
  bytes: number;
  /** Counting reached `statusTableRowsCounted` and stopped: there may be more documents than shown. */
  more: boolean;
  indexes: string[];
}

export interface ComponentStatus {
  /** `"workpool"`, `"workpool/batchWorker"`. */
  path: string;
  /** `@convex-dev/workpool@0.5.0`, or null when codegen found no package. */
  package: string | null;
  tables: ComponentTableStatus[];
  /** Its scheduled functions not yet run (`_scheduled_functions` in state `pending`). */
  scheduledPending: number;
  /** Its own cron jobs (its `crons.ts`), as recorded in its `_cron_jobs`. */
  cronJobs: number;
}

/** What `statusTableRowsCounted` needs from the SQL store. */
type Sql = DurableObjectStorage["sql"];

/** A component's own `_storage` stays empty (its files are the app's), so it is not listed. */
const UNLISTED = new Set(["_storage"]);

export function componentStatuses(sql: Sql, components: Components, schema: Schema, maxRows: number): ComponentStatus[] {
  return components.all.filter((instance) => instance.path !== "").map((instance) => componentStatus(sql, instance, schema, maxRows));
}

function componentStatus(sql: Sql, instance: ComponentInstance, schema: Schema, maxRows: number): ComponentStatus {
  const tables: ComponentTableStatus[] = [];
  for (const [stored, table] of schema.tables) {
    const name = instance.namespace.localName(stored);
    if (name === null || UNLISTED.has(name)) continue;
    const { documents, bytes } = countTable(sql, stored, maxRows);
    tables.push({ name, documents, bytes, more: documents >= maxRows, indexes: [...table.indexes.keys()] });
  }
  tables.sort((a, b) => a.name.localeCompare(b.name));
  return {
    path: instance.path,
    package: instance.package,
    tables,
    scheduledPending: countPendingJobs(sql, instance.namespace.storageName("_scheduled_functions"), maxRows),
    cronJobs: tables.find((table) => table.name === "_cron_jobs")?.documents ?? 0,
  };
}

/** A table's documents and their bytes, up to `maxRows` of them (through its `by_id` index: every table has it). */
function countTable(sql: Sql, stored: string, maxRows: number): { documents: number; bytes: number } {
  const row = sql
    .exec<{ documents: number; bytes: number | null }>(
      `SELECT count(*) AS documents, sum(d.bytes) AS bytes
       FROM (SELECT doc_id FROM index_entries WHERE index_name = ? LIMIT ?) e JOIN documents d ON d.id = e.doc_id`,
      `${stored}.by_id`,
      maxRows,
    )
    .one();
  return { documents: row.documents, bytes: row.bytes ?? 0 };
}

/** Pending jobs (at most `maxRows`): the `pending` range of the scheduler's `by_next` index (`state.kind`, then due time). */
function countPendingJobs(sql: Sql, scheduledTable: string, maxRows: number): number {
  const start = keyToBytes(encodeKey(["pending"])).buffer as ArrayBuffer;
  const end = keyToBytes(prefixSuccessor(encodeKey(["pending"]))!).buffer as ArrayBuffer;
  return sql
    .exec<{ n: number }>(
      "SELECT count(*) AS n FROM (SELECT 1 FROM index_entries WHERE index_name = ? AND key >= ? AND key < ? LIMIT ?)",
      `${scheduledTable}.by_next`,
      start,
      end,
      maxRows,
    )
    .one().n;
}
