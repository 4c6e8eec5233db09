/**
 * What a sync shard keeps across hibernation and restart, beside its
 * clients' query sets and held mutations (`SyncStorage`): its peer session
 * (id, versions, push number, the next ids to hand out), the distinct
 * queries it holds (without their results, which can be large: a restored
 * query's result is asked for again when a client needs it), its clients'
 * requests waiting for an answer, and the config the deployment gave it.
 * SQLite in the shard object (`src/deployment/sqlite-shard-storage.ts`); the
 * in-memory one below serves plain-Node tests.
 */
import type { SessionAuth } from "./session.ts";

export interface StoredPeerState {
  connectionId: string | null;
  epoch: string | null;
  seq: number;
  version: { querySet: number; ts: string; identity: number };
  querySet: number;
  nextQueryId: number;
  nextRequestId: number;
}

export interface StoredHeldQuery {
  key: string;
  upstreamId: number;
  udfPath: string;
  /** JSON of the arguments object. */
  argsJson: string;
  journal: string | null;
  caller: SessionAuth | null;
  /** Hash of the last result the shard held (what its clients were sent), or null before the first. */
  hash: string | null;
}

export interface StoredRequest {
  requestId: number;
  connectionId: string;
  kind: "Mutation" | "Action";
  clientRequestId: number;
  frame: string;
}

export interface ShardStorage {
  loadValue(key: string): string | null;
  saveValue(key: string, value: string): void;
  loadHeld(): StoredHeldQuery[];
  saveHeld(query: StoredHeldQuery): void;
  deleteHeld(key: string): void;
  loadRequests(): StoredRequest[];
  saveRequest(request: StoredRequest): void;
  deleteRequest(requestId: number): void;
}

export class MemoryShardStorage implements ShardStorage {
  private readonly values = new Map<string, string>();
  private readonly held = new Map<string, StoredHeldQuery>();
  private readonly requests = new Map<number, StoredRequest>();

  loadValue(key: string): string | null {
    return this.values.get(key) ?? null;
  }
  saveValue(key: string, value: string): void {
    this.values.set(key, value);
  }
  loadHeld(): StoredHeldQuery[] {
    return [...this.held.values()].map((query) => structuredClone(query));
  }
  saveHeld(query: StoredHeldQuery): void {
    this.held.set(query.key, structuredClone(query));
  }
  deleteHeld(key: string): void {
    this.held.delete(key);
  }
  loadRequests(): StoredRequest[] {
    return [...this.requests.values()].sort((a, b) => a.requestId - b.requestId);
  }
  saveRequest(request: StoredRequest): void {
    this.requests.set(request.requestId, { ...request });
  }
  deleteRequest(requestId: number): void {
    this.requests.delete(requestId);
  }
}
