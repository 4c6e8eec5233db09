/**
 * The engine: runs queries and mutations against a `DocumentStore`. User
 * functions are `convex/server` functions: the engine calls their wrapper
 * (`invokeQuery`/`invokeMutation`) with the arguments in wire JSON, and the
 * wrapper's `ctx.db` calls back into this run's syscalls (`syscalls/`).
 *
 * Concurrency design. Handlers are `async`, storage is synchronous, and the
 * Durable Object's SQLite offers only `transactionSync` (no BEGIN). So:
 *
 * 1. Every function runs inside `exclusive()`, a lock that runs one function
 *    at a time and serves its owners round-robin. Nothing can commit while a function runs, even if its
 *    handler awaits something other than the database, so a query sees one
 *    snapshot and a mutation's reads cannot go stale (no OCC retries needed).
 *    Functions do no I/O, so the lock costs no parallelism: the isolate is
 *    single-threaded and CPU-bound work would serialize anyway.
 * 2. A mutation writes into an overlay (`Transaction`) that its own reads
 *    consult first. A throw discards the overlay; nothing touched storage.
 * 3. On success the overlay, its index keys (computed once), its search
 *    index log entries and any caller record (the idempotency entry of a
 *    retried mutation) are applied in one synchronous store commit, i.e. one
 *    `transactionSync` in the Durable Object.
 * 4. Timestamps come from the store's last commit: max(last + 1, wall clock in
 *    ns), persisted with the commit, so they increase across restarts.
 */
import type { Document, JSONValue, Value } from "./values.ts";
import { convexToJson, describe, isPlainObject, jsonTextSize, jsonToConvex, valueSize, ValueError } from "./values.ts";
import type { Schema } from "./schema.ts";
import type { FunctionKind, FunctionRegistry, HttpRouter, RegisteredFunction } from "./functions.ts";
import { canonicalizePath } from "./functions.ts";
import { validatorProblem } from "./validators.ts";
import type { DocumentStore, IndexWrite } from "./store.ts";
import type { SearchRead, SearchWrite } from "./search.ts";
import { parseVectorQuery, type VectorQueryArgument } from "./vectors.ts";
import { Transaction } from "./transaction.ts";
import { ReadSetRecorder, type ReadSet } from "./read-set.ts";
import { DEFAULT_ENGINE_LIMITS, type EngineLimits } from "./limits.ts";
import { FunctionError, SERVER_ERROR } from "./errors.ts";
import { FairLock, type LockOwner } from "./fair-lock.ts";
import { DeadlineWatch } from "./deadline-watch.ts";
import { BodyTooLargeError, readBodyWithin } from "./bounded-body.ts";
import { Execution, type NestedCalls, type RunPlace } from "./syscalls/execution.ts";
import { Components, type ComponentInstance, type FunctionTarget } from "./components.ts";
import { ActionExecution, type ActionPool } from "./syscalls/action-execution.ts";
import { runInScope, wallClock } from "./syscalls/convex-global.ts";
import type { LogLines } from "./syscalls/log-lines.ts";
import { currentRunContext, newRequestId, type EnvironmentVariables } from "./syscalls/run-context.ts";
import { GuardedRun, syncGuard, type Deadline } from "./sync-guard.ts";
import type { UserIdentity } from "./auth/identity.ts";
import type { DeploymentKey, SignJwtRequest } from "./auth/deployment-key.ts";
import type { FileStorage } from "./files/file-storage.ts";

/**
 * A function's result as its wrapper encoded it: the wire text, parsed into
 * `json` and `value` only when someone asks (a live query's update is sent
 * as the text itself).
 */
export interface EncodedValue {
  /** The result in Convex JSON text, as the wire carries it. */
  readonly text: string;
  readonly json: JSONValue;
  readonly value: Value;
  /** What the function printed (`[LEVEL] text` lines), sent to the client with the result. */
  readonly logLines: readonly string[];
}

export function encodedValue(text: string, logLines: readonly string[], parsed?: { json: JSONValue; value: Value }): EncodedValue {
  let json = parsed?.json;
  let value = parsed?.value;
  return {
    text,
    logLines,
    get json() {
      return (json ??= JSON.parse(text) as JSONValue);
    },
    get value() {
      return (value ??= jsonToConvex(this.json));
    },
  };
}

export interface QueryResult extends EncodedValue {
  readSet: ReadSet;
  /** Text searches it ran (matched against search write-sets). */
  searchReads: SearchRead[];
  /** The snapshot the query read. */
  ts: bigint;
  /** The journal of its paginated query (pins the page's end on the next run), or null. */
  journal: string | null;
  /** Whether it asked who called it (`ctx.auth`): only then is its result the caller's own. */
  readIdentity: boolean;
  /** Whether it read the clock: then a cached result of it is served only while young (Convex's `observed_time`). */
  observedTime: boolean;
}

/** Who calls a function: a client (public functions only) or an action (internal ones too), signed in or anonymous. */
export interface Caller {
  internal?: boolean;
  identity?: UserIdentity | null;
  /** Whose turn of the function lock the call takes (default: a turn of its own); an action's nested calls take its caller's. */
  owner?: LockOwner;
}

