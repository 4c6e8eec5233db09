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
 *
 * A run belongs to one component instance (the app's, or a component's): it
 * speaks its instance's table names, which are translated to their stored
 * names here (`table-namespace.ts`), and ids of another instance's tables are
 * not found. Its `ctx.runQuery`/`ctx.runMutation` run through `NestedCalls`
 * (the engine) in a child of its transaction.
 */
import type { JSONValue, Value } from "../values.ts";
import { convexToJson, describe, isPlainObject, jsonToConvex } from "../values.ts";
import type { Transaction } from "../transaction.ts";
import { FunctionError } from "../errors.ts";
import { isDocumentId, tableOfId } from "../ids.ts";
import { wireToValue } from "./filter-expression.ts";
import { LogLines } from "./log-lines.ts";
import { cancelJob, scheduleJob, SchedulingBudget } from "../scheduling.ts";
import { QueryStream, readPage, type Row, type SerializedQuery } from "./query-stream.ts";
import { decodeCursor, encodeCursor, journalEndCursor, journalFor, queryFingerprint } from "./cursors.ts";
import type { UserIdentity } from "../auth/identity.ts";
import type { SignJwtRequest } from "../auth/deployment-key.ts";
import type { FileStorage } from "../files/file-storage.ts";
import { isStorageSyscall, storageSyscall, type StorageContext } from "./storage-syscalls.ts";
import type { Components, ComponentInstance, FunctionAddress, FunctionTarget } from "../components.ts";
import type { TableNamespace } from "../table-namespace.ts";

/** What runs a nested call (`ctx.runQuery`/`ctx.runMutation` in a query or mutation): the engine, declared here so this module does not import it. */
export interface NestedCalls {
  /**
   * Runs `target` in a child of `parent` (committed into it if it returns; `snapshot`: reading what is committed), `depth` calls deep;
   * resolves to its result in wire JSON. What it printed is added to `callerLogs`, the caller's.
   */
  runNested(
    target: FunctionTarget,
    args: Value,
    parent: Transaction,
    identity: UserIdentity | null,
    depth: number,
    callerLogs: LogLines,
    snapshot?: boolean,
  ): Promise<string>;
}

