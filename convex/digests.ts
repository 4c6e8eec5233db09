// Background digests through a work pool (@convex-dev/workpool), counted with a sharded
// counter (@convex-dev/sharded-counter) that a live query shows as the jobs land.
import { v } from "convex/values";
import { Workpool } from "@convex-dev/workpool";
import { ShardedCounter } from "@convex-dev/sharded-counter";
import { components, internal } from "./_generated/api";
import { internalAction, internalMutation, mutation, query } from "./_generated/server";
import type { MutationCtx } from "./_generated/server";

const pool = new Workpool(components.digestPool, { maxParallelism: 2 });
const counter = new ShardedCounter(components.shardedCounter);

/** Enqueues `count` digests of a chat; each one runs as an action of the pool. */
export const enqueue = mutation({
  args: { chatId: v.string(), count: v.number() },
  handler: async (ctx, { chatId, count }) => {
    for (let i = 0; i < count; i++) await pool.enqueueAction(ctx, internal.digests.digest, { chatId, i });
  },
});

/** One digest: a little work between its start and its end, so that digests overlap when the pool lets them. */
export const digest = internalAction({
  args: { chatId: v.string(), i: v.number() },
  handler: async (ctx, { chatId }) => {
    await ctx.runMutation(internal.digests.started, {});
    await new Promise((resolve) => setTimeout(resolve, 150));
    await ctx.runMutation(internal.digests.finished, { chatId });
  },
});

async function runs(ctx: MutationCtx) {
  const row = await ctx.db.query("digestRuns").first();
  return row ?? { _id: await ctx.db.insert("digestRuns", { running: 0, most: 0 }), running: 0, most: 0 };
}

export const started = internalMutation({
  args: {},
  handler: async (ctx) => {
    const row = await runs(ctx);
    await ctx.db.patch(row._id, { running: row.running + 1, most: Math.max(row.most, row.running + 1) });
  },
});

export const finished = internalMutation({
  args: { chatId: v.string() },
  handler: async (ctx, { chatId }) => {
    const row = await runs(ctx);
    await ctx.db.patch(row._id, { running: row.running - 1 });
    await counter.inc(ctx, `digests:${chatId}`);
  },
});

/** Digests done for a chat (live: it changes as each one lands), and the most that ran at once. */
export const progress = query({
  args: { chatId: v.string() },
  handler: async (ctx, { chatId }) => ({
    done: await counter.count(ctx, `digests:${chatId}`),
    mostAtOnce: (await ctx.db.query("digestRuns").first())?.most ?? 0,
  }),
});