/** A query run: a result or a function error, and in both cases what it read. */
export type QueryOutcome =
  | (QueryResult & { error: null })
  | (Omit<QueryResult, "value" | "json" | "text" | "logLines"> & { value: null; json: null; text: null; logLines: readonly string[]; error: FunctionError });

/**
 * Answers top-level queries with results still valid at the latest commit,
 * as Convex's query cache does (the sync layer's shared query instances,
 * attached with `Engine.useQueryCache`): a hit costs no run; a miss runs in
 * `owner`'s turn of the lock. Throws the run's `FunctionError` as a run would.
 */
export interface QueryCache {
  answer(fn: RegisteredFunction, args: Value, identity: UserIdentity | null, owner?: LockOwner): Promise<EncodedValue>;
}

/** Runs inside a mutation's commit transaction with its outcome (e.g. to record it for retries). */
export type CommitHook = (outcome: { text: string; ts: bigint }) => void;

export interface MutationResult extends EncodedValue {
  /** The commit timestamp, or the snapshot read if the mutation wrote nothing. */
  ts: bigint;
  /** Every index key written (old and new); empty when nothing changed. */
  writes: readonly IndexWrite[];
  /** Every changed document's indexed view in each search index. */
  searchWrites: readonly SearchWrite[];
}

/** What a commit changed, announced to `onCommit` listeners. */
export interface CommitEvent {
  ts: bigint;
  writes: readonly IndexWrite[];
  searchWrites: readonly SearchWrite[];
  /** Tables rewritten wholesale (a snapshot import): every read of them is hit, as listing each document would be unbounded. */
  tables?: readonly string[];
}

export interface EngineOptions {
  schema: Schema;
  functions: FunctionRegistry;
  store: DocumentStore;
  /** Read on every call, so a runtime change applies to the next function. */
  limits?: () => EngineLimits;
  /** Wall clock in ms. */
  now?: () => number;
  /** The app's `convex/http.ts` router, if it has one (HTTP actions). */
  httpRouter?: HttpRouter | null;
  /** Lets the runtime deliver waiting events between two queued functions (see `FairLock`). */
  yieldToEvents?: () => Promise<void>;
  /** Queued functions run back to back before the lock yields to waiting events (default 1: after each). Read at each one. */
  functionsPerYield?: () => number;
  /** `ctx.storage`: where file bytes live and how URLs are made (none: storage calls fail with a clear error). */
  files?: FileStorage | null;
  /**
   * Whether callers get a function's console lines and the messages of its
   * uncaught errors (default true: local development, tests). Off, as a
   * Convex production deployment does: no log lines, and an error other than
   * a `ConvexError` reaches its caller as "Server Error" (its message goes to
   * the deployment's log).
   */
  exposeFunctionDetails?: boolean;
  /** Modules that failed to load, by module path, with why (see `loadApp`): calls into them say so. */
  moduleErrors?: Record<string, string>;
  /** The app's component instances (`convex.config.ts`), `functions` being the app's own; none by default. */
  components?: Components;
  /** The deployment's variables, which `process.env` reads first (read on each run: a change applies to the next). */
  environment?: () => EnvironmentVariables;
  /** Told of every run when it ends, whoever called it (the operator's log; it gets the console lines even where callers do not). */
  onRun?: (run: FunctionRun) => void;
  /** The deployment's signing key, behind `ctx.auth.signJwt` (none: mutations that call it fail saying so). */
  deploymentKey?: DeploymentKey | null;
}

/** One function's run, as the operator's log keeps it. */
export interface FunctionRun {
  /** When it started (the engine's clock, ms). */
  ts: number;
  /** The request that set it off: the functions an action calls share the action's. */
  requestId: string;
  /** `module:function`, or `METHOD /path` for an HTTP action. */
  path: string;
  kind: FunctionKind | "httpAction";
  outcome: "success" | "failure";
  /** The failure's message as the operator sees it (callers of a deployed app may see only "Server Error"). */
  error: string | null;
  durationMs: number;
  /** What it printed, `[LEVEL] text` lines. */
  lines: readonly string[];
}

/** A run between `startRun` and `endRun`: what its report needs, and the context its code runs in. */
interface RunInProgress {
  path: string;
  kind: FunctionRun["kind"];
  ts: number;
  context: { requestId: string; environment: EnvironmentVariables };
  /** The failure's message before it was hidden from callers (set by `invokeChecked`). */
  error?: string;
}

/** Executions since this engine started (commits are counted by the store, which persists them). */
export interface EngineCounters {
  queryExecutions: number;
  mutationExecutions: number;
  actionExecutions: number;
}

/** The next representable double above a positive finite `x`: creation times strictly increase, however close together. */
export function nextUp(x: number): number {
  if (x <= 0) return Number.MIN_VALUE;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  view.setBigUint64(0, view.getBigUint64(0) + 1n);
  return view.getFloat64(0);
}

