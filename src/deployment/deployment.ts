/**
 * The deployment Durable Object: one per deployment name. It owns the SQLite
 * storage and runs the engine; the Worker in front of it parses and checks
 * requests so this single-threaded object spends its time on functions.
 *
 * Transactions (see src/engine/engine.ts for the full argument): functions run
 * one at a time through the engine's FIFO lock; a mutation writes into an
 * in-memory overlay that its reads see, and commits it with its index keys in
 * one `transactionSync`. A throw discards the overlay, so it leaves no trace.
 */
import { DurableObject } from "cloudflare:workers";
import { Engine, FunctionError, jsonToConvex, registerModules, ValueError, type AppDefinition, type JSONValue } from "../engine/index.ts";
import { errorResponse, successResponse, type FunctionResponse } from "../protocol/http.ts";
import { SqliteStore } from "./sqlite-store.ts";
import { VERSION } from "../version.ts";
import type { Env } from "../env.ts";

export interface DeploymentStatus {
  deployment: string;
  version: string;
  commits: number;
  documents: number;
  queryExecutions: number;
  mutationExecutions: number;
  uptimeMs: number;
}

export type FunctionKind = "query" | "mutation";

export type AdminStatus = DeploymentStatus & { storageBytes: number; tables: Record<string, { indexes: string[] }> };

/** What the Worker calls on a deployment object over RPC. */
export interface DeploymentApi {
  run(kind: FunctionKind, path: string, encodedArgs: JSONValue, requestId: string): Promise<FunctionResponse>;
  status(): Promise<DeploymentStatus>;
  adminStatus(): Promise<AdminStatus>;
}

export function defineDeployment(app: AppDefinition) {
  const functions = registerModules(app.modules);

  return class Deployment extends DurableObject<Env> implements DeploymentApi {
    readonly store: SqliteStore;
    readonly engine: Engine;
    private readonly startedAt = Date.now();

    constructor(ctx: DurableObjectState, env: Env) {
      super(ctx, env);
      this.store = new SqliteStore(ctx.storage);
      this.engine = new Engine({ schema: app.schema, functions, store: this.store });
    }

    /** Runs a query or mutation. Function failures are answered, never thrown. */
    async run(kind: FunctionKind, path: string, encodedArgs: JSONValue, requestId: string): Promise<FunctionResponse> {
      try {
        const args = jsonToConvex(encodedArgs);
        const result = kind === "query" ? await this.engine.runQuery(path, args) : await this.engine.runMutation(path, args);
        return successResponse(result.json);
      } catch (error) {
        if (error instanceof FunctionError) return errorResponse(error);
        if (error instanceof ValueError) return errorResponse(new FunctionError("InvalidArgument", `Invalid arguments: ${error.message}`));
        // Anything else is our bug: log it with the request id, tell the caller only the id.
        console.error(`[${requestId}] ${kind} ${path} failed:`, error);
        return { status: "error", errorMessage: `[Request ID: ${requestId}] Server Error`, logLines: [] };
      }
    }

    async status(): Promise<DeploymentStatus> {
      const counters = this.store.persistedCounters;
      return {
        deployment: this.ctx.id.name ?? this.ctx.id.toString(),
        version: VERSION,
        commits: counters.commits,
        documents: counters.documents,
        queryExecutions: this.engine.counters.queryExecutions,
        mutationExecutions: this.engine.counters.mutationExecutions,
        uptimeMs: Date.now() - this.startedAt,
      };
    }

    /** Operator view: status plus storage size and the schema's tables and indexes. */
    async adminStatus(): Promise<AdminStatus> {
      const tables: Record<string, { indexes: string[] }> = {};
      for (const [name, table] of app.schema.tables) tables[name] = { indexes: [...table.indexes.keys()] };
      return { ...(await this.status()), storageBytes: this.ctx.storage.sql.databaseSize, tables };
    }
  };
}

export type DeploymentClass = ReturnType<typeof defineDeployment>;
export type Deployment = InstanceType<DeploymentClass>;
