/**
 * What live sync keeps across hibernation: each connection's query set, each
 * shared query instance's read-set and result hash, and mutation outcomes for
 * idempotent retries. The Durable Object implements it on SQLite
 * (`src/deployment/sqlite-sync-storage.ts`); the in-memory one below serves
 * plain-Node tests and benchmarks.
 */
import type { HeldMutation, SessionAuth } from "./session.ts";
import { normalizeIntervals, type KeyInterval, type ReadSet, type SearchRead } from "../engine/index.ts";

export interface StoredQuery {
  connectionId: string;
  queryId: number;
  instanceKey: string;
  /** On a shard's internal session: the query's caller (it survives this object's restarts with the session). */
  caller?: SessionAuth | null;
}

export interface StoredInstance {
  key: string;
  udfPath: string;
  /** Convex JSON of the arguments object. */
  argsJson: string;
  readSet: ReadSet;
  searchReads: SearchRead[];
  resultHash: string;
  /** The journal its last run produced (pins a paginated query's page), or null. */
  journal: string | null;
}

export interface StoredMutationResult {
  /** Convex JSON of the result. */
  resultJson: string;
  ts: bigint;
  /** Hash of the function path and arguments: a retry must match it ("" for rows from before it was recorded). */
  fingerprint: string;
}

export interface SyncStorage {
  saveQuery(query: StoredQuery): void;
  deleteQuery(connectionId: string, queryId: number): void;
  /** Forgets a connection: its query set and its held mutations. */
  deleteConnection(connectionId: string): void;
  loadQueries(): StoredQuery[];
  saveInstance(instance: StoredInstance): void;
  deleteInstance(key: string): void;
  loadInstances(): StoredInstance[];
  findMutationResult(sessionId: string, requestId: number): StoredMutationResult | null;
  /** Called inside the mutation's commit transaction. */
  recordMutationResult(sessionId: string, requestId: number, result: StoredMutationResult, nowMs: number): void;
  holdMutation(held: HeldMutation): void;
  /** The held mutation ran (or failed): it is not run again. */
  releaseMutation(connectionId: string, seq: number): void;
  /** Every held mutation, in order within each connection. */
  loadHeldMutations(): HeldMutation[];
}

/** Read-sets as JSON: `{index: [[start, end|null], ...]}` with keys in base64 (keys are byte strings). */
export function readSetToJson(readSet: ReadSet): string {
  const out: Record<string, [string, string | null][]> = {};
  for (const [index, intervals] of readSet) out[index] = intervals.map((i) => [btoa(i.start), i.end === null ? null : btoa(i.end)]);
  return JSON.stringify(out);
}

/** Search reads as JSON (partition and filter keys are byte strings: base64). */
export function searchReadsToJson(reads: readonly SearchRead[]): string {
  return JSON.stringify(reads.map((r) => ({ ...r, partition: btoa(r.partition), filters: r.filters.map(([p, k]) => [p, btoa(k)]) })));
}

export function searchReadsFromJson(json: string): SearchRead[] {
  return (JSON.parse(json) as SearchRead[]).map((r) => ({
    ...r,
    partition: atob(r.partition),
    filters: r.filters.map(([p, k]) => [p, atob(k)] as [number, string]),
  }));
}

export function readSetFromJson(json: string): ReadSet {
  const parsed = JSON.parse(json) as Record<string, [string, string | null][]>;
  const out = new Map<string, KeyInterval[]>();
  for (const [index, intervals] of Object.entries(parsed)) {
    out.set(index, normalizeIntervals(intervals.map(([start, end]) => ({ start: atob(start), end: end === null ? null : atob(end) }))));
  }
  return out;
}

export class MemorySyncStorage implements SyncStorage {
  private queries = new Map<string, StoredQuery>();
  private instances = new Map<string, StoredInstance>();
  private mutations = new Map<string, StoredMutationResult & { recordedAt: number }>();
  private held = new Map<string, HeldMutation>();
  private readonly retentionMs: () => number;

  constructor(retentionMs: () => number = () => Infinity) {
    this.retentionMs = retentionMs;
  }

  saveQuery(query: StoredQuery): void {
    this.queries.set(`${query.connectionId}/${query.queryId}`, query);
  }
  deleteQuery(connectionId: string, queryId: number): void {
    this.queries.delete(`${connectionId}/${queryId}`);
  }
  deleteConnection(connectionId: string): void {
    for (const [key, query] of this.queries) if (query.connectionId === connectionId) this.queries.delete(key);
    for (const [key, held] of this.held) if (held.connectionId === connectionId) this.held.delete(key);
  }
  loadQueries(): StoredQuery[] {
    return [...this.queries.values()];
  }
  saveInstance(instance: StoredInstance): void {
    this.instances.set(instance.key, instance);
  }
  deleteInstance(key: string): void {
    this.instances.delete(key);
  }
  loadInstances(): StoredInstance[] {
    return [...this.instances.values()];
  }
  findMutationResult(sessionId: string, requestId: number): StoredMutationResult | null {
    const found = this.mutations.get(`${sessionId}/${requestId}`);
    return found ? { resultJson: found.resultJson, ts: found.ts, fingerprint: found.fingerprint } : null;
  }
  recordMutationResult(sessionId: string, requestId: number, result: StoredMutationResult, nowMs: number): void {
    this.mutations.set(`${sessionId}/${requestId}`, { ...result, recordedAt: nowMs });
    for (const [key, recorded] of this.mutations) if (recorded.recordedAt < nowMs - this.retentionMs()) this.mutations.delete(key);
  }
  holdMutation(held: HeldMutation): void {
    this.held.set(`${held.connectionId}/${held.seq}`, structuredClone(held));
  }
  releaseMutation(connectionId: string, seq: number): void {
    this.held.delete(`${connectionId}/${seq}`);
  }
  loadHeldMutations(): HeldMutation[] {
    return [...this.held.values()].map((held) => structuredClone(held)).sort((a, b) => a.connectionId.localeCompare(b.connectionId) || a.seq - b.seq);
  }
}
