/**
 * An action's side of the syscall interface. An action has no database: it
 * calls queries, mutations and other actions (`ctx.runQuery`, ...), each its
 * own transaction through the engine, and may schedule. It runs outside the
 * function lock, since it waits on I/O (`fetch`), so it never holds up
 * queries, mutations or Transitions; only the functions it calls take turns.
 */
import type { JSONValue } from "../values.ts";
import { jsonToConvex } from "../values.ts";
import { FunctionError } from "../errors.ts";
import type { FunctionKind } from "../functions.ts";
import { cancelJob, scheduleJob, SchedulingBudget } from "../scheduling.ts";
import type { Document, Value } from "../values.ts";
import type { Transaction } from "../transaction.ts";
import type { ComponentInstance, Components, FunctionAddress, FunctionTarget } from "../components.ts";
import type { TableNamespace } from "../table-namespace.ts";
import type { FileStorage } from "../files/file-storage.ts";
import type { VectorQueryArgument } from "../vectors.ts";
import type { EngineLimits } from "../limits.ts";
import type { LockOwner } from "../fair-lock.ts";
import { LogLines } from "./log-lines.ts";
import type { UserIdentity } from "../auth/identity.ts";
import { getBlob, isStorageSyscall, storageSyscall, storeBlob, type StorageContext } from "./storage-syscalls.ts";

type Args = Record<string, JSONValue>;

/**
 * Where an action's slot comes from: clients' calls (sockets, HTTP, HTTP
 * actions) and the deployment's own jobs (scheduled functions, crons) have
 * pools of their own, so a flood of slow client actions cannot make due jobs
 * fail, and a backlog of jobs cannot lock clients out. An action's nested
 * `ctx.runAction` takes a slot of its caller's pool.
 */
export type ActionPool = "callers" | "jobs";

/** Who an action's calls run as. */
interface CallAs {
  internal: boolean;
  identity: UserIdentity | null;
  /** Whose turn of the function lock the call takes (undefined: a turn of its own). */
  owner: LockOwner | undefined;
}

/**
 * What an action needs of the engine that runs it (the `Engine` is one):
 * declared here so that this module does not depend on the engine above it.
 */
export interface ActionHost {
  readonly components: Components;
  readonly files: FileStorage | null;
  /** A turn of the function lock: `owner`'s (the action's caller's), or one of its own when undefined. */
  exclusive<T>(task: () => Promise<T>, owner?: LockOwner): Promise<T>;
  executeSystemWrite<T>(write: (tx: Transaction) => T): T;
  readCommitted(id: string): Document | null;
  vectorSearch(query: VectorQueryArgument): { _id: string; _score: number }[];
  /** Runs a query, mutation or action the action called, each in its own transaction. */
  runTarget(target: FunctionTarget, args: Value, caller: Omit<CallAs, "internal"> & { pool: ActionPool }): Promise<{ text: string }>;
}

const CALLS: Record<string, FunctionKind> = {
  "1.0/actions/query": "query",
  "1.0/actions/mutation": "mutation",
  "1.0/actions/action": "action",
};

export class ActionExecution {
  private readonly engine: ActionHost;
  readonly logs = new LogLines();
  /**
   * The caller, passed on to every function the action calls (null:
   * anonymous). An HTTP action's is read from its request only when needed,
   * so a request whose Authorization header is meant for the app itself (a
   * webhook's) still reaches it: `getUserIdentity()` then throws why the
   * token was refused, and the functions it calls run anonymously.
   */
  private identity: Promise<UserIdentity | null> | (() => Promise<UserIdentity | null>);

  /** `ctx.storage`: reads see the latest commit; each write is its own transaction. */
  private readonly storage: StorageContext;

  /** The pool the action's slot came from: the actions it calls take theirs from it too. */
  private readonly pool: ActionPool;

  /** Whose turn of the function lock the functions it calls take: its caller's (undefined: a turn each). */
  private readonly owner: LockOwner | undefined;

  /** Set when the action ran past its deadline: everything it asks for afterwards fails with it. */
  private expired: Error | null = null;

  /** What this action may still schedule (all its jobs count together, as one mutation's do). */
  private readonly scheduling: SchedulingBudget;

  /** The component instance the action belongs to: whose functions `{name}` references reach, whose `_scheduled_functions` it writes. */
  private readonly instance: ComponentInstance;

  /** The action's instance's tables: what its ids mean. */
  get namespace(): TableNamespace {
    return this.instance.namespace;
  }