export class Engine implements NestedCalls {
  readonly schema: Schema;
  /** The app and its component instances: whose functions a run may call, and each one's tables. */
  readonly components: Components;
  readonly store: DocumentStore;
  readonly counters: EngineCounters = { queryExecutions: 0, mutationExecutions: 0, actionExecutions: 0 };
  /** Actions running now in each pool (they run outside the lock; see `ActionPool`). */
  private readonly actionsRunning: Record<ActionPool, number> = { callers: 0, jobs: 0 };
  readonly functions: FunctionRegistry;
  private readonly httpRouter: HttpRouter | null;
  private readonly limits: () => EngineLimits;
  private readonly now: () => number;
  private readonly lock: FairLock;
  /** Every run's deadline on one timer, put away when the lock goes idle (deadline-watch.ts). */
  private readonly deadlines: DeadlineWatch;
  private readonly commitListeners: ((commit: CommitEvent) => void)[] = [];
  /** File storage (`ctx.storage`), or null when the deployment has none. */
  readonly files: FileStorage | null;
  private readonly exposeFunctionDetails: boolean;
  private readonly moduleErrors: Record<string, string>;
  private readonly environment: () => EnvironmentVariables;
  private readonly deploymentKey: DeploymentKey | null;
  private readonly onRun: ((run: FunctionRun) => void) | null;
  private queryCache: QueryCache | null = null;

  constructor(options: EngineOptions) {
    this.moduleErrors = options.moduleErrors ?? {};
    const noVariables: EnvironmentVariables = new Map();
    this.environment = options.environment ?? (() => noVariables);
    this.deploymentKey = options.deploymentKey ?? null;
    this.onRun = options.onRun ?? null;
    this.files = options.files ?? null;
    this.exposeFunctionDetails = options.exposeFunctionDetails ?? true;
    this.schema = options.schema;
    this.functions = options.functions;
    this.components = options.components ?? new Components(options.functions);
    this.httpRouter = options.httpRouter ?? null;
    this.store = options.store;
    this.limits = options.limits ?? (() => DEFAULT_ENGINE_LIMITS);
    this.now = options.now ?? wallClock;
    this.lock = new FairLock({
      yieldToEvents: options.yieldToEvents ?? null,
      ...(options.functionsPerYield ? { tasksPerYield: options.functionsPerYield } : {}),
      onIdle: () => this.deadlines.putAwayIfQuiet(),
      now: this.now,
    });
    this.deadlines = new DeadlineWatch(() => this.lock.idle);
  }

  /**
   * Calls `listener` synchronously after every commit that changed data, inside
   * the function lock and before the mutation's caller hears of it: the commit
   * is the one thing that invalidates, and no caller has to remember to say so.
   */
  onCommit(listener: (commit: CommitEvent) => void): void {
    this.commitListeners.push(listener);
  }

  /** Answers the app's public queries for `query` and actions' `ctx.runQuery` from `cache` (null: every call runs). */
  useQueryCache(cache: QueryCache | null): void {
    this.queryCache = cache;
  }

  /**
   * Runs `fn` alone (see module doc) when it is `owner`'s turn: owners are
   * served round-robin, each one's calls in order (`fair-lock.ts`). Without an
   * owner the call is its own owner: such calls run in arrival order.
   */
  exclusive<T>(fn: () => Promise<T>, owner: LockOwner = {}): Promise<T> {
    return this.lock.run(owner, fn);
  }

  /** Functions waiting for the lock. */
  get queuedFunctions(): number {
    return this.lock.queued;
  }

  /** No function running or waiting for the lock. */
  get functionsIdle(): boolean {
    return this.lock.idle;
  }

  /** Times the lock let waiting events in between queued functions (knob `functionsPerYield`). */
  get lockYields(): number {
    return this.lock.yields;
  }

  /**
   * Finds a function by (possibly uncanonical) path; throws `FunctionNotFound`
   * naming it. Clients reach only public functions: an internal one is as
   * unknown to them as a missing one.
   */
  resolve(path: string, kind: FunctionKind, { internal = false }: { internal?: boolean } = {}): RegisteredFunction {
    if (typeof path !== "string" || path.length === 0) throw new FunctionError("FunctionNotFound", "A function path is required");
    const canonical = canonicalizePath(path);
    const fn = this.functions.get(canonical);
    if (!fn) this.throwIfModuleFailed(canonical);
    if (!fn || fn.kind !== kind || (fn.visibility === "internal" && !internal)) {
      const other = fn && fn.kind !== kind && (fn.visibility === "public" || internal) ? ` (it is a ${fn.kind})` : "";
      throw new FunctionError(
        "FunctionNotFound",
        `Could not find public function for '${canonical}'. Did you forget to run \`npm run codegen\` or deploy? (a ${kind} was asked for${other})`,
      );
    }
    return fn;
  }

  /** A call into a module that failed to load says so, rather than that the function does not exist. */
  private throwIfModuleFailed(canonical: string): void {
    const modulePath = canonical.slice(0, canonical.lastIndexOf(":"));
    if (Object.hasOwn(this.moduleErrors, modulePath)) {
      throw new FunctionError("FunctionNotFound", `${canonical} cannot run: its module convex/${modulePath} failed to load (${this.moduleErrors[modulePath]})`);
    }
  }

