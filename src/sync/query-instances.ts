/**
 * Shared query instances: one per (function, canonical args, journal). Every
 * session subscribed to the same query shares its instance, so the query runs
 * once per timestamp however many sessions watch it, its read-set is held
 * once in the subscription index, and its encoded result is built once.
 *
 * The caller's identity is part of the key only for a query that asked for
 * it (`ctx.auth.getUserIdentity()`), as in Convex's query cache: a shared
 * instance runs anonymously, and when a run reads the identity its signed-in
 * subscribers move to instances of their own (the anonymous ones stay), and
 * from then on that query is keyed by identity. Public queries stay shared.
 *
 * An instance is clean while no commit has written into its read-set since
 * it last ran: then its result is valid at the latest timestamp. A commit
 * marks the instances it hits dirty; the next session turn that needs one
 * re-runs it.
 *
 * The same instances are the deployment's query cache (Convex's, keyed the
 * same way): a one-shot query (HTTP, an action's `ctx.runQuery`) is answered
 * from a clean instance's result without a run (`answer`), and the instance
 * its run made stays after the call, held by nobody, while its result is in
 * the result cache (`queryResultCacheBytes`). A commit into its read-set drops
 * it (nobody would re-run it), as does the cache's eviction; a session that
 * subscribes to it is served its result without a run.
 */
import {
  ByteBudgetLru,
  encodedValue,
  FunctionError,
  SubscriptionIndex,
  ValueError,
  canonicalizePath,
  convexToJson,
  jsonToConvex,
  type EncodedValue,
  type Engine,
  type IndexWrite,
  type LockOwner,
  type RegisteredFunction,
  type JSONValue,
  type ReadSet,
  type SearchRead,
  type SearchWrite,
  type UserIdentity,
  type Value,
} from "../engine/index.ts";
import { QUERY_CACHE_CLOCK_MAX_AGE_MS } from "../knobs/fixed.ts";
import { ProtocolError, queryFailed, queryUpdated, type EncodedModification } from "../protocol/sync.ts";
import { identityKey, shortDigest } from "./hash.ts";
import type { SessionAuth, SyncSession } from "./session.ts";
import type { SyncStorage } from "./storage.ts";

export type EncodedResult =
  { ok: true; value: string; logLines: readonly string[] } | { ok: false; message: string; data: JSONValue | undefined; logLines: readonly string[] };

/** A query's result as the modification that carries it to a client. */
export function modificationFor(queryId: number, encoded: EncodedResult, journal: string | null): EncodedModification {
  return encoded.ok
    ? queryUpdated(queryId, encoded.value, journal, encoded.logLines)
    : queryFailed(queryId, encoded.message, encoded.data, journal, encoded.logLines);
}

export interface PreparedQuery {
  key: string;
  udfPath: string;
  args: Value;
  argsJson: string;
  /** The journal the client sent (`Add.journal`), which the instance's first run starts from. */
  journal: string | null;
}

/** Separates the journal in an instance key: canonical JSON never holds a raw newline. */
const JOURNAL_SEPARATOR = "\n";
/** Separates the identity digest at the end of a key of a query that reads the identity (no raw control characters in JSON either). */
const IDENTITY_SEPARATOR = "\u0001";

/**
 * Checks and canonicalizes (path, args, journal) into the key every session
 * of the same query shares; a `ProtocolError` names what is wrong.
 */
export function prepareQuery(udfPath: string, argsJson: JSONValue, journal: string | null): PreparedQuery {
  const path = canonicalizePath(udfPath);
  try {
    return preparedArgs(path, jsonToConvex(argsJson), journal);
  } catch (error) {
    if (error instanceof ValueError) throw new ProtocolError(`Invalid query arguments: ${error.message}`);
    throw error;
  }
}

/** The prepared query of a canonical path and arguments already decoded. */
function preparedArgs(path: string, args: Value, journal: string | null): PreparedQuery {
  const canonicalArgs = JSON.stringify(convexToJson(args));
  const key = `${path}|${canonicalArgs}${journal === null ? "" : JOURNAL_SEPARATOR + journal}`;
  return { key, udfPath: path, args, argsJson: canonicalArgs, journal };
}

