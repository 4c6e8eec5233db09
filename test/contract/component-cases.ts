/**
 * Components as every `DocumentStore` must give them (the memory store in
 * Node: src/engine/components.test.ts; Durable Object SQLite in workerd:
 * test/workers/components-sqlite.test.ts): two instances of one component
 * beside an app, written here with convex/server's own builders. What Convex
 * promises of components, each by a case that fails without it: isolation
 * both ways, calls across the boundary as sub-transactions, validation at the
 * boundary, clients refused, a handle scheduled by a component, and reads
 * joining the caller's read-set.
 */
import { expect } from "vitest";
import {
  componentsGeneric,
  createFunctionHandle,
  defineSchema,
  defineTable,
  internalMutationGeneric,
  internalQueryGeneric,
  makeFunctionReference,
  mutationGeneric,
  queryGeneric,
} from "convex/server";
import { v } from "convex/values";
import { Components, Engine, FunctionError, registerModules, ScheduledJobs, Schema, SubscriptionIndex, type DocumentStore } from "../../src/engine/index.ts";

// The component: a list of items, each instance its own.
const componentSchema = defineSchema({ items: defineTable({ name: v.string() }).index("by_name", ["name"]), notes: defineTable({ text: v.string() }) });
const lib = {
  add: mutationGeneric({ args: { name: v.string() }, returns: v.id("items"), handler: (ctx, { name }) => ctx.db.insert("items", { name }) }),
  addThenFail: mutationGeneric({
    args: { name: v.string() },
    handler: async (ctx, { name }) => {
      await ctx.db.insert("items", { name });
      throw new Error(`refused ${name}`);
    },
  }),
  list: queryGeneric({ args: {}, handler: async (ctx) => (await ctx.db.query("items").withIndex("by_name").collect()).map((item) => item.name) }),
  get: queryGeneric({ args: { id: v.string() }, handler: (ctx, { id }) => ctx.db.get(id as never) }),
  ownNotes: queryGeneric({ args: {}, handler: async (ctx) => (await ctx.db.query("notes").collect()).length }),
  patchForeign: mutationGeneric({ args: { id: v.string() }, handler: (ctx, { id }) => ctx.db.patch(id as never, { text: "hijacked" } as never) }),
  secret: internalQueryGeneric({ args: {}, handler: () => "internal" }),
  whoAmI: queryGeneric({ args: {}, handler: (ctx) => ctx.meta.getFunctionMetadata() }),
  /** Stores nothing, schedules the caller's handle through its own scheduler (as workpool does). */
  callBack: mutationGeneric({
    args: { handle: v.string(), name: v.string() },
    handler: (ctx, { handle, name }) => ctx.scheduler.runAfter(0, handle as any, { text: name }),
  }),
};

const components = componentsGeneric() as any;
const record = makeFunctionReference<"mutation">("app:record");