  /** The function at a canonical path of an instance (the app's by default), public or internal (for the engine's own callers, like the scheduler). */
  functionAt(path: string, componentPath = ""): RegisteredFunction | undefined {
    return this.components.at(componentPath)?.functions.get(canonicalizePath(path));
  }

  /** Where a run of `fn` stands: its own instance, `depth` calls deep, calling others through this engine. */
  private placeOf(fn: RegisteredFunction, depth = 0): RunPlace {
    const instance = this.components.at(fn.componentPath);
    if (!instance) throw new Error(`${fn.path} belongs to component ${fn.componentPath}, which this engine does not have`);
    return this.placeIn(instance, depth);
  }

  private placeIn(instance: ComponentInstance, depth: number): RunPlace {
    return { components: this.components, instance, calls: this, depth, signJwt: this.signJwt };
  }

  /** Signs for a run of `instancePath`: the issuer is CONVEX_CLOUD_URL, plus `/components/<path>` for a component, as on Convex. */
  private readonly signJwt = (request: SignJwtRequest, instancePath: string): Promise<string> => {
    const key = this.deploymentKey;
    const cloudUrl = this.environment().get("CONVEX_CLOUD_URL");
    if (!key) return Promise.reject(new FunctionError("BadRequest", "ctx.auth.signJwt is not available on this deployment"));
    if (!cloudUrl)
      return Promise.reject(new FunctionError("BadRequest", "ctx.auth.signJwt needs CONVEX_CLOUD_URL, which is set once the deployment has served a request"));
    return key.sign(request, instancePath === "" ? cloudUrl : `${cloudUrl}/components/${instancePath}`, this.now());
  };

  /**
   * `ctx.runQuery`/`ctx.runMutation` inside a query or mutation: the target
   * runs now, inside the caller's turn of the lock, in a child of the
   * caller's transaction; a mutation's writes join the caller's when it
   * returns, and are dropped alone when it throws. Arguments and result are
   * checked against the target's validators, as at any call.
   */
  async runNested(
    { instance, fn }: FunctionTarget,
    args: Value,
    parent: Transaction,
    identity: UserIdentity | null,
    depth: number,
    callerLogs: LogLines,
    snapshot = false,
  ): Promise<string> {
    const limits = this.limits();
    if (depth > limits.maxNestedCallDepth) {
      throw new FunctionError("LimitExceeded", `Too many nested function calls: more than ${limits.maxNestedCallDepth} deep (knob maxNestedCallDepth)`);
    }
    const child = snapshot ? parent.snapshotChild() : parent.child(fn.kind === "mutation");
    const execution = new Execution(child, null, identity, this.files, this.placeIn(instance, depth));
    if (fn.kind === "mutation") this.counters.mutationExecutions++;
    else this.counters.queryExecutions++;
    try {
      const result = await this.invoke(fn, args, execution, limits);
      if (fn.kind === "mutation") child.commitInto(parent);
      return result.text;
    } finally {
      // What the callee printed reaches the caller's caller with the caller's own lines, thrown or not, as in Convex.
      callerLogs.adopt(execution.logs.lines);
    }
  }

  /** Runs a resolved target for an action (`ctx.runQuery`, ...): each call its own transaction, as `runQuery`/`runMutation`/`runAction`. */
  async runTarget(
    { fn }: FunctionTarget,
    args: Value,
    { identity = null, pool = "callers", owner }: { identity?: UserIdentity | null; pool?: ActionPool; owner?: LockOwner },
  ): Promise<EncodedValue> {
    if (fn.kind === "query") return this.answerQuery(fn, args, identity, owner);
    if (fn.kind === "mutation") return this.exclusive(() => this.executeMutation(fn, args, undefined, undefined, identity), owner);
    return this.executeAction(fn, args, { identity, pool, owner });
  }

  /**
   * A query's answer for a client (HTTP `/api/query`): from the query cache
   * when one is attached and holds a valid result, else a run. `runQuery`
   * always runs (and returns what the run read).
   */
  query(path: string, args: Value, { internal = false, identity = null, owner }: Caller = {}): Promise<EncodedValue> {
    return this.answerQuery(this.resolve(path, "query", { internal }), args, identity, owner);
  }

  /** The app's public queries go through the cache (its keys name neither a component nor a visibility); any other runs. */
  private async answerQuery(fn: RegisteredFunction, args: Value, identity: UserIdentity | null, owner: LockOwner | undefined): Promise<EncodedValue> {
    if (this.queryCache !== null && fn.visibility === "public" && fn.componentPath === "") return this.queryCache.answer(fn, args, identity, owner);
    const outcome = await this.exclusive(() => this.executeQuery(fn, args, null, identity), owner);
    if (outcome.error) throw outcome.error;
    return outcome;
  }