/** A query's key for one caller: the shared key, plus the caller's digest when given. */
export function callerKey(sharedKey: string, caller: SessionAuth | null): string {
  return caller ? `${sharedKey}${IDENTITY_SEPARATOR}${caller.key}` : sharedKey;
}

/** The key without its identity part: the query every caller shares. */
export function sharedKey(key: string): string {
  const at = key.indexOf(IDENTITY_SEPARATOR);
  return at < 0 ? key : key.slice(0, at);
}

export interface QueryInstance {
  key: string;
  udfPath: string;
  args: Value;
  argsJson: string;
  /** The journal its next run reuses: the last run's (Convex's query journal), or the client's until it ran. */
  journal: string | null;
  /** The journal its last run started from (undefined until it ran here): its result answers a one-shot call only when that is the key's. */
  ranFrom?: string | null;
  /** Whether its row is in storage (only instances some session holds are stored). */
  saved?: boolean;
  /** When its last run started, if that run read the clock (null: it did not); a one-shot call is served its result only while young. */
  clockReadAt?: number | null;
  /** Null until it has run (in this process or, restored, in an earlier one). */
  readSet: ReadSet | null;
  searchReads: SearchRead[];
  resultHash: string | null;
  /** The last result, encoded once and shared by every session (memory only: null after a wake or an eviction). */
  encoded: EncodedResult | null;
  /** A commit wrote into its read-set since it last ran. */
  dirty: boolean;
  /** Sessions subscribed, with how many of their query ids use this instance. */
  subscribers: Map<SyncSession, number>;
  /** The caller it runs as: null for a shared instance (anonymous), a subscriber's identity for one keyed by identity. */
  identity: UserIdentity | null;
}

export class QueryInstances {
  private readonly instances = new Map<string, QueryInstance>();
  private readonly index = new SubscriptionIndex<QueryInstance>();
  /** Encoded results kept in memory within `queryResultCacheBytes`; none over a quarter of it. */
  readonly results: ByteBudgetLru<QueryInstance, EncodedResult>;
  private readonly engine: Engine;
  private readonly storage: SyncStorage;
  /** Shared keys of queries seen reading the caller's identity: their instances are per identity. */
  private readonly readsIdentity = new Set<string>();
  /** Instances no session holds, kept as cache entries while their result is in `results`. */
  private readonly unheld = new Set<QueryInstance>();
  /** One-shot queries answered from a clean instance without a run. */
  cacheHits = 0;
  /** Runs nobody held, each given its own result mark instead of a digest (see `run`). */
  private unhashedRuns = 0;

  private readonly now: () => number;

  constructor(engine: Engine, storage: SyncStorage, resultCacheBytes: () => number, now: () => number = Date.now) {
    this.engine = engine;
    this.storage = storage;
    this.now = now;
    this.results = new ByteBudgetLru<QueryInstance, EncodedResult>({
      budgetBytes: resultCacheBytes,
      // UTF-16 in memory: two bytes per code unit; an instance nobody holds costs its key and read-set too.
      sizeOf: (encoded, instance) =>
        2 * ((encoded.ok ? encoded.value.length : encoded.message.length) + encoded.logLines.reduce((n, line) => n + line.length, 0)) +
        (instance.subscribers.size === 0 ? instanceBytes(instance) : 0),
      // Dropping one is always safe: a session that still needs it re-runs it at the latest timestamp.
      onEvict: (instance) => {
        instance.encoded = null;
        if (this.unheld.has(instance)) this.drop(instance);
      },
      maxEntryShare: 4,
    });
  }

  /** Instances some session holds (those kept only as cache entries not counted). */
  get size(): number {
    return this.instances.size - this.unheld.size;
  }

  get(key: string): QueryInstance | undefined {
    return this.instances.get(key);
  }

