/**
 * One function run's side of the `Convex` syscall interface that
 * `convex/server` calls (see `../shared/reference/convex-runtime.md`): the
 * database operations over the run's `Transaction`, its open query streams,
 * its one paginated query and the journal that pins it.
 *
 * Syscalls take and return wire JSON as strings. An async syscall's failure
 * reaches user code as a plain `Error(message)` (convex/server rewraps it), so
 * the run remembers each `FunctionError` it raised by message: when the
 * function fails with one of them, the engine reports the original code
 * (a budget stays `LimitExceeded`, not a user error).
 */
import type { JSONValue, Value } from "../values.ts";
import { convexToJson, describe, isPlainObject, jsonToConvex } from "../values.ts";
import type { Transaction } from "../transaction.ts";
import { FunctionError } from "../errors.ts";
import { isDocumentId, tableOfId } from "../ids.ts";
import { wireToValue } from "./filter-expression.ts";
import { LogLines } from "./log-lines.ts";
import type { FunctionRegistry } from "../functions.ts";
import { cancelJob, scheduleJob, SchedulingBudget } from "../scheduling.ts";
import { QueryStream, readPage, type Row, type SerializedQuery } from "./query-stream.ts";
import { decodeCursor, encodeCursor, journalEndCursor, journalFor, queryFingerprint } from "./cursors.ts";
import type { UserIdentity } from "../auth/identity.ts";
import type { FileStorage } from "../files/file-storage.ts";
import { isStorageSyscall, storageSyscall, type StorageContext } from "./storage-syscalls.ts";

/** Convex refuses larger pages (`PageSizeTooLarge`). */
const MAX_PAGE_SIZE = 32_000;
/** Past this many rows a page asks the client to split it (Convex's threshold). */
const SPLIT_RECOMMENDED_ROWS = 6_144;

type Args = Record<string, JSONValue>;

export class Execution {
  /** The journal this run produced (set by its paginated query), or null. */
  journal: string | null = null;
  private readonly streams = new Map<number, QueryStream>();
  private nextStreamId = 1;
  private paginated = false;
  private readonly raised = new Map<string, FunctionError>();
  readonly logs = new LogLines();
  private readonly tx: Transaction;
  /** The journal of the subscription's previous run (or from the client's `Add`), if any. */
  private readonly previousJournal: string | null;
  /** The deployment's functions, which a mutation may schedule. */
  private readonly functions: FunctionRegistry;
  /** The caller (null: anonymous). */
  private readonly identity: UserIdentity | null;
  /** Whether the function asked who called it: only then does its result depend on the caller. */
  readIdentity = false;

  private readonly files: FileStorage | null;
  /** `ctx.storage` over this run's transaction, made on its first use (most runs never touch a file). */
  private storageContext: StorageContext | null = null;

  /** What this run may still schedule. */
  private readonly scheduling: SchedulingBudget;

  constructor(tx: Transaction, previousJournal: string | null, functions: FunctionRegistry, identity: UserIdentity | null = null, files: FileStorage | null = null) {
    this.tx = tx;
    this.scheduling = new SchedulingBudget(tx.limits);
    this.previousJournal = previousJournal;
    this.functions = functions;
    this.identity = identity;
    this.files = files;
  }

  private get storage(): StorageContext {
    const tx = this.tx;
    return (this.storageContext ??= {
      files: this.files,
      kind: tx.writable ? "mutation" : "query",
      read: (id) => tx.get(id)?.document ?? null,
      write: async (change) => change(tx),
      maxFileBytes: tx.limits.maxFileBytes,
    });
  }

  /** The engine error a failure stands for, when user code rethrew one of this run's syscall errors. */
  raisedError(error: unknown): FunctionError | null {
    if (error instanceof FunctionError) return error;
    return error instanceof Error ? (this.raised.get(error.message) ?? null) : null;
  }

  /** Set when the run went past its deadline: it was answered and its transaction dropped, and whatever it asks for afterwards fails. */
  private expired: Error | null = null;