  /** `internal` lets an action's `ctx.runQuery` reach internal functions, as clients cannot; `identity` is the caller (default anonymous). */
  async runQuery(path: string, args: Value, { internal = false, identity = null, owner }: Caller = {}): Promise<QueryResult> {
    const fn = this.resolve(path, "query", { internal });
    const outcome = await this.exclusive(() => this.executeQuery(fn, args, null, identity), owner);
    if (outcome.error) throw outcome.error;
    return outcome;
  }

  /**
   * Runs a query without taking the lock: only for callers already inside
   * `exclusive()` (re-running many subscriptions at one timestamp). A failed
   * query still has a read-set: a later commit to what it read may fix it.
   */
  async executeQuery(fn: RegisteredFunction, args: Value, journal: string | null = null, identity: UserIdentity | null = null): Promise<QueryOutcome> {
    const limits = this.limits();
    const readSet = new ReadSetRecorder(limits.maxReadIntervals);
    const ts = this.store.lastTimestamp();
    const tx = new Transaction(this.schema, this.store, { readSet, writable: false, limits, snapshotTs: ts });
    const execution = new Execution(tx, journal, identity, this.files, this.placeOf(fn));
    this.counters.queryExecutions++;
    try {
      const result = await this.invoke(fn, args, execution, limits);
      return Object.assign(result, {
        readSet: readSet.finish(),
        searchReads: readSet.searchReads,
        ts,
        journal: execution.journal,
        readIdentity: execution.readIdentity,
        observedTime: execution.observedTime,
        error: null as null,
      });
    } catch (error) {
      const failure = knownFunctionError(error);
      if (!failure) throw error;
      return {
        value: null,
        json: null,
        text: null,
        logLines: failure.logLines,
        readSet: readSet.finish(),
        searchReads: readSet.searchReads,
        ts,
        journal: execution.journal,
        readIdentity: execution.readIdentity,
        observedTime: execution.observedTime,
        error: failure,
      };
    }
  }

  /**
   * Runs a mutation and commits it atomically. `alsoInTransaction` runs inside
   * the commit's transaction with the outcome, even for a mutation that wrote
   * nothing; if it throws, nothing is committed.
   */
  async runMutation(
    path: string,
    args: Value,
    alsoInTransaction?: CommitHook,
    { internal = false, identity = null, owner }: Caller = {},
  ): Promise<MutationResult> {
    const fn = this.resolve(path, "mutation", { internal });
    return this.exclusive(() => this.executeMutation(fn, args, alsoInTransaction, undefined, identity), owner);
  }

  /** `runMutation` without taking the lock: only for callers already inside `exclusive()`. */
  /**
   * `alsoWrite` adds the engine's own writes (a scheduled job's new state) to
   * the mutation's transaction, so they commit with its writes or not at all.
   */
  async executeMutation(
    fn: RegisteredFunction,
    args: Value,
    alsoInTransaction?: CommitHook,
    alsoWrite?: (tx: Transaction) => void,
    identity: UserIdentity | null = null,
  ): Promise<MutationResult> {
    const limits = this.limits();
    const { tx, commit } = this.writeTransaction(limits);
    this.counters.mutationExecutions++;
    const result = await this.invoke(fn, args, new Execution(tx, null, identity, this.files, this.placeOf(fn)), limits);
    alsoWrite?.(tx);
    const committed = commit((ts) => alsoInTransaction?.({ text: result.text, ts }));
    return Object.assign(result, committed);
  }

  /**
   * Runs an action: outside the function lock (it may wait on I/O), its
   * syscalls answered by `ActionExecution`, which runs the functions it calls
   * each in its own transaction. At most `maxConcurrentActions` at a time.
   */
  async runAction(
    path: string,
    args: Value,
    { internal = false, identity = null, owner, pool = "callers" }: Caller & { pool?: ActionPool } = {},
  ): Promise<EncodedValue> {
    const fn = this.resolve(path, "action", { internal });
    return this.executeAction(fn, args, { identity, pool, owner });
  }

  /**
   * Runs a resolved action in a slot of its pool (taken now, or `slot` taken
   * by the caller), stopped at `actionTimeoutMs`: its caller is answered with
   * a timeout, its slot freed, and every later syscall it makes fails.
   */
  async executeAction(
    fn: RegisteredFunction,
    args: Value,
    { identity = null, pool = "callers", slot, owner }: { identity?: UserIdentity | null; pool?: ActionPool; slot?: () => void; owner?: LockOwner } = {},
  ): Promise<EncodedValue> {
    const limits = this.limits();
    const release = slot ?? this.takeActionSlot(pool, limits);
    try {
      const execution = new ActionExecution(this, identity, limits, pool, this.placeOf(fn).instance, owner);
      return await this.invoke(fn, args, execution, limits);
    } finally {
      release();
    }
  }