  /**
   * Restores instances and query sets from storage for the given live sessions
   * (read-sets, not results: nothing runs). Query rows of sockets that closed
   * unseen are deleted, and instances nobody holds are dropped.
   */
  load(sessions: ReadonlyMap<string, SyncSession>): void {
    for (const stored of this.storage.loadInstances()) {
      const instance: QueryInstance = {
        key: stored.key,
        udfPath: stored.udfPath,
        args: jsonToConvex(JSON.parse(stored.argsJson)),
        argsJson: stored.argsJson,
        journal: stored.journal ?? this.fromKey(stored.key).journal,
        readSet: stored.readSet,
        searchReads: stored.searchReads,
        resultHash: stored.resultHash,
        encoded: null,
        dirty: false,
        subscribers: new Map(),
        identity: null,
        saved: true,
      };
      if (instance.key !== sharedKey(instance.key)) this.readsIdentity.add(sharedKey(instance.key));
      this.instances.set(instance.key, instance);
      this.index.add(instance, stored.readSet, stored.searchReads);
    }
    const orphaned = new Set<string>();
    for (const query of this.storage.loadQueries()) {
      const session = sessions.get(query.connectionId);
      if (!session) {
        orphaned.add(query.connectionId);
        continue;
      }
      // An instance that never ran before the object slept (a query added just before, or held by
      // waiting sessions only) was never stored: it comes back from its key, to run when needed.
      // A shard's peer session names each query's caller; a client's queries run as the client.
      const stored = query.caller !== undefined ? { caller: query.caller } : {};
      const caller = session.queryCaller({ instanceKey: query.instanceKey, sentHash: null, ...stored });
      const instance = this.instances.get(query.instanceKey) ?? this.acquire(this.fromKey(query.instanceKey), caller);
      // A stored instance keyed by identity runs as the identity its subscribers hold.
      if (instance.identity === null && caller !== null && instance.key !== sharedKey(instance.key)) instance.identity = caller.identity;
      // A waiting session has been sent nothing yet, whatever the shared instance's last result was.
      session.queries.set(query.queryId, { instanceKey: instance.key, sentHash: session.waiting ? null : instance.resultHash, ...stored });
      this.subscribe(instance, session);
    }
    for (const connectionId of orphaned) if (!sessions.has(connectionId)) this.storage.deleteConnection(connectionId);
    for (const instance of [...this.instances.values()]) if (instance.subscribers.size === 0) this.drop(instance);
  }

  /**
   * Checks and canonicalizes (path, args, journal) without creating anything;
   * a `ProtocolError` names what is wrong. The journal is part of the key, as
   * in Convex's query cache: the same page pinned at another end is another query.
   */
  prepare(udfPath: string, argsJson: JSONValue, journal: string | null = null): PreparedQuery {
    return prepareQuery(udfPath, argsJson, journal);
  }

  /** A prepared query from an instance key (`path|canonical args[\njournal][\u0001identity]`), as `prepare` made it. */
  private fromKey(instanceKey: string): PreparedQuery {
    const key = sharedKey(instanceKey);
    const separator = key.indexOf("|");
    const journalAt = key.indexOf(JOURNAL_SEPARATOR, separator);
    const argsJson = journalAt < 0 ? key.slice(separator + 1) : key.slice(separator + 1, journalAt);
    return this.prepare(key.slice(0, separator), JSON.parse(argsJson) as JSONValue, journalAt < 0 ? null : key.slice(journalAt + 1));
  }

  /**
   * The instance a query called by `caller` uses, created (dirty, never run)
   * if none exists: the shared one, or the caller's own for a query known to
   * read the identity.
   */
  acquire(query: PreparedQuery, caller: SessionAuth | null): QueryInstance {
    const auth = this.readsIdentity.has(query.key) ? caller : null;
    const key = this.keyFor(query, caller);
    let instance = this.instances.get(key);
    if (!instance) {
      instance = {
        ...query,
        key,
        readSet: null,
        searchReads: [],
        resultHash: null,
        encoded: null,
        dirty: true,
        subscribers: new Map(),
        identity: auth?.identity ?? null,
      };
      this.instances.set(key, instance);
    }
    // Restored from storage: it runs as the identity its key names, which its subscribers hold.
    if (auth && instance.identity === null) instance.identity = auth.identity;
    return instance;
  }