// The app: its own `items` and `notes` tables, the same names as the component's.
const appSchema = defineSchema({ notes: defineTable({ text: v.string() }), items: defineTable({ name: v.string() }) });
const app = {
  addBoth: mutationGeneric({
    args: {},
    handler: async (ctx) => {
      await ctx.db.insert("notes", { text: "app" });
      return ctx.runMutation(components.first.lib.add, { name: "joined" });
    },
  }),
  caught: mutationGeneric({
    args: {},
    handler: async (ctx) => {
      await ctx.db.insert("notes", { text: "before" });
      await ctx.runMutation(components.first.lib.add, { name: "kept" });
      const error = await ctx.runMutation(components.first.lib.addThenFail, { name: "undone" }).catch((e: Error) => e.message);
      await ctx.db.insert("notes", { text: "after" });
      return error;
    },
  }),
  uncaught: mutationGeneric({
    args: {},
    handler: async (ctx) => {
      await ctx.db.insert("notes", { text: "lost" });
      await ctx.runMutation(components.first.lib.add, { name: "lost" });
      await ctx.runMutation(components.first.lib.addThenFail, { name: "fails" });
    },
  }),
  addTo: mutationGeneric({
    args: { instance: v.string(), name: v.string() },
    handler: (ctx, { instance, name }) => ctx.runMutation(components[instance].lib.add, { name }),
  }),
  list: queryGeneric({ args: { instance: v.string() }, handler: (ctx, { instance }) => ctx.runQuery(components[instance].lib.list, {}) }),
  get: queryGeneric({ args: { id: v.string() }, handler: (ctx, { id }) => ctx.db.get(id as never) }),
  ownItems: queryGeneric({ args: {}, handler: async (ctx) => (await ctx.db.query("items").collect()).length }),
  addNote: mutationGeneric({ args: { text: v.string() }, handler: (ctx, { text }) => ctx.db.insert("notes", { text }) }),
  badArgs: mutationGeneric({ args: {}, handler: (ctx) => ctx.runMutation(components.first.lib.add, { name: 5 } as never) }),
  callSecret: queryGeneric({ args: {}, handler: (ctx) => ctx.runQuery(components.first.lib.secret, {}) }),
  componentReads: queryGeneric({ args: { id: v.string() }, handler: (ctx, { id }) => ctx.runQuery(components.first.lib.get, { id }) }),
  componentPatches: mutationGeneric({ args: { id: v.string() }, handler: (ctx, { id }) => ctx.runMutation(components.first.lib.patchForeign, { id }) }),
  componentNotes: queryGeneric({ args: {}, handler: (ctx) => ctx.runQuery(components.first.lib.ownNotes, {}) }),
  whoIsIt: queryGeneric({ args: {}, handler: (ctx) => ctx.runQuery(components.second.lib.whoAmI, {}) }),
  scheduleThroughComponent: mutationGeneric({
    args: {},
    handler: async (ctx) => ctx.runMutation(components.first.lib.callBack, { handle: await createFunctionHandle(record), name: "called back" }),
  }),
  record: internalMutationGeneric({ args: { text: v.string() }, handler: (ctx, { text }) => ctx.db.insert("notes", { text }) }),
  notes: queryGeneric({ args: {}, handler: async (ctx) => (await ctx.db.query("notes").collect()).map((note) => note.text) }),
  scheduledHere: queryGeneric({ args: {}, handler: async (ctx) => (await ctx.db.system.query("_scheduled_functions").collect()).length }),
  clock: queryGeneric({ args: {}, handler: () => Date.now() > 0 }),
};

function setup(store: DocumentStore) {
  const libModules = { lib };
  const instances = ["first", "second"].map((path) => ({ path, functions: registerModules(libModules, path) }));
  const all = new Components(registerModules({ app }), instances);
  const schema = new Schema(appSchema, [
    { componentPath: "first", schema: componentSchema },
    { componentPath: "second", schema: componentSchema },
  ]);
  const engine = new Engine({ schema, functions: all.root.functions, components: all, store });
  return { engine, store };
}

const error = (promise: Promise<unknown>) =>
  promise.then(
    () => expect.unreachable("it succeeded"),
    (e: unknown) => e as FunctionError,
  );