  /** A slot of `pool` (its release: call once), or null when the pool is full. */
  tryActionSlot(pool: ActionPool, limits: EngineLimits = this.limits()): (() => void) | null {
    if (this.actionsRunning[pool] >= maxActions(pool, limits)) return null;
    this.actionsRunning[pool]++;
    this.counters.actionExecutions++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.actionsRunning[pool]--;
    };
  }

  /** A slot of `pool`, or a `LimitExceeded` naming its knob. */
  private takeActionSlot(pool: ActionPool, limits: EngineLimits): () => void {
    const release = this.tryActionSlot(pool, limits);
    if (release) return release;
    const knob = pool === "jobs" ? "maxConcurrentJobActions" : "maxConcurrentActions";
    throw new FunctionError(
      "LimitExceeded",
      `Too many actions running: ${this.actionsRunning[pool]}, limit ${maxActions(pool, limits)} (knob ${knob}); try again shortly`,
    );
  }

  /**
   * Serves an HTTP action: the route `convex/http.ts` gives for the request's
   * path and method, run like an action (outside the lock, counted against
   * `maxConcurrentActions`). Null when no route matches.
   */
  async runHttpAction(request: Request, identity: UserIdentity | null | (() => Promise<UserIdentity | null>) = null): Promise<Response | null> {
    const pathname = new URL(request.url).pathname;
    // The app's routes first, then a component's mounted under a prefix (`app.use(x, { httpPrefix })`), run in that component.
    let match = this.httpRouter?.lookup(pathname, request.method) ?? null;
    let instance = this.components.root;
    if (!match) {
      const mount = this.components.httpMountFor(pathname);
      match = mount?.router.lookup(mount.path, request.method) ?? null;
      if (mount) instance = mount.instance;
    }
    if (!match) return null;
    let release: () => void;
    const limits = this.limits();
    // The body is read first, within its limit: a slow or huge upload must not hold an action slot while it arrives.
    let body: Uint8Array<ArrayBuffer> | null;
    try {
      body = await readBodyWithin(request, limits.maxHttpActionBodyBytes);
    } catch (error) {
      if (!(error instanceof BodyTooLargeError)) throw error;
      return Response.json(
        {
          code: "RequestTooLarge",
          message: `The request body is larger than ${limits.maxHttpActionBodyBytes} bytes (knob maxHttpActionBodyBytes); upload files to an upload URL (ctx.storage.generateUploadUrl)`,
        },
        { status: 413 },
      );
    }
    request = new Request(request.url, { method: request.method, headers: request.headers, body });
    try {
      release = this.takeActionSlot("callers", limits);
    } catch (error) {
      return Response.json({ code: "TooManyActions", message: (error as Error).message }, { status: 503, headers: { "Retry-After": "1" } });
    }
    const execution = new ActionExecution(this, identity, limits, "callers", instance);
    const path = `${request.method} ${pathname}`;
    const run = this.startRun(path, "httpAction");
    try {
      const what = `The HTTP action for ${path}`;
      const guarded = new GuardedRun(what, limits, (error) => execution.expire(error));
      syncGuard.starting();
      const response = await guarded.bound(
        runInScope({ execution, context: run.context, guarded }, () => match[0].invokeHttpAction(request)),
        deadline(what, execution, this.deadlines, limits.actionTimeoutMs),
      );
      this.endRun(run, execution.logs.own, null);
      return response;
    } catch (error) {
      const failure = asFunctionError(error, execution);
      this.endRun(run, execution.logs.own, failure.message);
      return Response.json({ code: failure.message, ...(failure.data !== undefined ? { data: failure.dataJson } : {}) }, { status: 500 });
    } finally {
      release();
    }
  }

  /**
   * `ctx.vectorSearch` (actions only, as in Convex): the latest commit's
   * documents, best first. Synchronous, so no commit lands halfway through.
   */
  vectorSearch(query: VectorQueryArgument): { _id: string; _score: number }[] {
    const request = parseVectorQuery(this.schema, query);
    if (!this.store.vectors) throw new FunctionError("BadRequest", "Vector search is not available on this store");
    return this.store.vectors.search(request).map((hit) => ({ _id: hit.id, _score: hit.score }));
  }

  /** A document as of the latest commit, read outside any function's transaction (an action's look at `_storage`). */
  readCommitted(id: string): Document | null {
    return new Transaction(this.schema, this.store, { readSet: null, writable: false, limits: this.limits() }).get(id)?.document ?? null;
  }

  /**
   * Commits writes the engine makes itself, with no user function (scheduling from an action, a job's state, a finished
   * upload). `alsoInTransaction` commits with them or not at all. Only inside `exclusive()`.
   */
  executeSystemWrite<T>(write: (tx: Transaction) => T, alsoInTransaction?: () => void): T {
    const { tx, commit } = this.writeTransaction(this.limits());
    const result = write(tx);
    commit(() => alsoInTransaction?.());
    return result;
  }

  /** The timestamp the next commit takes: a bulk commit written over several transactions reserves it first. Only inside `exclusive()`. */
  nextCommitTimestamp(): bigint {
    return this.nextTimestamp(this.store.lastTimestamp());
  }

  /**
   * Announces writes made straight to storage in bulk, past any transaction's budgets (a snapshot import):
   * `apply` makes the last of them visible at `ts` (from `nextCommitTimestamp`, or any later one) and names
   * the tables written; the commit is announced as rewriting those tables wholesale, so every query that
   * read them runs again and no other does. Only inside `exclusive()`, held since the first write.
   */
  commitBulk(ts: bigint, apply: () => readonly string[]): void {
    if (ts <= this.store.lastTimestamp()) throw new Error(`a bulk commit at ${ts} would not follow the last commit (${this.store.lastTimestamp()})`);
    const tables = apply();
    if (tables.length > 0) for (const listener of this.commitListeners) listener({ ts, writes: [], searchWrites: [], tables });
  }

  /** max(last + 1, wall clock in ns): timestamps increase across restarts and clock steps. */
  private nextTimestamp(lastTs: bigint): bigint {
    const wallNs = BigInt(Math.floor(this.now())) * 1_000_000n;
    return wallNs > lastTs ? wallNs : lastTs + 1n;
  }

  /** A writable transaction at the next timestamp, and how to commit it (announcing the commit). */
  private writeTransaction(limits: EngineLimits) {
    const lastTs = this.store.lastTimestamp();
    const ts = this.nextTimestamp(lastTs);
    let creationTime = this.store.lastCreationTime();
    const tx = new Transaction(this.schema, this.store, {
      readSet: null,
      writable: true,
      limits,
      nextCreationTime: () => (creationTime = Math.max(Number(ts) / 1e6, nextUp(creationTime))),
      snapshotTs: lastTs,
      commitTs: ts,
    });
    const commit = (hook: (ts: bigint) => void) => {
      const { documents, indexWrites, searchWrites, vectorWrites } = tx.finish();
      const commitTs = documents.length > 0 ? ts : lastTs;
      this.store.commit({ ts: commitTs, lastCreationTime: creationTime, documents, indexWrites, searchWrites, vectorWrites }, () => hook(commitTs));
      if (documents.length > 0) {
        for (const listener of this.commitListeners) listener({ ts: commitTs, writes: indexWrites, searchWrites });
        // Only now may deleted files' bytes go: the rows that pointed at them are gone for good.
        this.files?.committed(indexWrites);
      }
      return { ts: commitTs, writes: indexWrites, searchWrites };
    };
    return { tx, commit };
  }

  /**
   * Checks the arguments, runs the function's `convex/server` wrapper with its
   * syscalls routed to `execution`, and checks the result: budgets, then the
   * function's own validators, as Convex's backend does around a call.
   */
  private async invoke(fn: RegisteredFunction, args: Value, execution: Execution | ActionExecution, limits: EngineLimits): Promise<EncodedValue> {
    const run = this.startRun(fn.path, fn.kind);
    try {
      const result = await this.invokeChecked(fn, args, execution, limits, run);
      this.endRun(run, execution.logs.own, null);
      return result;
    } catch (error) {
      this.endRun(run, execution.logs.own, run.error ?? (error instanceof Error ? error.message : String(error)));
      throw error;
    }
  }

  /** A run starting now: its request id is its caller's (an HTTP request's, an action's), or a new one. */
  private startRun(path: string, kind: FunctionRun["kind"]): RunInProgress {
    return { path, kind, ts: this.now(), context: { requestId: currentRunContext()?.requestId ?? newRequestId(), environment: this.environment() } };
  }

  private endRun(run: RunInProgress, lines: readonly string[], error: string | null): void {
    this.onRun?.({
      ts: run.ts,
      requestId: run.context.requestId,
      path: run.path,
      kind: run.kind,
      outcome: error === null ? "success" : "failure",
      error,
      durationMs: this.now() - run.ts,
      lines,
    });
  }

  /** `invoke` within its run's context (`report.context`); `report.error` keeps a failure's message before it is hidden from callers. */
  private async invokeChecked(
    fn: RegisteredFunction,
    args: Value,
    execution: Execution | ActionExecution,
    limits: EngineLimits,
    report: { error?: string; readonly context: RunInProgress["context"] },
  ): Promise<EncodedValue> {
    const name = fn.path;
    if (!isPlainObject(args))
      throw new FunctionError("InvalidArgument", `ArgumentValidationError: Arguments for ${name} must be an object, got ${describe(args)}`);
    const argBytes = measure(args, limits.maxValueDepth, `Arguments of ${name}`, "InvalidArgument");
    if (argBytes > limits.maxArgumentBytes) {
      throw new FunctionError(
        "LimitExceeded",
        `Arguments of ${name} are too large: ${argBytes} bytes, limit ${limits.maxArgumentBytes} (knob maxArgumentBytes)`,
      );
    }
    // Ids are checked as the function's own instance sees them: a component's `v.id("work")` is its own `work`, never the app's.
    const namespace = execution.namespace;
    const idTable = (id: string) => namespace.tableOfId(id);
    const argsProblem = validatorProblem(fn.args, args, idTable);
    if (argsProblem) throw new FunctionError("InvalidArgument", `ArgumentValidationError: ${argsProblem}`);
    let text: string;
    try {
      // One that holds the thread without yielding is stopped by the guard in its code (sync-guard.ts), and answered at once.
      const guarded = new GuardedRun(name, limits, (error) => execution.expire(error));
      const argsJson = JSON.stringify([convexToJson(args)]);
      // One scope for the run: its syscalls, its request id and variables, and its guard bookkeeping.
      syncGuard.starting();
      const run = runInScope({ execution, context: report.context, guarded }, () => fn.invoke(argsJson));
      // A query or mutation holds the function lock, an action a slot: one that never settles must not hold either forever.
      const limit =
        execution instanceof Execution
          ? deadline(name, execution, this.deadlines, limits.functionTimeoutMs, "functionTimeoutMs")
          : deadline(name, execution, this.deadlines, limits.actionTimeoutMs);
      text = await guarded.bound(run, limit);
    } catch (error) {
      const failure = asFunctionError(error, execution);
      report.error = failure.message;
      if (this.exposeFunctionDetails) failure.logLines = execution.logs.lines;
      else hideUncaughtMessage(name, failure);
      throw failure;
    } finally {
      execution.finish();
    }
    let resultBytes: number;
    try {
      resultBytes = jsonTextSize(text, limits.maxValueDepth);
    } catch (error) {
      if (error instanceof ValueError) throw new FunctionError("UserError", `The result of ${name}: ${error.message} (knob maxValueDepth)`);
      throw error;
    }
    if (resultBytes > limits.maxResultBytes) {
      throw new FunctionError(
        "LimitExceeded",
        `The result of ${name} is too large: ${resultBytes} bytes, limit ${limits.maxResultBytes} (knob maxResultBytes); return fewer or smaller documents`,
      );
    }
    const logLines = this.exposeFunctionDetails ? execution.logs.lines : [];
    if (!fn.returns) return encodedValue(text, logLines);
    const json = JSON.parse(text) as JSONValue;
    const value = jsonToConvex(json);
    const returnsProblem = validatorProblem(fn.returns, value, idTable);
    if (returnsProblem) throw new FunctionError("UserError", `ReturnsValidationError: ${returnsProblem}`);
    return encodedValue(text, logLines, { json, value });
  }
}

