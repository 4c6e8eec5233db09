/**
 * Engine behaviour every `DocumentStore` must give: run against the in-memory
 * store in Node (src/engine/engine.test.ts) and against the Durable Object's
 * SQLite store inside workerd (test/workers/engine-sqlite.test.ts).
 */
import { expect } from "vitest";
import {
  actionGeneric as action,
  defineSchema,
  defineTable,
  internalMutationGeneric as internalMutation,
  makeFunctionReference,
  mutationGeneric as mutation,
  paginationOptsValidator,
  queryGeneric as query,
} from "convex/server";
import { ConvexError, v } from "convex/values";
import {
  Engine,
  FileStorage,
  MemoryBlobStore,
  newUploadSecret,
  UploadTokens,
  registerModules,
  ScheduledJobs,
  Schema,
  SubscriptionIndex,
  FunctionError,
  DEFAULT_ENGINE_LIMITS,
  type EngineLimits,
  type Document,
  type DocumentStore,
  type Value,
} from "../../src/engine/index.ts";

export const schemaDefinition = defineSchema({
  messages: defineTable({ chatId: v.string(), author: v.string(), body: v.string(), n: v.optional(v.number()) }).index("by_chat", ["chatId"]),
  users: defineTable({ name: v.string(), age: v.number() }).index("by_age", ["age"]),
});
export const schema = new Schema(schemaDefinition);