  /** The key of the instance `acquire` would give `caller` for `query`. */
  keyFor(query: PreparedQuery, caller: SessionAuth | null): string {
    return callerKey(query.key, this.readsIdentity.has(query.key) ? caller : null);
  }

  /** How many instances `queries` would create (distinct keys not held yet). */
  missing(queries: readonly { query: PreparedQuery; caller: SessionAuth | null }[]): number {
    const keys = new Set<string>();
    for (const { query, caller } of queries) {
      const key = this.keyFor(query, caller);
      const instance = this.instances.get(key);
      if (!instance || this.unheld.has(instance)) keys.add(key);
    }
    return keys.size;
  }

  /**
   * Points each of `session`'s queries at the instance its current identity
   * calls for (after it signed in, out, or as someone else, or after a query
   * turned out to read the identity). Returns whether any moved.
   */
  rekey(session: SyncSession): boolean {
    let moved = false;
    for (const [queryId, query] of session.queries) {
      const current = this.instances.get(query.instanceKey);
      if (!current) continue;
      const target = this.acquire(this.fromKey(query.instanceKey), session.queryCaller(query));
      if (target === current) continue;
      this.subscribe(target, session);
      query.instanceKey = target.key;
      this.storage.saveQuery({
        connectionId: session.connectionId,
        queryId,
        instanceKey: target.key,
        ...(query.caller !== undefined ? { caller: query.caller } : {}),
      });
      this.unsubscribe(current.key, session);
      moved = true;
    }
    return moved;
  }

  subscribe(instance: QueryInstance, session: SyncSession): void {
    const firstHolder = instance.subscribers.size === 0;
    // A cache entry held from now on: stored like any held instance.
    if (firstHolder && this.unheld.delete(instance)) this.save(instance);
    instance.subscribers.set(session, (instance.subscribers.get(session) ?? 0) + 1);
    // Its result is sized as a held one's (no key and read-set) from its first holder on; later ones change nothing.
    if (firstHolder && instance.encoded !== null) this.results.resize(instance);
  }

  /**
   * Drops one of `session`'s uses of the instance. When the last use of the
   * last session goes, a clean instance with its result cached stays as a
   * cache entry (unstored); any other is dropped.
   */
  unsubscribe(instanceKey: string, session: SyncSession): void {
    const instance = this.instances.get(instanceKey);
    if (!instance) return;
    const remaining = (instance.subscribers.get(session) ?? 1) - 1;
    if (remaining > 0) instance.subscribers.set(session, remaining);
    else instance.subscribers.delete(session);
    if (instance.subscribers.size === 0) this.release(instance);
  }

  /** An instance nobody holds any more: kept as a cache entry if it can answer a one-shot call, else dropped. */
  private release(instance: QueryInstance): void {
    if (instance.dirty || !instance.encoded?.ok || instance.ranFrom === undefined) return this.drop(instance);
    this.unheld.add(instance);
    if (instance.saved) this.storage.deleteInstance(instance.key);
    instance.saved = false;
    this.results.resize(instance);
    this.results.fitBudget(instance);
  }

  private drop(instance: QueryInstance): void {
    this.instances.delete(instance.key);
    this.unheld.delete(instance);
    this.index.remove(instance);
    this.results.delete(instance);
    if (instance.saved) this.storage.deleteInstance(instance.key);
    instance.saved = false;
  }

  /** Marks the instances a commit wrote into as dirty and returns them; a cache entry nobody holds is dropped (nothing would re-run it). */
  invalidate(writes: readonly IndexWrite[], searchWrites: readonly SearchWrite[], tables: readonly string[] = []): Set<QueryInstance> {
    return this.markStale(this.index.affected(writes, searchWrites, tables));
  }