  expire(error: Error): void {
    this.expired = error;
  }

  /** Closes streams user code left open (an early `break`), so their reads are recorded. */
  finish(): void {
    for (const stream of this.streams.values()) stream.close();
    this.streams.clear();
  }

  syscall(op: string, argsJson: string): string {
    if (this.expired) throw this.expired;
    const args = JSON.parse(argsJson) as Args;
    switch (op) {
      case "1.0/queryStream": {
        const id = this.nextStreamId++;
        this.streams.set(id, new QueryStream(this.tx, args.query as unknown as SerializedQuery));
        return JSON.stringify({ queryId: id });
      }
      case "1.0/queryCleanup": {
        const stream = this.streams.get(args.queryId as number);
        stream?.close();
        return JSON.stringify(this.streams.delete(args.queryId as number));
      }
      case "1.0/db/normalizeId":
        return JSON.stringify({ id: this.normalizeId(args.table as string, args.idString as string) });
      case "1.0/getSnapshotTs":
        return JSON.stringify(convexToJson(this.tx.snapshotTs));
      default:
        throw new Error(`Unknown operation ${op}`);
    }
  }

  asyncSyscall(op: string, argsJson: string): Promise<string> {
    if (this.expired) return Promise.reject(this.expired);
    try {
      const args = JSON.parse(argsJson) as Args;
      if (isStorageSyscall(op)) return storageSyscall(op, args, this.storage).catch((error: unknown) => Promise.reject(this.remember(error)));
      return Promise.resolve(this.runAsync(op, args));
    } catch (error) {
      return Promise.reject(this.remember(error));
    }
  }

  /** Keeps an engine error by message, so a rethrow by user code keeps its code (see module doc). */
  private remember(error: unknown): unknown {
    if (error instanceof FunctionError) this.raised.set(error.message, error);
    return error;
  }

  jsSyscall(op: string, _args?: Record<string, unknown>): never {
    throw new Error(`Unknown JS operation ${op}`);
  }

  private runAsync(op: string, args: Args): string {
    switch (op) {
      case "1.0/get":
        return this.tx.get(this.idFor(args, "get"))?.json ?? "null";
      case "1.0/queryStreamNext": {
        const stream = this.streams.get(args.queryId as number);
        if (!stream) throw new FunctionError("BadRequest", "This query was already closed");
        const row = stream.next();
        return row === null ? '{"value":null,"done":true}' : `{"value":${row.json},"done":false}`;
      }
      case "1.0/queryPage":
        return this.queryPage(args);
      case "1.0/count":
        return JSON.stringify(this.tx.count(args.table as string));
      case "1.0/insert": {
        const id = this.tx.insert(args.table as string, userFields(args.value, "insert"));
        return JSON.stringify({ _id: id });
      }
      case "1.0/shallowMerge":
        this.tx.patch(this.idFor(args, "patch"), userFields(args.value, "patch", true));
        return "null";
      case "1.0/replace":
        this.tx.replace(this.idFor(args, "replace"), userFields(args.value, "replace"));
        return "null";
      case "1.0/remove":
        this.tx.delete(this.idFor(args, "delete"));
        return "null";
      case "1.0/schedule":
        return JSON.stringify(scheduleJob(this.tx, this.functions, this.scheduling, args, args.ts, args.args));
      case "1.0/cancel_job":
        cancelJob(this.tx, jsonToConvex(args.id ?? null));
        return "null";
      case "1.0/getUserIdentity":
        this.readIdentity = true;
        return JSON.stringify(this.identity);
      case "1.0/getFunctionMetadata":
        return JSON.stringify({ name: null, componentPath: "" });
      default:
        throw new Error(`Unknown async operation ${op}`);
    }
  }