const messages = {
  list: query({
    args: { chatId: v.string(), limit: v.optional(v.number()) },
    handler: (ctx, { chatId, limit }) =>
      ctx.db
        .query("messages")
        .withIndex("by_chat", (q) => q.eq("chatId", chatId))
        .order("desc")
        .take(limit ?? 20),
  }),
  ascending: query({
    args: { chatId: v.string(), limit: v.number() },
    handler: (ctx, { chatId, limit }) =>
      ctx.db
        .query("messages")
        .withIndex("by_chat", (q) => q.eq("chatId", chatId))
        .take(limit),
  }),
  byAuthor: query({
    args: { chatId: v.string(), author: v.string() },
    handler: (ctx, { chatId, author }) =>
      ctx.db
        .query("messages")
        .withIndex("by_chat", (q) => q.eq("chatId", chatId))
        .filter((q) => q.eq(q.field("author"), author))
        .collect(),
  }),
  get: query({ args: { id: v.id("messages") }, handler: (ctx, { id }) => ctx.db.get(id) }),
  send: mutation({
    args: { chatId: v.string(), author: v.string(), body: v.string() },
    handler: (ctx, args) => ctx.db.insert("messages", args),
  }),
  sendMany: mutation({
    args: { chatId: v.string(), count: v.number() },
    handler: async (ctx, { chatId, count }) => {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) ids.push(await ctx.db.insert("messages", { chatId, author: "bulk", body: `m${i}`, n: i }));
      return ids;
    },
  }),
  edit: mutation({
    args: { id: v.id("messages"), body: v.string() },
    handler: (ctx, { id, body }) => ctx.db.patch(id, { body }),
  }),
  remove: mutation({ args: { id: v.id("messages") }, handler: (ctx, { id }) => ctx.db.delete(id) }),
  /** Writes, reads its own writes through an index, then throws. */
  sendThenFail: mutation({
    args: { chatId: v.string() },
    handler: async (ctx, { chatId }) => {
      await ctx.db.insert("messages", { chatId, author: "x", body: "doomed" });
      const seen = await ctx.db
        .query("messages")
        .withIndex("by_chat", (q) => q.eq("chatId", chatId))
        .collect();
      throw new ConvexError({ seen: seen.length });
    },
  }),
  /** Inserts, patches and deletes, checking each read sees the write before it. */
  readYourWrites: mutation({
    args: { chatId: v.string() },
    handler: async (ctx, { chatId }) => {
      const a = await ctx.db.insert("messages", { chatId, author: "a", body: "one" });
      const b = await ctx.db.insert("messages", { chatId, author: "b", body: "two" });
      await ctx.db.patch(a, { body: "one, edited" });
      await ctx.db.delete(b);
      const seen = await ctx.db
        .query("messages")
        .withIndex("by_chat", (q) => q.eq("chatId", chatId))
        .collect();
      return { bodies: seen.map((m) => m.body), edited: (await ctx.db.get(a))?.body ?? null, deleted: await ctx.db.get(b) };
    },
  }),
  sneakyWrite: query({
    args: {},
    handler: async (ctx) => (ctx.db as unknown as { insert: (t: string, d: object) => Promise<string> }).insert("messages", {}),
  }),
  noop: mutation({ args: { id: v.id("messages") }, handler: async (ctx, { id }) => ctx.db.patch(id, {}) }),
  /** Inserts `count` copies of `body`; catches the budget error at `catchAt` and commits what came before. */
  bulkInsert: mutation({
    args: { chatId: v.string(), body: v.string(), count: v.number(), catchAt: v.optional(v.number()) },
    handler: async (ctx, { chatId, body, count, catchAt }) => {
      let written = 0;
      for (let i = 0; i < count; i++) {
        try {
          await ctx.db.insert("messages", { chatId, author: "bulk", body, n: i });
          written++;
        } catch (error) {
          if (i !== catchAt) throw error;
          return { written, caught: (error as Error).message };
        }
      }
      return { written, caught: null };
    },
  }),
  /** The chat's history, newest first, a page at a time. */
  history: query({
    args: { chatId: v.string(), paginationOpts: paginationOptsValidator },
    handler: (ctx, { chatId, paginationOpts }) =>
      ctx.db
        .query("messages")
        .withIndex("by_chat", (q) => q.eq("chatId", chatId))
        .order("desc")
        .paginate(paginationOpts),
  }),
  /** Two paginated queries in one function: Convex refuses the second. */
  twoPages: query({
    args: {},
    handler: async (ctx) => {
      await ctx.db.query("messages").paginate({ numItems: 1, cursor: null });
      return ctx.db.query("users").paginate({ numItems: 1, cursor: null });
    },
  }),
  /** Filters with arithmetic, negation and a comparison across types (numbers sort before strings). */
  arithmetic: query({
    args: { chatId: v.string() },
    handler: (ctx, { chatId }) =>
      ctx.db
        .query("messages")
        .withIndex("by_chat", (q) => q.eq("chatId", chatId))
        .filter((q) => q.and(q.lt(q.neg(q.field("n")), -2), q.eq(q.mod(q.field("n"), 2), 1), q.lt(q.field("n"), "a string")))
        .collect(),
  }),
  /** Adds a number to a string: an evaluation error, as in Convex. */
  badArithmetic: query({
    args: {},
    handler: (ctx) =>
      ctx.db
        .query("messages")
        .filter((q) => q.gt(q.add(q.field("n"), q.field("body")), 0))
        .collect(),
  }),
  /** Schedules `deliver` after `delayMs`; with `thenFail`, throws after scheduling (so nothing is scheduled). */
  sendLater: mutation({
    args: { chatId: v.string(), body: v.string(), delayMs: v.number(), thenFail: v.optional(v.boolean()) },
    handler: async (ctx, { chatId, body, delayMs, thenFail }) => {
      const id = await ctx.scheduler.runAfter(delayMs, makeFunctionReference<"mutation">("messages:deliver"), { chatId, body });
      if (thenFail) throw new ConvexError("changed my mind");
      return id;
    },
  }),
  cancelLater: mutation({ args: { id: v.id("_scheduled_functions") }, handler: (ctx, { id }) => ctx.scheduler.cancel(id) }),
  deliver: internalMutation({
    args: { chatId: v.string(), body: v.string() },
    handler: async (ctx, { chatId, body }) => {
      if (body === "boom") throw new Error("delivery failed");
      await ctx.db.insert("messages", { chatId, author: "scheduler", body });
    },
  }),
  jobs: query({ args: {}, handler: (ctx) => ctx.db.system.query("_scheduled_functions").collect() }),
  /** Prints, then reads (or fails). */
  chatty: query({
    args: { fail: v.boolean() },
    handler: async (ctx, { fail }) => {
      console.log("looking at", { chat: "c" }, 3n);
      console.warn("careful");
      if (fail) throw new Error("gave up");
      return (await ctx.db.query("messages").take(1)).length;
    },
  }),
  /** Lists Convex's system tables (an admin page does), which nothing writes yet. */
  systemTables: query({
    args: {},
    handler: async (ctx) => ({
      scheduled: await ctx.db.system.query("_scheduled_functions").collect(),
      files: await ctx.db.system.query("_storage").collect(),
    }),
  }),
  /** Returns whatever it is given (for argument and result budgets). */
  echo: query({ args: { value: v.any() }, handler: (_ctx, { value }) => value }),
  /** File storage: a text file stored from an action, its rows, and deletes (one that changes its mind). */
  storeText: action({ args: { text: v.string() }, handler: (ctx, { text }) => ctx.storage.store(new Blob([text], { type: "text/plain" })) }),
  files: query({
    args: { id: v.optional(v.id("_storage")) },
    handler: async (ctx, { id }) => ({
      rows: await ctx.db.system.query("_storage").collect(),
      one: id ? await ctx.db.system.get(id) : null,
      metadata: id ? await ctx.storage.getMetadata(id) : null,
      url: id ? await ctx.storage.getUrl(id) : null,
    }),
  }),
  deleteFile: mutation({
    args: { id: v.id("_storage"), fail: v.boolean() },
    handler: async (ctx, { id, fail }) => {
      await ctx.storage.delete(id);
      if (fail) throw new Error("not after all");
    },
  }),
};