/** Where a run stands among the app's component instances, and how it calls other functions. */
export interface RunPlace {
  readonly components: Components;
  readonly instance: ComponentInstance;
  readonly calls: NestedCalls | null;
  /** How many calls deep this run is (0: called by a client, an action or the scheduler). */
  readonly depth: number;
  /** `ctx.auth.signJwt` with the deployment's key, issued for this run's instance (none: the syscall fails saying so). */
  readonly signJwt?: (request: SignJwtRequest, instancePath: string) => Promise<string>;
}

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
  /** The caller (null: anonymous). */
  private readonly identity: UserIdentity | null;
  /** Whether the function asked who called it: only then does its result depend on the caller. */
  readIdentity = false;
  /** Whether the function read the clock (`Date.now()`, `new Date()`): then its result may change with time alone. */
  observedTime = false;

  private readonly files: FileStorage | null;
  /** `ctx.storage` over this run's transaction, made on its first use (most runs never touch a file). */
  private storageContext: StorageContext | null = null;

  /** What this run may still schedule. */
  private readonly scheduling: SchedulingBudget;

  /** This run's component instance, the others, and how it calls them. */
  private readonly place: RunPlace;

  constructor(tx: Transaction, previousJournal: string | null, identity: UserIdentity | null, files: FileStorage | null, place: RunPlace) {
    this.tx = tx;
    this.place = place;
    this.scheduling = new SchedulingBudget(tx.limits);
    this.previousJournal = previousJournal;
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

  readClock(): void {
    this.observedTime = true;
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
        this.streams.set(id, new QueryStream(this.tx, storedQuery(this.namespace, args.query as unknown as SerializedQuery)));
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

  /**
   * Answers with the text itself when it has it at once (every database read): convex/server
   * awaits it either way, and a promise per document read costs on the function path (issue 27).
   */
  asyncSyscall(op: string, argsJson: string): string | Promise<string> {
    if (this.expired) return Promise.reject(this.expired);
    try {
      const args = JSON.parse(argsJson) as Args;
      if (isStorageSyscall(op)) return storageSyscall(op, args, this.storage).catch((error: unknown) => Promise.reject(this.remember(error)));
      return this.runAsync(op, args);
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

  /** The run's instance's tables: what its names and ids mean. */
  get namespace(): TableNamespace {
    return this.place.instance.namespace;
  }

  private runAsync(op: string, args: Args): string | Promise<string> {
    switch (op) {
      case "1.0/get": {
        const id = this.idFor(args, "get");
        // Another instance's document is not there for this one (as an id of an unknown table).
        return this.owns(id) ? (this.tx.get(id)?.json ?? "null") : "null";
      }
      case "1.0/queryStreamNext": {
        const stream = this.streams.get(args.queryId as number);
        if (!stream) throw new FunctionError("BadRequest", "This query was already closed");
        const row = stream.next();
        return row === null ? '{"value":null,"done":true}' : `{"value":${row.json},"done":false}`;
      }
      case "1.0/queryPage":
        return this.queryPage(args);
      case "1.0/count":
        return JSON.stringify(this.tx.count(this.storageTable(args.table, "count")));
      case "1.0/insert": {
        const id = this.tx.insert(this.storageTable(args.table, "insert"), userFields(this.withCommitTs(args.value), "insert"));
        return JSON.stringify({ _id: id });
      }
      case "1.0/shallowMerge":
        this.tx.patch(this.ownId(args, "patch"), userFields(this.withCommitTs(args.value), "patch", true));
        return "null";
      case "1.0/replace":
        this.tx.replace(this.ownId(args, "replace"), userFields(this.withCommitTs(args.value), "replace"));
        return "null";
      case "1.0/remove":
        this.tx.delete(this.ownId(args, "delete"));
        return "null";
      case "1.0/schedule":
        return JSON.stringify(
          scheduleJob(this.tx, { components: this.place.components, caller: this.place.instance }, this.scheduling, args, args.ts, args.args),
        );
      case "1.0/cancel_job":
        cancelJob(this.tx, this.namespace, jsonToConvex(args.id ?? null));
        return "null";
      case "1.0/runUdf":
        return this.runUdf(args);
      case "1.0/createFunctionHandle":
        return JSON.stringify(this.place.components.handleFor(this.place.instance, args as FunctionAddress));
      case "1.0/getUserIdentity":
        this.readIdentity = true;
        return JSON.stringify(this.identity);
      case "1.0/signJwt":
        return this.signJwt(args);
      case "1.0/getFunctionMetadata":
        return JSON.stringify({ name: null, componentPath: this.place.instance.path });
      default:
        throw new Error(`Unknown async operation ${op}`);
    }
  }

  /** `ctx.auth.signJwt`: mutations only, as in Convex (a query's result must not depend on a fresh signature). */
  private signJwt(args: Args): Promise<string> {
    const sign = this.place.signJwt;
    const refused = !this.tx.writable
      ? new FunctionError("BadRequest", "ctx.auth.signJwt can only be called from a mutation")
      : !sign
        ? new FunctionError("BadRequest", "ctx.auth.signJwt is not available on this deployment")
        : null;
    if (refused) return Promise.reject(this.remember(refused));
    const { claims, expiresInSeconds } = args as { claims?: Record<string, unknown>; expiresInSeconds: number };
    return sign!({ claims, expiresInSeconds }, this.place.instance.path).then(
      (token) => JSON.stringify(token),
      (error: unknown) => Promise.reject(this.remember(error)),
    );
  }

  /**
   * `ctx.runQuery`/`ctx.runMutation` from a query or mutation: the callee runs
   * in a child of this run's transaction (its writes commit with this run's,
   * or are undone alone if it throws and the caller catches).
   */
  private async runUdf(args: Args): Promise<string> {
    const udfType = args.udfType;
    if (udfType !== "query" && udfType !== "mutation" && udfType !== "snapshotQuery")
      throw new FunctionError("BadRequest", `ctx.runQuery/runMutation: unsupported udfType ${describe(udfType as JSONValue)}`);
    if (udfType === "mutation" && !this.tx.writable) throw new FunctionError("BadRequest", "ctx.runMutation cannot be called from a query");
    const calls = this.place.calls;
    if (!calls) throw new FunctionError("BadRequest", "ctx.runQuery/runMutation is not available here");
    const target = this.place.components.resolve(this.place.instance, args as FunctionAddress, udfType === "mutation" ? "mutation" : "query");
    const callArgs = jsonToConvex(args.args ?? {});
    try {
      return await calls.runNested(target, callArgs, this.tx, this.identity, this.place.depth + 1, this.logs, udfType === "snapshotQuery");
    } catch (error) {
      if (!(error instanceof FunctionError)) throw error;
      // Uncaught by the caller, the callee's failure is the caller's, with its code (a budget stays LimitExceeded).
      this.remember(error);
      // A ConvexError thrown by the callee reaches the caller as one, with its data (convex/server rebuilds it from `data`).
      if (error.data !== undefined) throw Object.assign(new Error(error.message), { data: error.dataJson });
      throw error;
    }
  }

  /**
   * A written value with every `ctx.db.vars.commitTs` placeholder
   * (`{"$commitTs": null}`) replaced by the commit's timestamp, an int64 in
   * ns as in Convex (workpool orders its work by it).
   */
  private withCommitTs(json: JSONValue | undefined): JSONValue | undefined {
    const replace = (value: JSONValue): JSONValue => {
      if (Array.isArray(value)) return value.map(replace);
      if (!isPlainObject(value)) return value;
      const keys = Object.keys(value);
      if (keys.length === 1 && keys[0] === "$commitTs") return convexToJson(this.tx.commitTs);
      return Object.fromEntries(keys.map((key) => [key, replace(value[key] as JSONValue)]));
    };
    return json === undefined || !hasCommitTs(json) ? json : replace(json);
  }

  /** A stored table name for a table this run names (`db.insert("t", ...)`): its instance's. */
  private storageTable(table: JSONValue | undefined, method: string): string {
    if (typeof table !== "string") throw new FunctionError("BadRequest", `db.${method}: invalid table name ${describe(table ?? null)}`);
    return this.namespace.storageName(table);
  }

  /** Whether an id is of this run's instance's tables (an old bare id can only be the app's). */
  private owns(id: string): boolean {
    const stored = tableOfId(id);
    return stored === null ? this.namespace.prefix === "" : this.namespace.localName(stored) !== null;
  }

  /** `idFor` for a write: another instance's document does not exist for this one. */
  private ownId(args: Args, method: string): string {
    const id = this.idFor(args, method);
    if (!this.owns(id))
      throw new FunctionError("BadRequest", `${method === "delete" ? "Delete" : method === "patch" ? "Update" : "Replace"} on nonexistent document ID ${id}`);
    return id;
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

  /** An id's table as this run names it: named by the id, or (an old bare id) read from its document. */
  private tableOf(id: string): string | null {
    const stored = tableOfId(id) ?? this.tx.tableOf(id);
    return stored === null ? null : this.namespace.shownName(stored);
  }

  private queryPage(args: Args): string {
    if (this.paginated) {
      throw new FunctionError(
        "BadRequest",
        "MultiplePaginatedDatabaseQueries: This query or mutation function ran multiple paginated queries. Convex only supports a single paginated query in each function.",
      );
    }
    this.paginated = true;
    const query = storedQuery(this.namespace, args.query as unknown as SerializedQuery);
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

/** A query as user code serialized it, with its table and index names those of its instance's stored tables. */
function storedQuery(namespace: TableNamespace, query: SerializedQuery): SerializedQuery {
  if (namespace.prefix === "" || typeof query !== "object" || query === null || typeof query.source !== "object" || query.source === null) return query;
  const source = query.source;
  if (source.type === "FullTableScan") return { ...query, source: { ...source, tableName: namespace.storageName(source.tableName) } };
  return { ...query, source: { ...source, indexName: namespace.storageIndexName(source.indexName) } };
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

/** Whether a written value holds a `{"$commitTs": null}` placeholder anywhere (stops at the first; no copy, no encoding). */
function hasCommitTs(value: JSONValue): boolean {
  if (Array.isArray(value)) return value.some(hasCommitTs);
  if (!isPlainObject(value)) return false;
  for (const key in value) if (key === "$commitTs" || hasCommitTs(value[key] as JSONValue)) return true;
  return false;
}