  constructor(
    engine: ActionHost,
    identity: UserIdentity | null | (() => Promise<UserIdentity | null>),
    limits: EngineLimits,
    pool: ActionPool,
    instance: ComponentInstance = engine.components.root,
    owner?: LockOwner,
  ) {
    this.engine = engine;
    this.instance = instance;
    this.pool = pool;
    this.owner = owner;
    this.scheduling = new SchedulingBudget(limits);
    this.identity = typeof identity === "function" ? identity : Promise.resolve(identity);
    this.storage = {
      files: engine.files,
      kind: "action",
      read: (id) => engine.readCommitted(id),
      write: (change) => engine.exclusive(async () => engine.executeSystemWrite(change), owner),
      maxFileBytes: limits.maxFileBytes,
    };
  }

  private caller(): Promise<UserIdentity | null> {
    if (typeof this.identity === "function") this.identity = this.identity();
    return this.identity;
  }

  /** An action's failures are its own: nothing to map back, nothing to close. */
  raisedError(error: unknown): FunctionError | null {
    return error instanceof FunctionError ? error : null;
  }

  finish(): void {}

  /** Cuts the action off: it keeps running (nothing can stop JavaScript from outside) but can no longer read, write or call. */
  expire(error: Error): void {
    this.expired = error;
  }

  syscall(op: string): string {
    throw new Error(`Unknown operation ${op}`);
  }

  /** The syscalls that pass objects, not JSON: an action's file bytes as Blobs. */
  jsSyscall(op: string, args: Record<string, unknown>): Promise<unknown> {
    if (this.expired) return Promise.reject(this.expired);
    if (op === "storage/storeBlob") return storeBlob(this.storage, args.blob, args.options as { sha256?: string } | undefined);
    if (op === "storage/getBlob") return getBlob(this.storage, args.storageId);
    throw new Error(`Unknown JS operation ${op}`);
  }

  async asyncSyscall(op: string, argsJson: string): Promise<string> {
    if (this.expired) throw this.expired;
    const args = JSON.parse(argsJson) as Args;
    try {
      const kind = CALLS[op];
      if (kind) return await this.call(kind, args);
      if (isStorageSyscall(op)) return await storageSyscall(op, args, this.storage);
      switch (op) {
        case "1.0/actions/schedule": {
          const scheduler = { components: this.engine.components, caller: this.instance };
          return JSON.stringify(
            await this.engine.exclusive(
              async () => this.engine.executeSystemWrite((tx) => scheduleJob(tx, scheduler, this.scheduling, args, args.ts, args.args)),
              this.owner,
            ),
          );
        }
        case "1.0/actions/cancel_job":
          await this.engine.exclusive(
            async () => this.engine.executeSystemWrite((tx) => cancelJob(tx, this.instance.namespace, jsonToConvex(args.id ?? null))),
            this.owner,
          );
          return "null";
        case "1.0/createFunctionHandle":
          return JSON.stringify(this.engine.components.handleFor(this.instance, args as FunctionAddress));
        case "1.0/getFunctionMetadata":
          return JSON.stringify({ name: null, componentPath: this.instance.path });
        case "1.0/getUserIdentity":
          return JSON.stringify(await this.caller());
        case "1.0/actions/vectorSearch":
          return JSON.stringify({ results: this.engine.vectorSearch(this.inNamespace((args.query ?? {}) as VectorQueryArgument)) });
        default:
          throw new Error(`Unknown async operation ${op}`);
      }
    } catch (error) {
      // A nested call's ConvexError reaches the action as a ConvexError with its data (convex/server rebuilds it from `data`).
      if (error instanceof FunctionError && error.data !== undefined) throw Object.assign(new Error(error.message), { data: error.dataJson });
      throw error;
    }
  }

  /** A vector query naming this action's instance's index by its stored name (a component's `docs.by_vec` is not the app's). */
  private inNamespace(query: VectorQueryArgument): VectorQueryArgument {
    return typeof query.indexName === "string" ? { ...query, indexName: this.instance.namespace.storageIndexName(query.indexName) } : query;
  }

  /** `ctx.runQuery`/`runMutation`/`runAction`: a function of this action's instance (internal ones too), a child component's public one, or a handle's. */
  private async call(kind: FunctionKind, args: Args): Promise<string> {
    const target = this.engine.components.resolve(this.instance, args as FunctionAddress, kind);
    const callArgs = jsonToConvex(args.args ?? {});
    const identity = await this.caller().catch(() => null);
    return (await this.engine.runTarget(target, callArgs, { identity, pool: this.pool, owner: this.owner })).text;
  }
}