  /** The id of a read or write, checked against the table named by the new call forms (`db.get("t", id)`, `db.patch("t", id, ...)`). */
  private idFor(args: Args, method: string): string {
    const id = jsonToConvex(args.id ?? null);
    if (typeof id !== "string") throw new FunctionError("BadRequest", `Invalid argument \`id\` for \`db.${method}\`, expected string but got ${describe(id)}`);
    if (args.table !== undefined && args.table !== null) this.checkTable(id, args.table as string, method);
    return id;
  }

  private checkTable(id: string, table: string, method: string): void {
    const actual = isDocumentId(id) ? this.tableOf(id) : null;
    if (actual !== null && actual !== table) {
      throw new FunctionError("BadRequest", `Invalid argument \`id\` for \`db.${method}\`: expected Id<"${table}">, got Id<"${actual}"> instead`);
    }
  }

  private normalizeId(table: string, idString: string): string | null {
    if (typeof idString !== "string" || !isDocumentId(idString)) return null;
    return this.tableOf(idString) === table ? idString : null;
  }

  /** An id's table: named by the id, or (an old bare id) read from its document. */
  private tableOf(id: string): string | null {
    return tableOfId(id) ?? this.tx.tableOf(id);
  }

  private queryPage(args: Args): string {
    if (this.paginated) {
      throw new FunctionError("BadRequest", "MultiplePaginatedDatabaseQueries: This query or mutation function ran multiple paginated queries. Convex only supports a single paginated query in each function.");
    }
    this.paginated = true;
    const query = args.query as unknown as SerializedQuery;
    const pageSize = args.pageSize as number;
    if (!Number.isInteger(pageSize) || pageSize <= 0) {
      throw new FunctionError("BadRequest", `NoDocumentsForPagination: paginationOpts.numItems must be a positive integer, got ${describe(pageSize)}`);
    }
    if (pageSize > MAX_PAGE_SIZE) throw new FunctionError("BadRequest", `PageSizeTooLarge: paginationOpts.numItems is ${pageSize}, limit ${MAX_PAGE_SIZE}`);
    const fingerprint = queryFingerprint(query);
    const after = decodeCursor(args.cursor as string | null, fingerprint);
    const endCursor = (args.endCursor as string | null) ?? journalEndCursor(this.previousJournal);
    const upTo = decodeCursor(endCursor, fingerprint);
    const maximumRowsRead = typeof args.maximumRowsRead === "number" ? args.maximumRowsRead : null;
    if (after === "end") {
      // Past the end: an empty, finished page (a client that loaded everything asks for more).
      return this.pageJson([], encodeCursor(fingerprint, "end"), true, null, null);
    }
    const { page, continueKey, splitKey, hitReadLimit } = readPage(this.tx, query, { after, upTo, pageSize, maximumRowsRead });
    const continueCursor = encodeCursor(fingerprint, continueKey);
    const status = hitReadLimit ? "SplitRequired" : page.length > SPLIT_RECOMMENDED_ROWS ? "SplitRecommended" : null;
    return this.pageJson(page, continueCursor, continueKey === "end", splitKey === null ? null : encodeCursor(fingerprint, splitKey), status);
  }

  private pageJson(page: Row[], continueCursor: string, isDone: boolean, splitCursor: string | null, pageStatus: string | null): string {
    this.journal = journalFor(continueCursor);
    return `{"page":[${page.map((row) => row.json).join(",")}],"isDone":${isDone},"continueCursor":${JSON.stringify(continueCursor)},"splitCursor":${JSON.stringify(splitCursor)},"pageStatus":${JSON.stringify(pageStatus)}}`;
  }
}

/**
 * The fields of a written document from wire JSON. A patch may carry
 * `{"$undefined": null}` for a top-level field: it deletes that field.
 */
function userFields(json: JSONValue | undefined, method: string, patch = false): Record<string, Value | undefined> {
  if (!isPlainObject(json)) throw new FunctionError("BadRequest", `db.${method} expects an object, got ${describe(json)}`);
  const fields: Record<string, Value | undefined> = {};
  for (const [name, value] of Object.entries(json)) fields[name] = patch ? wireToValue(value as JSONValue) : jsonToConvex(value);
  return fields;
}