export const componentCases: Record<string, (store: DocumentStore) => Promise<void>> = {
  async "a query that calls a component's query has not read the clock (the query cache keeps it); one that calls Date.now() has"(store) {
    const { engine } = setup(store);
    const viaComponent = await engine.executeQuery(engine.resolve("app:list", "query"), { instance: "first" });
    expect(viaComponent.error).toBeNull();
    expect(viaComponent.observedTime).toBe(false);
    const clock = await engine.executeQuery(engine.resolve("app:clock", "query"), {});
    expect(clock.observedTime).toBe(true);
  },

  async "a mutation's call into a component commits with it: both writes, one commit"(store) {
    const { engine } = setup(store);
    const commits = store.commitCount();
    const { value: id } = await engine.runMutation("app:addBoth", {});
    expect(store.commitCount()).toBe(commits + 1);
    expect((await engine.runQuery("app:list", { instance: "first" })).value).toEqual(["joined"]);
    expect((await engine.runQuery("app:notes", {})).value).toEqual(["app"]);
    // The id a component returns is a valid id of its own table (its `returns: v.id("items")` passed at the boundary).
    expect(typeof id).toBe("string");
  },

  async "a component mutation that throws undoes only its own writes when the caller catches"(store) {
    const { engine } = setup(store);
    const { value } = await engine.runMutation("app:caught", {});
    expect(value).toMatch(/refused undone/);
    expect((await engine.runQuery("app:list", { instance: "first" })).value).toEqual(["kept"]);
    expect((await engine.runQuery("app:notes", {})).value).toEqual(["before", "after"]);
  },

  async "uncaught, it fails the caller and nothing of either is written"(store) {
    const { engine } = setup(store);
    const failure = await error(engine.runMutation("app:uncaught", {}));
    expect(failure.message).toMatch(/refused fails/);
    expect((await engine.runQuery("app:list", { instance: "first" })).value).toEqual([]);
    expect((await engine.runQuery("app:notes", {})).value).toEqual([]);
  },

  async "isolation: the app cannot read a component's documents, a component cannot read or write the app's; same-named tables are separate"(store) {
    const { engine } = setup(store);
    const { value: itemId } = await engine.runMutation("app:addTo", { instance: "first", name: "private" });
    const { value: noteId } = await engine.runMutation("app:addNote", { text: "mine" });
    expect((await engine.runQuery("app:get", { id: itemId as string })).value).toBeNull();
    expect((await engine.runQuery("app:ownItems", {})).value).toBe(0);
    expect((await engine.runQuery("app:componentReads", { id: noteId as string })).value).toBeNull();
    expect((await engine.runQuery("app:componentNotes", {})).value).toBe(0);
    expect((await error(engine.runMutation("app:componentPatches", { id: noteId as string }))).message).toMatch(/nonexistent document/);
    expect((await engine.runQuery("app:notes", {})).value).toEqual(["mine"]);
  },

  async "two instances of one component keep separate data"(store) {
    const { engine } = setup(store);
    await engine.runMutation("app:addTo", { instance: "first", name: "a" });
    await engine.runMutation("app:addTo", { instance: "second", name: "b" });
    await engine.runMutation("app:addTo", { instance: "second", name: "c" });
    expect((await engine.runQuery("app:list", { instance: "first" })).value).toEqual(["a"]);
    expect((await engine.runQuery("app:list", { instance: "second" })).value).toEqual(["b", "c"]);
    expect((await engine.runQuery("app:whoIsIt", {})).value).toMatchObject({ componentPath: "second" });
  },

  async "clients reach no component function, public or internal; a parent reaches only its child's public ones"(store) {
    const { engine } = setup(store);
    for (const path of ["lib:list", "first/lib:list", "first:lib:list", "lib:secret"]) {
      expect((await error(engine.runQuery(path, {}))).code).toBe("FunctionNotFound");
    }
    expect((await error(engine.runQuery("lib:list", {}, { internal: true }))).code).toBe("FunctionNotFound");
    const secret = await error(engine.runQuery("app:callSecret", {}));
    expect(secret.message).toMatch(/Could not find lib:secret in component first/);
  },

  async "arguments are validated at the boundary"(store) {
    const { engine } = setup(store);
    const failure = await error(engine.runMutation("app:badArgs", {}));
    expect(failure.message).toMatch(/ArgumentValidationError/);
    expect((await engine.runQuery("app:list", { instance: "first" })).value).toEqual([]);
  },

  async "a component schedules a function handle of the app through its own scheduler, and it runs"(store) {
    const { engine } = setup(store);
    await engine.runMutation("app:scheduleThroughComponent", {});
    // The job is in the component's _scheduled_functions, not the app's.
    expect((await engine.runQuery("app:scheduledHere", {})).value).toBe(0);
    const jobs = new ScheduledJobs(engine, { maxPerRun: () => 10 });
    expect(jobs.nextDue()).not.toBeNull();
    await jobs.runDue();
    expect((await engine.runQuery("app:notes", {})).value).toEqual(["called back"]);
    expect(jobs.nextDue()).toBeNull();
  },

  async "a query over a component's table is invalidated by writes to that instance's table only"(store) {
    const { engine } = setup(store);
    const subscriptions = new SubscriptionIndex<string>();
    const result = await engine.runQuery("app:list", { instance: "first" });
    subscriptions.add("first-list", result.readSet);
    const hits = async (path: string, args: Record<string, string>) => subscriptions.affected((await engine.runMutation(path, args)).writes).has("first-list");
    expect(await hits("app:addTo", { instance: "second", name: "x" })).toBe(false);
    expect(await hits("app:addNote", { text: "y" })).toBe(false);
    expect(await hits("app:addTo", { instance: "first", name: "z" })).toBe(true);
  },
};