  /**
   * Marks every instance dirty and drops every cache entry nobody holds, for a
   * change no read-set records (the deployment's environment variables, which
   * any run may read through `process.env`); returns the instances marked.
   */
  invalidateAll(): Set<QueryInstance> {
    return this.markStale(new Set(this.instances.values()));
  }

  /** Marks `stale` dirty; a cache entry among them that nobody holds is dropped (nothing would re-run it). */
  private markStale(stale: Set<QueryInstance>): Set<QueryInstance> {
    for (const instance of stale) {
      instance.dirty = true;
      if (this.unheld.has(instance)) this.drop(instance);
    }
    return stale;
  }

  /**
   * A one-shot query's answer (HTTP `/api/query`, an action's `ctx.runQuery`),
   * as Convex's query cache gives it: a clean instance's result, valid at the
   * latest timestamp, without a run and without waiting for the function
   * lock; otherwise a run in `owner`'s turn of the lock, whose instance stays
   * as a cache entry (or is the one sessions hold). The key is (function,
   * arguments, no journal), and the caller's identity only for a query known
   * to read it: a shared run that turns out to read it is run again as the
   * caller. Failures are never served from the cache (Convex caches no
   * errors): they run each time. A result that read the clock answers only
   * while young (`QUERY_CACHE_CLOCK_MAX_AGE_MS`, Convex's bound); Math.random
   * needs nothing: a cached answer is one run's draw, as on Convex.
   */
  async answer(fn: RegisteredFunction, args: Value, identity: UserIdentity | null, owner?: LockOwner): Promise<EncodedValue> {
    const query = preparedArgs(fn.path, args, null);
    let caller: SessionAuth | null = null;
    const callerOf = async (): Promise<SessionAuth | null> => {
      if (identity === null || !this.readsIdentity.has(query.key)) return null;
      return (caller ??= { identity, key: await identityKey(identity), expiresAt: Number.POSITIVE_INFINITY });
    };
    const hit = this.cached(this.keyFor(query, await callerOf()));
    if (hit) return hit;
    return this.engine.exclusive(async () => {
      // Twice at most: a shared run that read the identity is run again as the caller.
      for (;;) {
        const auth = await callerOf();
        const key = this.keyFor(query, auth);
        const again = this.cached(key);
        if (again) return again;
        const held = this.instances.get(key);
        if (held && held.journal !== query.journal) {
          // A held paginated query whose page end is pinned by its journal: its runs are not this call's. Run this one alone.
          const outcome = await this.engine.executeQuery(fn, args, null, identity);
          if (outcome.error) throw outcome.error;
          return outcome;
        }
        const instance = this.acquire(query, auth);
        const { encoded, error } = await this.run(instance);
        if (instance.subscribers.size === 0) this.release(instance);
        if (instance.identity === null && identity !== null && this.readsIdentity.has(query.key)) continue;
        if (error) throw error;
        if (!encoded.ok) throw new FunctionError("UserError", encoded.message);
        return encodedValue(encoded.value, encoded.logLines);
      }
    }, owner);
  }

  /**
   * The cached result of the instance at `key` when it answers a one-shot call
   * now: clean, successful, run from no journal, and if it read the clock, run
   * within `QUERY_CACHE_CLOCK_MAX_AGE_MS`.
   */
  private cached(key: string): EncodedValue | null {
    const instance = this.instances.get(key);
    if (instance === undefined || instance.dirty || instance.ranFrom !== null) return null;
    if (instance.clockReadAt != null && this.now() - instance.clockReadAt > QUERY_CACHE_CLOCK_MAX_AGE_MS) return null;
    const encoded = instance.encoded;
    if (encoded === null || !encoded.ok) return null;
    this.results.get(instance);
    this.cacheHits++;
    return encodedValue(encoded.value, encoded.logLines);
  }