const users = {
  inRange: query({
    args: { min: v.number(), max: v.number() },
    handler: (ctx, { min, max }) =>
      ctx.db
        .query("users")
        .withIndex("by_age", (q) => q.gte("age", min).lt("age", max))
        .collect(),
  }),
  add: mutation({ args: { name: v.string(), age: v.number() }, handler: (ctx, args) => ctx.db.insert("users", args) }),
};

export const functions = registerModules({ messages, users });

export type EngineCase = (store: DocumentStore) => Promise<void>;

function engineOn(store: DocumentStore, now = () => 1_700_000_000_000, limits: Partial<EngineLimits> = {}, files: FileStorage | null = null) {
  return new Engine({ schema, functions, store, now, files, limits: () => ({ ...DEFAULT_ENGINE_LIMITS, ...limits }) });
}

async function expectFunctionError(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, "expected the call to fail").toBeInstanceOf(FunctionError);
  expect((error as FunctionError).code).toBe(code);
  expect((error as FunctionError).message).toMatch(message);
}

/** `store`, with the ids its `getDocument` was asked for recorded in `reads`. */
function countingReads(store: DocumentStore): { store: DocumentStore; reads: string[] } {
  const reads: string[] = [];
  const counted = new Proxy(store, {
    get(target, name) {
      if (name === "getDocument")
        return (id: string) => {
          reads.push(id);
          return target.getDocument(id);
        };
      const value = Reflect.get(target, name, target) as unknown;
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: counted, reads };
}

export const engineCases: Record<string, EngineCase> = {
  async "an insert reads no earlier version of the id it mints; patch and delete read theirs once, and the document count stays exact"(store) {
    const { store: counted, reads } = countingReads(store);
    const engine = engineOn(counted);
    const { value: ids } = await engine.runMutation("messages:sendMany", { chatId: "c", count: 3 });
    const { value: inPlace } = await engine.runMutation("messages:readYourWrites", { chatId: "d" });
    expect(inPlace).toMatchObject({ bodies: ["one, edited"], edited: "one, edited", deleted: null });
    expect(reads).toEqual([]);
    expect(store.documentCount()).toBe(4);
    const [first, second] = ids as string[];
    await engine.runMutation("messages:edit", { id: first!, body: "changed" });
    await engine.runMutation("messages:remove", { id: second! });
    expect(reads).toEqual([first, second]);
    expect(store.documentCount()).toBe(3);
    expect(((await engine.runQuery("messages:list", { chatId: "c" })).value as Document[]).map((m) => m.body)).toEqual(["m2", "changed"]);
  },

  async "a mutation past the bytes-written budget fails whole and names the limit"(store) {
    const engine = engineOn(store, undefined, { maxBytesWritten: 100_000 });
    // 10 documents of ~20 KB: 200 KB, over 100 KB.
    await expectFunctionError(
      engine.runMutation("messages:bulkInsert", { chatId: "c", body: "x".repeat(20_000), count: 10 }),
      "LimitExceeded",
      /Too many bytes written: \d+ bytes in one mutation, limit 100000 \(knob maxBytesWritten\)/,
    );
    expect(store.documentCount()).toBe(0);
    // A handler that catches the budget error keeps a consistent overlay: what came before commits, nothing half-written.
    const { value } = await engine.runMutation("messages:bulkInsert", { chatId: "c", body: "x".repeat(20_000), count: 10, catchAt: 4 });
    expect(value).toMatchObject({ written: 4, caught: expect.stringMatching(/maxBytesWritten/) });
    expect(store.documentCount()).toBe(4);
    const listed = (await engine.runQuery("messages:list", { chatId: "c" })).value as Document[];
    expect(listed.map((m) => m.n)).toEqual([3, 2, 1, 0]);
  },

  async "a function past the bytes-read budget fails and names the limit"(store) {
    const writer = engineOn(store);
    for (let i = 0; i < 5; i++) await writer.runMutation("messages:send", { chatId: "c", author: "a", body: "y".repeat(30_000) });
    const reader = engineOn(store, undefined, { maxBytesRead: 100_000 });
    await expectFunctionError(
      reader.runQuery("messages:list", { chatId: "c" }),
      "LimitExceeded",
      /Too many bytes read: \d+ bytes in one function, limit 100000 \(knob maxBytesRead\)/,
    );
    expect(((await reader.runQuery("messages:list", { chatId: "c", limit: 3 })).value as Document[]).length).toBe(3);
  },

  async "argument and result budgets, and the nesting depth, name their knobs"(store) {
    const engine = engineOn(store, undefined, { maxArgumentBytes: 10_000, maxResultBytes: 10_000, maxValueDepth: 8 });
    await expectFunctionError(
      engine.runQuery("messages:echo", { value: "z".repeat(20_000) }),
      "LimitExceeded",
      /Arguments of messages:echo are too large: 200\d\d bytes, limit 10000 \(knob maxArgumentBytes\)/,
    );
    let deep: Value = 1;
    for (let i = 0; i < 8; i++) deep = [deep];
    await expectFunctionError(engine.runQuery("messages:echo", { value: deep }), "InvalidArgument", /nested more than 8 levels deep \(knob maxValueDepth\)/);
    const writer = engineOn(store);
    for (let i = 0; i < 3; i++) await writer.runMutation("messages:send", { chatId: "c", author: "a", body: "w".repeat(5_000) });
    await expectFunctionError(
      engine.runQuery("messages:list", { chatId: "c" }),
      "LimitExceeded",
      /The result of messages:list is too large: \d+ bytes, limit 10000 \(knob maxResultBytes\)/,
    );
  },

  async "a mutation reads its own inserts, patches and deletes"(store) {
    const engine = engineOn(store);
    const { value } = await engine.runMutation("messages:readYourWrites", { chatId: "c" });
    expect(value).toEqual({ bodies: ["one, edited"], edited: "one, edited", deleted: null });
    const listed = await engine.runQuery("messages:list", { chatId: "c" });
    expect((listed.value as Document[]).map((m) => m.body)).toEqual(["one, edited"]);
  },

  async "a throwing mutation writes nothing and keeps the timestamp"(store) {
    const engine = engineOn(store);
    await engine.runMutation("messages:send", { chatId: "c", author: "a", body: "kept" });
    const tsBefore = store.lastTimestamp();
    const error = await engine.runMutation("messages:sendThenFail", { chatId: "c" }).catch((e) => e);
    expect(error).toBeInstanceOf(FunctionError);
    expect((error as FunctionError).data).toEqual({ seen: 2 }); // it saw its own doomed insert
    expect(store.lastTimestamp()).toBe(tsBefore);
    expect(store.documentCount()).toBe(1);
    const listed = await engine.runQuery("messages:list", { chatId: "c" });
    expect((listed.value as Document[]).map((m) => m.body)).toEqual(["kept"]);
    expect(store.commitCount()).toBe(1);
  },

  async "timestamps strictly increase even when the clock stands still or goes back"(store) {
    let clock = 1_700_000_000_000;
    const engine = engineOn(store, () => clock);
    const seen: bigint[] = [];
    for (let i = 0; i < 5; i++) {
      seen.push((await engine.runMutation("messages:send", { chatId: "c", author: "a", body: `${i}` })).ts);
      if (i === 2) clock -= 10_000;
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]! > seen[i - 1]!).toBe(true);
    const docs = (await engine.runQuery("messages:ascending", { chatId: "c", limit: 10 })).value as Document[];
    expect(docs.map((d) => d.body)).toEqual(["0", "1", "2", "3", "4"]);
    for (let i = 1; i < docs.length; i++) expect(docs[i]!._creationTime > docs[i - 1]!._creationTime).toBe(true);
  },

  async "index ranges, order, filter, get"(store) {
    const engine = engineOn(store);
    for (const [name, age] of [
      ["a", 10],
      ["b", 20],
      ["c", 30],
      ["d", 40],
    ] as const)
      await engine.runMutation("users:add", { name, age });
    const inRange = (await engine.runQuery("users:inRange", { min: 20, max: 40 })).value as Document[];
    expect(inRange.map((u) => u.name)).toEqual(["b", "c"]);
    await engine.runMutation("messages:send", { chatId: "c", author: "ann", body: "1" });
    const id = (await engine.runMutation("messages:send", { chatId: "c", author: "bob", body: "2" })).value as string;
    await engine.runMutation("messages:send", { chatId: "d", author: "ann", body: "3" });
    const anns = (await engine.runQuery("messages:byAuthor", { chatId: "c", author: "ann" })).value as Document[];
    expect(anns.map((m) => m.body)).toEqual(["1"]);
    expect(((await engine.runQuery("messages:get", { id })).value as Document).body).toBe("2");
  },

  async "a query cannot write: its ctx.db has no write methods, and nothing is written"(store) {
    const engine = engineOn(store);
    await expectFunctionError(engine.runQuery("messages:sneakyWrite", {}), "UserError", /insert is not a function/);
    expect(store.documentCount()).toBe(0);
  },

  async "unknown functions and invalid arguments name the problem"(store) {
    const engine = engineOn(store);
    expect(() => engine.resolve("messages:nope", "query")).toThrow(/Could not find public function for 'messages:nope'/);
    expect(() => engine.resolve("messages:send", "query")).toThrow(/it is a mutation/);
    await expectFunctionError(
      engine.runMutation("messages:send", { chatId: 5, author: "a", body: "b" }),
      "InvalidArgument",
      /ArgumentValidationError: Value does not match validator\.\n\nPath: \.chatId\nValue: 5\nValidator: v\.string\(\)/,
    );
    await expectFunctionError(
      engine.runMutation("messages:send", { chatId: "c", author: "a" }),
      "InvalidArgument",
      /Object is missing the required field `body`/,
    );
    await expectFunctionError(
      engine.runMutation("messages:send", { chatId: "c", author: "a", body: "b", extra: 1 }),
      "InvalidArgument",
      /Object contains extra field `extra`/,
    );
    expect(store.documentCount()).toBe(0);
  },

  async "a no-op mutation commits nothing"(store) {
    const engine = engineOn(store);
    const id = (await engine.runMutation("messages:send", { chatId: "c", author: "a", body: "b" })).value as string;
    const ts = store.lastTimestamp();
    const result = await engine.runMutation("messages:noop", { id });
    expect(result.writes).toEqual([]);
    expect(result.ts).toBe(ts);
    expect(store.lastTimestamp()).toBe(ts);
    expect(store.commitCount()).toBe(1);
  },

  async "take(n) records only the interval up to the last key returned"(store) {
    const engine = engineOn(store);
    await engine.runMutation("messages:sendMany", { chatId: "c", count: 30 });
    const index = new SubscriptionIndex<string>();
    const newest = await engine.runQuery("messages:list", { chatId: "c", limit: 20 });
    const oldest = await engine.runQuery("messages:ascending", { chatId: "c", limit: 5 });
    const otherChat = await engine.runQuery("messages:list", { chatId: "other" });
    index.add("newest20", newest.readSet);
    index.add("oldest5", oldest.readSet);
    index.add("other", otherChat.readSet);

    const docs = (await engine.runQuery("messages:ascending", { chatId: "c", limit: 30 })).value as Document[];
    // Editing the 10th-oldest message is outside both clipped read-sets.
    const tenth = await engine.runMutation("messages:edit", { id: docs[9]!._id, body: "edited" });
    expect(index.affected(tenth.writes)).toEqual(new Set());
    // The 3rd-oldest is read by oldest5 only; the 25th by newest20 only.
    expect(index.affected((await engine.runMutation("messages:edit", { id: docs[2]!._id, body: "x" })).writes)).toEqual(new Set(["oldest5"]));
    expect(index.affected((await engine.runMutation("messages:edit", { id: docs[24]!._id, body: "x" })).writes)).toEqual(new Set(["newest20"]));
    // A new message in chat c sorts newest: inside newest20's range, outside oldest5's.
    const sent = await engine.runMutation("messages:send", { chatId: "c", author: "a", body: "new" });
    expect(index.affected(sent.writes)).toEqual(new Set(["newest20"]));
    // A message in another chat reaches only that chat's (empty, unbounded) subscription.
    const elsewhere = await engine.runMutation("messages:send", { chatId: "other", author: "a", body: "hi" });
    expect(index.affected(elsewhere.writes)).toEqual(new Set(["other"]));
    // A chat nobody reads touches nothing.
    const nobody = await engine.runMutation("messages:send", { chatId: "nobody", author: "a", body: "hi" });
    expect(index.affected(nobody.writes)).toEqual(new Set());
  },

  async "a get records its document only"(store) {
    const engine = engineOn(store);
    const ids = (await engine.runMutation("messages:sendMany", { chatId: "c", count: 2 })).value as string[];
    const read = await engine.runQuery("messages:get", { id: ids[0]! });
    const index = new SubscriptionIndex<string>();
    index.add("get", read.readSet);
    expect(index.affected((await engine.runMutation("messages:edit", { id: ids[1]!, body: "x" })).writes).size).toBe(0);
    expect(index.affected((await engine.runMutation("messages:edit", { id: ids[0]!, body: "x" })).writes)).toEqual(new Set(["get"]));
    expect(index.affected((await engine.runMutation("messages:remove", { id: ids[0]! })).writes)).toEqual(new Set(["get"]));
  },

  async "paginate: exclusive cursors, and the journal pins the first page so a new message grows it instead of pushing one out"(store) {
    const engine = engineOn(store);
    await engine.runMutation("messages:sendMany", { chatId: "c", count: 12 });
    const history = engine.resolve("messages:history", "query");
    const first = await engine.executeQuery(history, { chatId: "c", paginationOpts: { numItems: 5, cursor: null } });
    const page = first.value as { page: Document[]; isDone: boolean; continueCursor: string };
    expect(page.page.map((m) => m.n)).toEqual([11, 10, 9, 8, 7]);
    expect(page.isDone).toBe(false);
    expect(first.journal).toEqual(expect.any(String));
    const second = (await engine.runQuery("messages:history", { chatId: "c", paginationOpts: { numItems: 5, cursor: page.continueCursor } }))
      .value as typeof page;
    expect(second.page.map((m) => m.n)).toEqual([6, 5, 4, 3, 2]);
    // A new message arrives at the top: re-run with the journal, the first page keeps its last row and grows.
    await engine.runMutation("messages:send", { chatId: "c", author: "a", body: "newest" });
    const rerun = await engine.executeQuery(history, { chatId: "c", paginationOpts: { numItems: 5, cursor: null } }, first.journal);
    expect((rerun.value as typeof page).page.map((m) => m.body)).toEqual(["newest", "m11", "m10", "m9", "m8", "m7"]);
    expect(rerun.journal).toBe(first.journal);
    // Without the journal it is a fresh first page of 5 (the one a new subscriber gets).
    const fresh = (await engine.runQuery("messages:history", { chatId: "c", paginationOpts: { numItems: 5, cursor: null } })).value as typeof page;
    expect(fresh.page.map((m) => m.body)).toEqual(["newest", "m11", "m10", "m9", "m8"]);
    // The last page: exhausted, isDone, and asking past the end is an empty done page.
    const last = (await engine.runQuery("messages:history", { chatId: "c", paginationOpts: { numItems: 5, cursor: second.continueCursor } }))
      .value as typeof page;
    expect(last.page.map((m) => m.n)).toEqual([1, 0]);
    expect(last.isDone).toBe(true);
    const past = (await engine.runQuery("messages:history", { chatId: "c", paginationOpts: { numItems: 5, cursor: last.continueCursor } }))
      .value as typeof page;
    expect(past).toMatchObject({ page: [], isDone: true });
  },

  async "a cursor from another query is InvalidCursor; a second paginate in one function is refused"(store) {
    const engine = engineOn(store);
    await engine.runMutation("messages:sendMany", { chatId: "c", count: 3 });
    const page = (await engine.runQuery("messages:history", { chatId: "c", paginationOpts: { numItems: 1, cursor: null } })).value as {
      continueCursor: string;
    };
    await expectFunctionError(
      engine.runQuery("messages:history", { chatId: "other", paginationOpts: { numItems: 1, cursor: page.continueCursor } }),
      "BadRequest",
      /InvalidCursor/,
    );
    await expectFunctionError(
      engine.runQuery("messages:history", { chatId: "c", paginationOpts: { numItems: 1, cursor: "garbage" } }),
      "BadRequest",
      /InvalidCursor/,
    );
    await expectFunctionError(engine.runQuery("messages:twoPages", {}), "BadRequest", /MultiplePaginatedDatabaseQueries/);
  },

  async "a page's read-set ends at its last row: a write past it re-runs nothing"(store) {
    const engine = engineOn(store);
    const ids = (await engine.runMutation("messages:sendMany", { chatId: "c", count: 10 })).value as string[];
    const page = await engine.runQuery("messages:history", { chatId: "c", paginationOpts: { numItems: 3, cursor: null } });
    const index = new SubscriptionIndex<string>();
    index.add("page", page.readSet);
    expect(index.affected((await engine.runMutation("messages:edit", { id: ids[2]!, body: "older than the page" })).writes).size).toBe(0);
    expect(index.affected((await engine.runMutation("messages:edit", { id: ids[8]!, body: "on the page" })).writes)).toEqual(new Set(["page"]));
  },

  async "filter expressions: arithmetic, negation, Convex's order across types, and type errors"(store) {
    const engine = engineOn(store);
    await engine.runMutation("messages:sendMany", { chatId: "c", count: 8 });
    const odd = (await engine.runQuery("messages:arithmetic", { chatId: "c" })).value as Document[];
    expect(odd.map((m) => m.n)).toEqual([3, 5, 7]);
    await expectFunctionError(engine.runQuery("messages:badArithmetic", {}), "BadRequest", /add needs two int64s or two float64s/);
  },

  async "system tables read as empty through db.system"(store) {
    const engine = engineOn(store);
    expect((await engine.runQuery("messages:systemTables", {})).value).toEqual({ scheduled: [], files: [] });
  },

  async "_storage: an action's file is a system row, read by db.system and ctx.storage; its bytes go only with a committed delete"(store) {
    const blobs = new MemoryBlobStore();
    const files = new FileStorage({
      blobs,
      tokens: new UploadTokens({ secret: newUploadSecret, ttlMs: () => 60_000, now: Date.now }),
      baseUrl: () => "https://d.example",
    });
    const engine = engineOn(store, Date.now, {}, files);
    const id = (await engine.runAction("messages:storeText", { text: "notes" })).value as string;
    const sha256 = btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("notes")))));
    const row = { _id: id, _creationTime: expect.any(Number), sha256, size: 5, contentType: "text/plain" };
    expect((await engine.runQuery("messages:files", { id })).value).toEqual({
      rows: [row],
      one: row,
      metadata: { storageId: id, sha256, size: 5, contentType: "text/plain" },
      url: `https://d.example/api/storage/${id}`,
    });
    await expect(engine.runMutation("messages:deleteFile", { id, fail: true })).rejects.toThrow(/not after all/);
    expect(blobs.blobs.has(id)).toBe(true);
    expect(((await engine.runQuery("messages:files", {})).value as { rows: unknown[] }).rows).toHaveLength(1);
    await engine.runMutation("messages:deleteFile", { id, fail: false });
    await Promise.resolve();
    expect(blobs.blobs.has(id)).toBe(false);
    expect((await engine.runQuery("messages:files", { id })).value).toEqual({ rows: [], one: null, metadata: null, url: null });
  },

  async "scheduled mutations: written with the scheduling mutation, run once when due, in due order; cancel and failures recorded"(store) {
    // convex/server stamps a job with the real clock (Date.now() + delay), so this clock starts there.
    let clock = Date.now();
    const start = clock;
    const near = (value: number | null, expected: number) => expect(value).toSatisfy((v: number | null) => v !== null && v >= expected && v < expected + 1_000);
    const engine = engineOn(store, () => clock);
    const jobs = new ScheduledJobs(engine, { now: () => clock, maxPerRun: () => 10 });
    const list = async () => ((await engine.runQuery("messages:list", { chatId: "c" })).value as Document[]).map((m) => m.body);
    const states = async () =>
      Object.fromEntries(
        ((await engine.runQuery("messages:jobs", {})).value as Document[]).map((j) => [
          (j.args as { body: string }[])[0]!.body,
          (j.state as { kind: string }).kind,
        ]),
      );
    // Throwing after scheduling schedules nothing.
    await expectFunctionError(
      engine.runMutation("messages:sendLater", { chatId: "c", body: "never", delayMs: 0, thenFail: true }),
      "UserError",
      /changed my mind/,
    );
    expect(await states()).toEqual({});
    // Clients cannot call the internal target; the scheduler can.
    await expectFunctionError(engine.runMutation("messages:deliver", { chatId: "c", body: "direct" }), "FunctionNotFound", /messages:deliver/);
    await engine.runMutation("messages:sendLater", { chatId: "c", body: "second", delayMs: 2_000 });
    await engine.runMutation("messages:sendLater", { chatId: "c", body: "first", delayMs: 1_000 });
    const canceled = (await engine.runMutation("messages:sendLater", { chatId: "c", body: "canceled", delayMs: 500 })).value as string;
    await engine.runMutation("messages:sendLater", { chatId: "c", body: "boom", delayMs: 3_000 });
    await engine.runMutation("messages:cancelLater", { id: canceled });
    near(jobs.nextDue(), start + 1_000);
    near(await jobs.runDue(), start + 1_000); // nothing due yet
    expect(await list()).toEqual([]);
    clock = start + 2_900;
    near(await jobs.runDue(), start + 3_000); // ran first and second; boom is next
    expect(await list()).toEqual(["second", "first"]);
    clock = start + 5_000;
    expect(await jobs.runDue()).toBeNull();
    expect(await states()).toEqual({ first: "success", second: "success", canceled: "canceled", boom: "failed" });
    // Ran once: running again changes nothing.
    await jobs.runDue();
    expect(await list()).toEqual(["second", "first"]);
    // A job's id is no message id: the argument validator refuses it before anything runs.
    await expectFunctionError(engine.runMutation("messages:edit", { id: canceled, body: "x" }), "InvalidArgument", /Validator: v\.id\("messages"\)/);
  },

  async "console output of a run comes back as Convex log lines, with results and failures"(store) {
    const engine = engineOn(store);
    const result = await engine.runQuery("messages:chatty", { fail: false });
    expect(result.logLines).toEqual(['[LOG] looking at {"chat":"c"} 3n', "[WARN] careful"]);
    const error = (await engine.runQuery("messages:chatty", { fail: true }).catch((e: unknown) => e)) as FunctionError;
    expect(error.message).toMatch(/gave up/);
    expect(error.logLines).toEqual(['[LOG] looking at {"chat":"c"} 3n', "[WARN] careful"]);
    // Another run starts with no lines of its own.
    expect((await engine.runQuery("messages:list", { chatId: "c" })).logLines).toEqual([]);
  },
};