function maxActions(pool: ActionPool, limits: EngineLimits): number {
  return pool === "jobs" ? limits.maxConcurrentJobActions : limits.maxConcurrentActions;
}

/**
 * A run's wall-clock limit as `GuardedRun.bound` takes it: past `ms` its
 * caller is answered with a `LimitExceeded` naming the knob, and the run is
 * cut off (`expire` makes every syscall it makes afterwards fail; a
 * mutation's transaction is dropped), since JavaScript cannot be stopped
 * from outside. (A loop that never yields fires no timer: the guard in its
 * code stops it, sync-guard.ts.)
 */
function deadline(what: string, execution: { expire(error: Error): void }, watch: DeadlineWatch, ms: number, knob = "actionTimeoutMs"): Deadline {
  return {
    ms,
    watch,
    expired: () => {
      const error = new FunctionError("LimitExceeded", `${what} ran for more than ${ms} ms and was stopped (knob ${knob})`);
      execution.expire(error);
      return error;
    },
  };
}

/** Outside development an uncaught error's message stays in the deployment's log; a `ConvexError` (data for the caller) and the engine's own errors pass as they are. */
function hideUncaughtMessage(path: string, failure: FunctionError): void {
  if (failure.code !== "UserError" || failure.data !== undefined) return;
  console.error(`${path} failed: ${failure.message}`);
  failure.message = SERVER_ERROR;
}