  /**
   * Runs an instance at the current timestamp, caches its encoded result (if
   * the cache takes it) and stores its new read-set and result hash. Returns
   * the encoded result and whether this re-run was caused by a commit (an
   * invalidation) rather than a first run.
   */
  async run(instance: QueryInstance): Promise<{ encoded: EncodedResult; error: FunctionError | null; invalidation: boolean; movedSessions: SyncSession[] }> {
    const invalidation = instance.dirty && instance.readSet !== null;
    let encoded: EncodedResult;
    let error: FunctionError | null;
    let readSet: ReadSet;
    let searchReads: SearchRead[] = [];
    const ranFrom = instance.journal;
    const startedAt = this.now();
    let clockReadAt: number | null = null;
    try {
      const fn = this.engine.resolve(instance.udfPath, "query");
      const outcome = await this.engine.executeQuery(fn, instance.args, instance.journal, instance.identity);
      if (outcome.readIdentity) this.readsIdentity.add(sharedKey(instance.key));
      if (outcome.observedTime) clockReadAt = startedAt;
      instance.journal = outcome.journal;
      readSet = outcome.readSet;
      searchReads = outcome.searchReads;
      error = outcome.error;
      encoded = outcome.error
        ? { ok: false, message: outcome.error.message, data: outcome.error.dataJson, logLines: outcome.logLines }
        : { ok: true, value: outcome.text, logLines: outcome.logLines };
    } catch (thrown) {
      if (!(thrown instanceof FunctionError)) throw thrown;
      // Unknown function (the only failure resolve() has): fails now, and nothing it "read" can change that.
      readSet = new Map();
      error = thrown;
      encoded = { ok: false, message: thrown.message, data: undefined, logLines: [] };
    }
    instance.ranFrom = ranFrom;
    instance.clockReadAt = clockReadAt;
    instance.dirty = false;
    instance.readSet = readSet;
    instance.searchReads = searchReads;
    // A result too large for the cache is used for this turn only.
    instance.encoded = this.results.set(instance, encoded) ? encoded : null;
    const journal = instance.journal ?? "";
    // A run nobody holds (a one-shot call's) is compared with nothing: a unique mark, not a digest (SHA-256 over the
    // result cost a one-shot miss more than half its run in Node, issue 27). A session that subscribes later is sent
    // the result (no sent hash equals the mark); its next run's digest sends it once more, unchanged or not.
    instance.resultHash =
      instance.subscribers.size === 0
        ? `unhashed:${++this.unhashedRuns}`
        : await shortDigest(encoded.ok ? `ok:${journal}:${encoded.value}` : `error:${journal}:${encoded.message}:${JSON.stringify(encoded.data ?? null)}`);
    this.index.add(instance, readSet, searchReads);
    // Only what sessions hold is stored (a wake restores subscriptions, not the cache).
    if (instance.subscribers.size > 0) this.save(instance);
    // A shared instance that read the identity: its anonymous result is not its signed-in subscribers' one.
    const movedSessions: SyncSession[] = [];
    if (instance.identity === null && this.readsIdentity.has(instance.key)) {
      for (const session of [...instance.subscribers.keys()]) if (session.hasCallers && this.rekey(session)) movedSessions.push(session);
    }
    return { encoded, error, invalidation, movedSessions };
  }

  /** Stores an instance that has run (what a wake restores for the sessions that hold it). */
  private save(instance: QueryInstance): void {
    const { readSet, resultHash } = instance;
    if (readSet === null || resultHash === null) return;
    this.storage.saveInstance({
      key: instance.key,
      udfPath: instance.udfPath,
      argsJson: instance.argsJson,
      readSet,
      searchReads: instance.searchReads,
      resultHash,
      journal: instance.journal,
    });
    instance.saved = true;
  }
}

/** Bytes an instance holds beyond its result (key, arguments, read-set), roughly: what a cache entry nobody holds costs. */
function instanceBytes(instance: QueryInstance): number {
  let chars = instance.key.length + instance.argsJson.length;
  for (const [index, intervals] of instance.readSet ?? []) {
    chars += index.length;
    for (const interval of intervals) chars += interval.start.length + (interval.end?.length ?? 0) + 16;
  }
  return 2 * chars + 256;
}
