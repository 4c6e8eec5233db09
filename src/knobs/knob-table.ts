/**
 * Every limit of a deployment, in one typed table: name (unit in the name),
 * default, safe range and what it does. Read through one accessor
 * (`knobs.values`), so a limit is never a constant buried in code.
 *
 * Adding a knob: add a row here and read it from `values`. Keep the doc line
 * honest about what happens at each end of the range.
 */
import { DEFAULT_ENGINE_LIMITS } from "../engine/limits.ts";

export interface KnobDefinition {
  default: number;
  min: number;
  max: number;
  unit: "bytes" | "ms" | "count";
  doc: string;
}

export const KNOBS = {
  maxDocumentsRead: {
    default: DEFAULT_ENGINE_LIMITS.maxDocumentsRead,
    min: 100,
    max: 1_000_000,
    unit: "count",
    doc: "Documents one query or mutation may read. Low: legitimate scans fail; high: one function can hog the object.",
  },
  maxReadIntervals: {
    default: DEFAULT_ENGINE_LIMITS.maxReadIntervals,
    min: 16,
    max: 65_536,
    unit: "count",
    doc: "Index ranges one function's read-set may hold. High values make subscriptions costlier to index.",
  },
  maxDocumentsWritten: {
    default: DEFAULT_ENGINE_LIMITS.maxDocumentsWritten,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "Documents one mutation may write. High values make single commits long and their write-sets large.",
  },
  maxBytesRead: {
    default: DEFAULT_ENGINE_LIMITS.maxBytesRead,
    min: 65_536,
    max: 67_108_864,
    unit: "bytes",
    doc: "Bytes of documents one query or mutation may read (Convex: 16 MiB). The isolate has 128 MB in all; past it the function fails with LimitExceeded.",
  },
  maxBytesWritten: {
    default: DEFAULT_ENGINE_LIMITS.maxBytesWritten,
    min: 65_536,
    max: 33_554_432,
    unit: "bytes",
    doc: "Bytes one mutation may write: its documents plus the search log entries they cause (charged as the documents they index). Past it the mutation fails and writes nothing.",
  },
  maxDocumentBytes: {
    default: DEFAULT_ENGINE_LIMITS.maxDocumentBytes,
    min: 1_024,
    max: 1_900_000,
    unit: "bytes",
    doc: "Encoded size of one document in UTF-8 bytes. Capped below SQLite's 2 MB row limit on Durable Objects.",
  },
  maxArgumentBytes: {
    default: DEFAULT_ENGINE_LIMITS.maxArgumentBytes,
    min: 1_024,
    max: 16_777_216,
    unit: "bytes",
    doc: "Encoded size of a function's arguments; larger calls fail with LimitExceeded before the handler runs.",
  },
  maxResultBytes: {
    default: DEFAULT_ENGINE_LIMITS.maxResultBytes,
    min: 1_024,
    max: 16_777_216,
    unit: "bytes",
    doc: "Encoded size of a function's result. A larger query result fails that query (QueryFailed), never the socket; keep it under maxTransitionBytes.",
  },
  maxValueDepth: {
    default: DEFAULT_ENGINE_LIMITS.maxValueDepth,
    min: 2,
    max: 64,
    unit: "count",
    doc: "Levels of arrays and objects in arguments and results (Convex: 64, which the codec enforces for every value, documents included).",
  },
  maxConcurrentActions: {
    default: DEFAULT_ENGINE_LIMITS.maxConcurrentActions,
    min: 1,
    max: 1_000,
    unit: "count",
    doc: "Actions clients' calls (sockets, HTTP, HTTP actions) run at once in one deployment; one more is refused with LimitExceeded (actions wait on I/O outside the function lock, so this bounds their memory, not the lock). Scheduled and cron actions have a pool of their own.",
  },
  maxConcurrentJobActions: {
    default: DEFAULT_ENGINE_LIMITS.maxConcurrentJobActions,
    min: 1,
    max: 1_000,
    unit: "count",
    doc: "Actions the deployment's scheduled functions and crons run at once (Convex S16: 8 concurrent scheduled jobs). A due action with no slot free stays pending and runs when one frees, never failed or skipped; clients' actions cannot take these slots.",
  },
  functionTimeoutMs: {
    default: DEFAULT_ENGINE_LIMITS.functionTimeoutMs,
    min: 100,
    max: 600_000,
    unit: "ms",
    doc: "Wall-clock time a query or mutation may run before it is stopped with LimitExceeded and the function lock released (a mutation's writes are dropped). Convex allows 1 s of user code; this clock counts database work and index loads too, hence 5 s. A loop that never awaits is stopped by maxSyncRunMs and maxSyncRunSteps instead.",
  },
  maxSyncRunMs: {
    default: DEFAULT_ENGINE_LIMITS.maxSyncRunMs,
    min: 10,
    max: 30_000,
    unit: "ms",
    doc: "Time any function (query, mutation, action, HTTP action) or a module's top level may hold the object's one thread without yielding (an `await` of real work, not of a settled promise). Past it the guard codegen puts in every loop and function of the app throws LimitExceeded naming the function, which user code cannot catch for good: the caller is answered, a mutation's writes dropped, the function lock released. It exists because nothing else stops `while (true) {}`: locally nothing at all, and meanwhile every other request waits. Keep it well under 1 s, so the rest of the deployment answers within a second; a module's top level always gets the default (the app loads once per isolate).",
  },
  maxSyncRunSteps: {
    default: DEFAULT_ENGINE_LIMITS.maxSyncRunSteps,
    min: 10_000,
    max: 10_000_000_000,
    unit: "count",
    doc: "Loop iterations plus function calls of the app's code any function may make without yielding; past it, as past maxSyncRunMs. On Cloudflare the clock stands still during synchronous code, so this is what stops a loop there (50 M: well under a second of a tight loop, a few seconds of heavy ones; the runtime's cpu_ms, which resets the object, is the backstop). Low: long legitimate computations fail.",
  },
  maxNestedCallDepth: {
    default: DEFAULT_ENGINE_LIMITS.maxNestedCallDepth,
    min: 1,
    max: 64,
    unit: "count",
    doc: "How deep ctx.runQuery/ctx.runMutation may nest inside one query or mutation (the app calling a component calling its own component is 2). Each level holds a child transaction and a stack of awaits; a function that calls itself by mistake fails with LimitExceeded here instead of running until its deadline.",
  },
  actionTimeoutMs: {
    default: DEFAULT_ENGINE_LIMITS.actionTimeoutMs,
    min: 100,
    max: 3_600_000,
    unit: "ms",
    doc: "Wall-clock time an action or HTTP action may run (Convex: 30 min, 10 min for Node actions). Past it the caller gets LimitExceeded, the slot is freed and the action's later calls to the deployment fail; a scheduled one is recorded failed.",
  },
  maxHttpActionBodyBytes: {
    default: DEFAULT_ENGINE_LIMITS.maxHttpActionBodyBytes,
    min: 1_024,
    max: 104_857_600,
    unit: "bytes",
    doc: "Bytes of an HTTP action's request body (Convex: 20 MiB). The body is read before the action takes a slot, so slow uploads hold no action slot; past it the request gets 413 and the action does not run. Large files go to upload URLs instead.",
  },
  maxPendingActionsPerSession: {
    default: 16,
    min: 1,
    max: 1_000,
    unit: "count",
    doc: "Actions one socket session may have running; more fail at once (Convex allows 1,000; a chat page runs a few).",
  },
  searchMaxTerms: {
    default: DEFAULT_ENGINE_LIMITS.searchMaxTerms,
    min: 1,
    max: 64,
    unit: "count",
    doc: "Terms one search may have (Convex: 16); more is an error naming the limit.",
  },
  searchMaxFilters: {
    default: DEFAULT_ENGINE_LIMITS.searchMaxFilters,
    min: 1,
    max: 16,
    unit: "count",
    doc: "Equality filters one search may have (Convex: 8).",
  },
  searchMaxScanned: {
    default: DEFAULT_ENGINE_LIMITS.searchMaxScanned,
    min: 16,
    max: 16_384,
    unit: "count",
    doc: "Results one search may scan before filter/take; past it the search fails rather than silently truncating.",
  },
  searchMinPrefixLength: {
    default: DEFAULT_ENGINE_LIMITS.searchMinPrefixLength,
    min: 1,
    max: 32,
    unit: "count",
    doc: "The last search term matches as a prefix only from this length on. 1 makes one-letter typeahead scan most of a partition.",
  },
  searchMemoryBudgetBytes: {
    default: 33_554_432,
    min: 1_048_576,
    max: 104_857_600,
    unit: "bytes",
    doc: "Estimated heap for loaded search partitions; the least recently used are unloaded past it. The isolate has 128 MB in all.",
  },
  vectorMemoryBudgetBytes: {
    default: 33_554_432,
    min: 1_048_576,
    max: 104_857_600,
    unit: "bytes",
    doc: "Heap for loaded vector indexes (sign codes and filter values, about 240 bytes per 1,536-dimension vector); the least recently used are unloaded past it, and a search of an index that alone would pass it fails naming this knob.",
  },
  vectorExactMaxCandidates: {
    default: 1_024,
    min: 0,
    max: 100_000,
    unit: "count",
    doc: "A vector search over at most this many documents (after its filter) scores every one exactly. Higher: exact for more searches, each reading more vectors from SQLite.",
  },
  vectorRerankCandidates: {
    default: 512,
    min: 16,
    max: 10_000,
    unit: "count",
    doc: "Past vectorExactMaxCandidates, how many candidates the sign codes pick for exact scoring. Higher: better recall, slower searches (each candidate is a vector read from SQLite).",
  },
  searchCompactLogEntries: {
    default: 1_000,
    min: 1,
    max: 1_000_000,
    unit: "count",
    doc: "A partition is compacted once its log has this many entries. Low: frequent rewrites; high: slow loads.",
  },
  searchCompactLogBytes: {
    default: 1_048_576,
    min: 1_024,
    max: 104_857_600,
    unit: "bytes",
    doc: "A partition is compacted once its log holds this many bytes, whichever threshold comes first.",
  },
  compactionBudgetDocuments: {
    default: 50_000,
    min: 100,
    max: 10_000_000,
    unit: "count",
    doc: "Documents one compaction run may serialize before it yields to the next alarm (a CPU bound: the clock stands still during synchronous work on Workers).",
  },
  maxScheduledPerFunction: {
    default: DEFAULT_ENGINE_LIMITS.maxScheduledPerFunction,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "Functions one mutation or action may schedule (Convex: 1,000); one more fails that run with LimitExceeded (a mutation's jobs and writes are then not committed).",
  },
  maxScheduledArgumentBytes: {
    default: DEFAULT_ENGINE_LIMITS.maxScheduledArgumentBytes,
    min: 1_024,
    max: 134_217_728,
    unit: "bytes",
    doc: "Bytes of the arguments of all the functions one mutation or action schedules, together (Convex: 8 MiB).",
  },
  scheduledJobRetentionMs: {
    default: 604_800_000,
    min: 60_000,
    max: 31_536_000_000,
    unit: "ms",
    doc: "How long a finished scheduled function (success, failed, canceled) stays readable in _scheduled_functions (Convex: 7 days); older ones are deleted from the alarm, scheduledJobsPerAlarm at a time.",
  },
  scheduledJobsPerAlarm: {
    default: 100,
    min: 1,
    max: 10_000,
    unit: "count",
    doc: "Due scheduled functions one alarm runs, oldest due first; the rest run at the next alarm, right after (bounded work per alarm, so other tasks and sessions keep their turns).",
  },
  compactionDelayMs: {
    default: 5_000,
    min: 0,
    max: 3_600_000,
    unit: "ms",
    doc: "Delay between a log passing its threshold (or a run leaving work) and the next compaction alarm.",
  },
  compactionMaxFailures: {
    default: 3,
    min: 1,
    max: 100,
    unit: "count",
    doc: "Consecutive failed compactions after which a partition is skipped until new writes reach it.",
  },
  searchSnapshotChunkBytes: {
    default: 1_900_000,
    min: 65_536,
    max: 1_990_000,
    unit: "bytes",
    doc: "Largest snapshot chunk row; must stay under SQLite's 2 MB row limit, which local workerd does not enforce.",
  },
  refreshQueueLimit: {
    default: 10_000,
    min: 1,
    max: 1_000_000,
    unit: "count",
    doc: "Sessions queued for a refresh turn. Past it sessions are only marked stale and join the queue as it drains: nothing is dropped and no socket is closed, results just skip intermediate versions.",
  },
  refreshSliceQueryRuns: {
    default: 100,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "Query executions per refresh slice before yielding to other events (the CPU budget of a turn, counted in work: the clock stands still during synchronous work on Workers). Low: more yields; high: longer stalls for pings and mutations.",
  },
  refreshSliceTransitions: {
    default: 1_000,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "Transitions sent per refresh slice before yielding (fan-out of one shared result costs sends, not runs).",
  },
  backgroundRefreshMs: {
    default: 10_000,
    min: 500,
    max: 600_000,
    unit: "ms",
    doc: "Under pressure (other sessions queued for a refresh), a background session (a hidden page, as calmsync's client transport reports) is refreshed at most this often, always with its latest state. Without pressure it is served at once.",
  },
  resubscribeRate: {
    default: 2_000,
    min: 1,
    max: 1_000_000,
    unit: "count",
    doc: "Executions per second of queries new to a session (the query set a reconnecting client replays). Beyond it those sessions wait their turn; shared cached results cost nothing.",
  },
  resubscribeBurst: {
    default: 10_000,
    min: 1,
    max: 1_000_000,
    unit: "count",
    doc: "Bucket size for resubscribeRate.",
  },
  maxQueriesPerSession: {
    default: 1_000,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "Queries one session may subscribe to; a query set change past it is a protocol error for that socket (a client bug, not load).",
  },
  maxPendingMutationsPerSession: {
    default: 1_000,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "Mutations one session may have waiting to run; more fail individually with a clear error (Convex: TooManyConcurrentMutations).",
  },
  maxPendingBytesPerSession: {
    default: 4_194_304,
    min: 1_024,
    max: 134_217_728,
    unit: "bytes",
    doc: "Bytes of frames one session may have the object hold before they are handled: mutations waiting to run (or held while it waits for room), actions running, and frames queued behind a message still being handled (a token being checked). Past it a new mutation or action fails as that request, and a frame that would queue closes the socket with 1013 (the client reconnects with backoff); other sessions are not affected. At least maxFrameBytes.",
  },
  maxPendingBytes: {
    default: 33_554_432,
    min: 1_024,
    max: 134_217_728,
    unit: "bytes",
    doc: "The same bytes summed over every session of one object (the deployment object, and each sync shard on its own): past it any session's new mutation or action fails at once as overloaded, and a frame that would queue closes its socket with 1013, rather than being buffered toward the isolate's 128 MB (which would reset the object and drop every session). At least maxPendingBytesPerSession.",
  },
  maxTransitionBytes: {
    default: 16_777_216,
    min: 65_536,
    max: 31_457_280,
    unit: "bytes",
    doc: "Largest Transition sent to a session (the runtime refuses messages over 32 MiB). Updates that do not fit are reported failed in this one and follow in the next.",
  },
  sessionSendBytesPerSecond: {
    default: 1_048_576,
    min: 65_536,
    max: 1_073_741_824,
    unit: "bytes",
    doc: "Bytes of Transitions one session may be sent per second, with a burst of maxTransitionBytes. Past it the session's updates coalesce (it skips intermediate versions): the bound on what a client that stops reading can make the runtime buffer, since workerd does not report a socket's buffered amount.",
  },
  maxQueryInstances: {
    default: 50_000,
    min: 100,
    max: 1_000_000,
    unit: "count",
    doc: "Distinct query instances one deployment object holds for all its sessions (shared ones count once; each holds its key, arguments and read-set in memory, its result within queryResultCacheBytes). A query set change that would create more is refused: that socket is closed with 1013 and a retry hint, nothing of the change applied, and the client reconnects with backoff; other sessions are not affected. Counted before the change's removals apply.",
  },
  queryResultCacheBytes: {
    default: 16_777_216,
    min: 1_048_576,
    max: 104_857_600,
    unit: "bytes",
    doc: "Memory for the latest encoded result of shared queries, least recently used out beyond it. Too low: new subscribers and fan-outs re-run queries; too high: competes with search for the isolate's 128 MB.",
  },
  sessionAdmitRate: {
    default: 500,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "New sessions admitted per second. Beyond it upgrades get 429 with a Retry-After spread over the time the server can serve them, so a reconnect wave arrives as a ramp.",
  },
  sessionAdmitBurst: {
    default: 1_000,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "Bucket size for sessionAdmitRate (sessions admitted at once after a quiet period).",
  },
  clientSessionRate: {
    default: 50,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "New sessions per second from one client address (CF-Connecting-IP; locally all are one client). Past it that client's upgrades get 429 with Retry-After (ClientRateLimited) and nobody else's: one address cannot spend the deployment's sessionAdmitRate. Shared out among sync shards. Low: many users behind one NAT reconnect slowly after a deploy.",
  },
  clientSessionBurst: {
    default: 200,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "Bucket size for clientSessionRate: new sessions one address may open at once after a quiet period.",
  },
  clientCallRate: {
    default: 100,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "HTTP function calls (/api/query, /api/mutation, /api/action) per second from one client: its identity when signed in, else its address. Past it the call gets 429 with Retry-After (ClientRateLimited) before anything runs. High: one client's calls can fill the function lock's time.",
  },
  clientCallBurst: {
    default: 200,
    min: 1,
    max: 100_000,
    unit: "count",
    doc: "Bucket size for clientCallRate: calls one client may send at once after a quiet period.",
  },
  maxSessions: {
    default: 30_000,
    min: 1,
    max: 32_000,
    unit: "count",
    doc: "Sessions per deployment (a Durable Object accepts at most 32,768 sockets). New ones past it wait in the waiting room (429 only past maxWaitingSessions); with sync shards each admits its exact share; lowering it below the current count closes the newest sessions with 1013 and a retry hint.",
  },
  maxWaitingSessions: {
    default: 2_000,
    min: 0,
    max: 32_000,
    unit: "count",
    doc: "Sessions held in the waiting room (accepted, queries not run yet) while the deployment is full or the admission bucket is empty; beyond it new sockets get 429 with Retry-After. maxSessions plus this must stay under the 32,768 sockets a Durable Object accepts.",
  },
  waitingTimeoutMs: {
    default: 120_000,
    min: 1_000,
    max: 3_600_000,
    unit: "ms",
    doc: "How long a session may wait for room before it is told to come back later (close 1013 with a retry hint the official client backs off on).",
  },
  maxFrameBytes: {
    default: 1_048_576,
    min: 1_024,
    max: 33_554_432,
    unit: "bytes",
    doc: "Largest WebSocket frame a client may send; larger ones close that socket with a FatalError. workerd does not enforce one locally.",
  },
  idlePingMs: {
    default: 15_000,
    min: 2_000,
    max: 36_000,
    unit: "ms",
    doc: "Alarm period for idle Pings; sessions sent nothing for half of it get a Ping, so a session can go 1.5x this without a frame. The official client reconnects after 60 s of silence (30 s before convex 1.25): the default keeps it at 22.5 s, so a waiting client of either stays on its socket; the maximum at 54 s.",
  },
  maxClockAheadMs: {
    default: 60_000,
    min: 0,
    max: 86_400_000,
    unit: "ms",
    doc: "How far past the wall clock a client's maxObservedTimestamp may move the deployment's timestamp; further is refused as an internal error.",
  },
  knobHistoryRows: {
    default: 1_000,
    min: 10,
    max: 100_000,
    unit: "count",
    doc: "Knob changes kept in the history (the oldest are pruned on each change).",
  },
  mutationResultRetentionMs: {
    default: 3_600_000,
    min: 60_000,
    max: 604_800_000,
    unit: "ms",
    doc: "How long a socket mutation's outcome is kept so a retry after reconnect is applied once. Longer costs storage (one row per mutation).",
  },
  syncShards: {
    default: 1,
    min: 1,
    max: 64,
    unit: "count",
    doc: "Objects holding this deployment's client sockets (docs/SHARDS.md). 1: the deployment object holds them itself, with no extra hop. More: new sockets spread over that many sync shards; changing it moves nobody.",
  },
  maxQueriesPerShard: {
    default: 100_000,
    min: 1_000,
    max: 1_000_000,
    unit: "count",
    doc: "Distinct queries one sync shard's peer session may hold on the deployment object (the union of its clients' queries, one per caller for queries that read the identity). The shard refuses a client's query set change that would pass it (1013, that socket only); a peer session past it is refused upstream and the shard starts over.",
  },
  maxPeerFrameBytes: {
    default: 16_777_216,
    min: 1_048_576,
    max: 33_554_432,
    unit: "bytes",
    doc: "Largest frame a sync shard's peer session may send the deployment object (queries with their callers' identities); below the runtime's 32 MiB RPC limit.",
  },
  maxPeerBatchBytes: {
    default: 8_388_608,
    min: 65_536,
    max: 31_457_280,
    unit: "bytes",
    doc: "Bytes of frames one call between a sync shard and the deployment object carries, either way: a larger backlog (a resync re-adding many queries, a burst of pushes) goes in several calls, each below the runtime's 32 MiB RPC limit, in order. A frame larger than it goes alone (frames are bounded by maxPeerFrameBytes and maxTransitionBytes). Query set changes a shard sends up are also split into frames below it.",
  },
  shardResultCacheBytes: {
    default: 16_777_216,
    min: 1_048_576,
    max: 104_857_600,
    unit: "bytes",
    doc: "Memory for the results a sync shard holds for its clients' distinct queries. Past it the least recently used results that every client holding them has been sent are dropped (hash kept); one a client needs later (a new subscriber, a client that was behind) is asked for again from the deployment object. Results some client has not been sent yet are kept until its turn.",
  },
  peerModificationsPerFrame: {
    default: 200,
    min: 1,
    max: 10_000,
    unit: "count",
    doc: "Query set changes a sync shard sends up in one frame; a resync of many queries goes in several frames, each well below maxFrameBytes.",
  },
  peerRetryMinMs: {
    default: 100,
    min: 1,
    max: 60_000,
    unit: "ms",
    doc: "A sync shard's first wait after the deployment object refused to open its peer session; it doubles (with jitter) on each failure in a row, up to peerRetryMaxMs.",
  },
  peerRetryMaxMs: {
    default: 10_000,
    min: 10,
    max: 300_000,
    unit: "ms",
    doc: "The longest wait between a sync shard's attempts to open its peer session.",
  },
  authFetchTimeoutMs: {
    default: 5_000,
    min: 100,
    max: 60_000,
    unit: "ms",
    doc: "How long a fetch of an auth provider's discovery document or keys may take before the token it was for is refused (jose's default).",
  },
  authKeysMaxAgeMs: {
    default: 600_000,
    min: 10_000,
    max: 86_400_000,
    unit: "ms",
    doc: "Age after which a provider's cached keys are refetched, in the background: tokens are checked with the cached copy meanwhile.",
  },
  authKeysMaxStaleMs: {
    default: 3_600_000,
    min: 10_000,
    max: 604_800_000,
    unit: "ms",
    doc: "Age past which a provider's cached keys are no longer trusted while refreshing them fails: tokens are refused until the provider answers (a revoked key must not stay trusted because the provider is unreachable).",
  },
  authFetchFailureCooldownMs: {
    default: 5_000,
    min: 0,
    max: 300_000,
    unit: "ms",
    doc: "A failed fetch of a provider's discovery document or keys is answered again for this long without fetching, so while a provider is down sign-ins are refused at once rather than each waiting authFetchTimeoutMs.",
  },
  authDocumentMaxBytes: {
    default: 262_144,
    min: 1_024,
    max: 10_485_760,
    unit: "bytes",
    doc: "Largest discovery document or key set accepted from an auth provider; a larger answer is refused without being read.",
  },
  authKeyMissCooldownMs: {
    default: 30_000,
    min: 0,
    max: 3_600_000,
    unit: "ms",
    doc: "A token naming an unknown key id refetches the provider's keys (they may have rotated), at most this often per provider; more such tokens are refused at once.",
  },
  authVerifiedTokens: {
    default: 1_000,
    min: 0,
    max: 100_000,
    unit: "count",
    doc: "Verified tokens remembered until they expire, so a client sending one token with every HTTP request is checked once.",
  },
  devTokenTtlMs: {
    default: 300_000,
    // The official client refreshes 10 s before expiry: a shorter life would have it refetch in a loop.
    min: 15_000,
    max: 86_400_000,
    unit: "ms",
    doc: "Lifetime of tokens from the local development issuer (local dev only); the official client refreshes them 10 s before they expire.",
  },
  maxFileBytes: {
    default: DEFAULT_ENGINE_LIMITS.maxFileBytes,
    min: 1_024,
    // R2's largest single upload.
    max: 5_368_709_120,
    unit: "bytes",
    doc: "Bytes of one stored file: an upload past it is refused with 413 before a byte is stored; `ctx.storage.store` past it fails. Cloudflare also caps request bodies by plan (100 MB on Free and Pro).",
  },
  uploadUrlTtlMs: {
    default: 3_600_000,
    min: 10_000,
    max: 604_800_000,
    unit: "ms",
    doc: "How long an upload URL from `ctx.storage.generateUploadUrl()` stays valid (Convex: one hour). Each URL takes one upload.",
  },
  uploadTimeoutMs: {
    default: 900_000,
    min: 10_000,
    max: 86_400_000,
    unit: "ms",
    doc: "How long an upload may stream before it is abandoned: the bytes of one that never finished are deleted after this (a Worker that died mid-upload leaves no orphan).",
  },
  environmentVariablesMax: {
    default: 100,
    min: 1,
    max: 1_000,
    unit: "count",
    doc: "Environment variables one deployment may set (Convex: 100); setting another past it is refused. Every run holds them in memory.",
  },
  environmentValueMaxBytes: {
    default: 8_192,
    min: 64,
    max: 65_536,
    unit: "bytes",
    doc: "UTF-8 bytes of one environment variable's value (Convex: 8 KiB); a longer one is refused.",
  },
  environmentHistoryRows: {
    default: 1_000,
    min: 10,
    max: 100_000,
    unit: "count",
    doc: "Environment variable changes kept in the audit (who and when, never the value); the oldest are pruned on each change.",
  },
  logRingEntries: {
    default: 1_000,
    min: 10,
    max: 100_000,
    unit: "count",
    doc: "Function runs the operator's log keeps in memory (`/api/admin/logs`); the oldest go first. A tail that falls further behind is told how many it missed.",
  },
  logRingBytes: {
    default: 4_194_304,
    // One run prints at most 32,768 characters (64 KiB as UTF-16): the smallest ring still holds one whole.
    min: 131_072,
    max: 67_108_864,
    unit: "bytes",
    doc: "Memory the operator's log may hold (its lines as UTF-16, plus a little per run); the oldest runs go first. Counts against the isolate's 128 MB.",
  },
  maxLogStreams: {
    default: 10,
    min: 1,
    max: 1_000,
    unit: "count",
    doc: "Open tails of `/api/admin/logs` per deployment (dashboards, `npm run logs`); one more ends the oldest (a closed dashboard's tail is not known to be gone until written to). Each keeps the object awake while open.",
  },
  logStreamMaxMs: {
    default: 300_000,
    min: 1_000,
    max: 3_600_000,
    unit: "ms",
    doc: "How long one tail of `/api/admin/logs` stays open; then it ends with where to resume (`?since=`), so a forgotten tail does not keep the object awake for ever.",
  },
  snapshotBatchBytes: {
    default: 1_048_576,
    min: 65_536,
    max: 16_777_216,
    unit: "bytes",
    doc: "Bytes of documents a snapshot export or import holds at once (a page read, a batch staged, a batch applied), whatever the snapshot's size. A batch holds at least one line, however large (lines are capped at twice maxDocumentBytes). Low: more round trips; high: more memory per batch (the isolate has 128 MB).",
  },
} as const satisfies Record<string, KnobDefinition>;