/** A value's encoded size, or a `FunctionError` naming `what` when it is nested past the depth limit. */
function measure(value: Value, maxDepth: number, what: string, code: "InvalidArgument" | "UserError"): number {
  try {
    return valueSize(value, maxDepth);
  } catch (error) {
    if (error instanceof ValueError) throw new FunctionError(code, `${what}: ${error.message} (knob maxValueDepth)`);
    throw error;
  }
}

/** The function error a known failure stands for, or null for anything else (our bug). */
export function knownFunctionError(error: unknown): FunctionError | null {
  if (error instanceof FunctionError) return error;
  if (error instanceof ValueError) return new FunctionError("InvalidArgument", error.message);
  return null;
}

/**
 * What a function's failure is reported as: one of the run's own engine errors
 * keeps its code; a `ConvexError` (recognised by its symbol, as `convex` does,
 * with `convex/server` having encoded its data) carries its data to the client.
 */
function asFunctionError(error: unknown, execution: Execution | ActionExecution): FunctionError {
  const raised = execution.raisedError(error);
  if (raised) return raised;
  if (typeof error === "object" && error !== null && Symbol.for("ConvexError") in error) {
    const data = (error as { data?: unknown }).data;
    return new FunctionError("UserError", (error as Error).message, typeof data === "string" ? jsonToConvex(JSON.parse(data)) : null);
  }
  if (error instanceof ValueError) return new FunctionError("InvalidArgument", error.message);
  if (error instanceof Error) return new FunctionError("UserError", `Uncaught ${error.name}: ${error.message}`);
  return new FunctionError("UserError", `Uncaught ${describe(error as Value)}`);
}