export type KnobName = keyof typeof KNOBS;
export type KnobValues = { [K in KnobName]: number };

/**
 * Rules between knobs, checked on every change through the API (the change
 * is refused, naming the rule) and on start (a stored override that breaks
 * one falls back to its default with a warning).
 */
export const KNOB_INVARIANTS: readonly { knobs: readonly KnobName[]; rule: string; holds: (k: KnobValues) => boolean }[] = [
  {
    knobs: ["maxResultBytes", "maxTransitionBytes"],
    rule: "maxResultBytes must leave room in maxTransitionBytes (at least 64 KiB more), or a result could never be sent",
    holds: (k) => k.maxResultBytes + 65_536 <= k.maxTransitionBytes,
  },
  {
    knobs: ["maxSessions", "maxWaitingSessions"],
    rule: "maxSessions plus maxWaitingSessions must not exceed the 32,768 sockets one Durable Object accepts",
    holds: (k) => k.maxSessions + k.maxWaitingSessions <= 32_768,
  },
  {
    knobs: ["maxFrameBytes", "maxPendingBytesPerSession"],
    rule: "maxPendingBytesPerSession must be at least maxFrameBytes, or the largest mutation a client may send could never be accepted",
    holds: (k) => k.maxFrameBytes <= k.maxPendingBytesPerSession,
  },
  {
    knobs: ["maxPendingBytesPerSession", "maxPendingBytes"],
    rule: "maxPendingBytes (the object's) must be at least maxPendingBytesPerSession (one session's)",
    holds: (k) => k.maxPendingBytesPerSession <= k.maxPendingBytes,
  },
  {
    knobs: ["maxDocumentBytes", "maxBytesWritten"],
    rule: "maxDocumentBytes must not exceed maxBytesWritten, or the largest document could never be written",
    holds: (k) => k.maxDocumentBytes <= k.maxBytesWritten,
  },
  {
    knobs: ["maxDocumentBytes", "maxBytesRead"],
    rule: "maxDocumentBytes must not exceed maxBytesRead, or the largest document could never be read",
    holds: (k) => k.maxDocumentBytes <= k.maxBytesRead,
  },
];

export const DEFAULT_KNOBS: Readonly<KnobValues> = Object.fromEntries(Object.entries(KNOBS).map(([name, knob]) => [name, knob.default])) as KnobValues;


/** The first rule `values` break, or null. */
export function brokenInvariant(values: KnobValues): string | null {
  return KNOB_INVARIANTS.find((invariant) => !invariant.holds(values))?.rule ?? null;
}

export function isKnobName(name: string): name is KnobName {
  return Object.hasOwn(KNOBS, name);
}
