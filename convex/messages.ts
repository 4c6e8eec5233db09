import { v } from "convex/values";
import { paginationOptsValidator } from "convex/server";
import { internalMutation, mutation, query } from "./_generated/server";
import { internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import { signedIn } from "./users";

/** The chat's newest 20 messages, newest first; an image's URL as `imageUrl` (convex/attachments.ts). */
export const list = query({
  args: { chatId: v.string() },
  handler: async (ctx, { chatId }) => {
    const messages = await ctx.db
      .query("messages")
      .withIndex("by_chat", (q) => q.eq("chatId", chatId))
      .order("desc")
      .take(20);
    return Promise.all(messages.map(async (message) => (message.image ? { ...message, imageUrl: await ctx.storage.getUrl(message.image) } : message)));
  },
});

/** The chat's history, newest first, a page at a time (for `usePaginatedQuery`). */
export const history = query({
  args: { chatId: v.string(), paginationOpts: paginationOptsValidator },
  handler: (ctx, { chatId, paginationOpts }) =>
    ctx.db
      .query("messages")
      .withIndex("by_chat", (q) => q.eq("chatId", chatId))
      .order("desc")
      .paginate(paginationOpts),
});

/** Who wrote the chat's newest 20 messages, sorted (a "people here" list). */
export const participants = query({
  args: { chatId: v.string() },
  handler: async (ctx, { chatId }) => {
    const recent = await ctx.db
      .query("messages")
      .withIndex("by_chat", (q) => q.eq("chatId", chatId))
      .order("desc")
      .take(20);
    return [...new Set(recent.map((m) => m.author))].sort();
  },
});

/** The chat's 10 best matches for `query` (relevance order; the last word matches as a prefix). */
export const search = query({
  args: { chatId: v.string(), query: v.string() },
  handler: (ctx, { chatId, query }) =>
    ctx.db
      .query("messages")
      .withSearchIndex("search_body", (q) => q.search("body", query).eq("chatId", chatId))
      .take(10),
});

/** Posts a message; returns its id. */
export const send = mutation({
  args: { chatId: v.string(), author: v.string(), body: v.string() },
  handler: async (ctx, { chatId, author, body }) => {
    // Signed in, a message is by the signed-in user (convex/users.ts), whatever the page claims; anonymous, by the name given.
    const user = await signedIn(ctx);
    return ctx.db.insert("messages", { chatId, author: user?.name ?? author, body });
  },
});

/** Posts the same message to many chats in one commit (an announcement); returns the ids. */
export const broadcast = mutation({
  args: { chatIds: v.array(v.string()), author: v.string(), body: v.string() },
  handler: async (ctx, { chatIds, author, body }) => {
    const ids: Id<"messages">[] = [];
    for (const chatId of chatIds) ids.push(await ctx.db.insert("messages", { chatId, author, body }));
    return ids;
  },
});

/** Changes a message's text. */
export const edit = mutation({
  args: { id: v.id("messages"), body: v.string() },
  handler: async (ctx, { id, body }) => {
    await ctx.db.patch(id, { body });
  },
});

/** Posts a message after `delayMs` (a scheduled function); returns the job's id, which `cancelLater` takes. */
export const sendLater = mutation({
  args: { chatId: v.string(), author: v.string(), body: v.string(), delayMs: v.number() },
  // The return type is spelled out, as Convex advises, since `internal` refers back to this module.
  handler: (ctx, { delayMs, ...message }): Promise<Id<"_scheduled_functions">> => ctx.scheduler.runAfter(delayMs, internal.messages.deliver, message),
});

/** Cancels a message sent with `sendLater` that has not been posted yet. */
export const cancelLater = mutation({
  args: { id: v.id("_scheduled_functions") },
  handler: (ctx, { id }) => ctx.scheduler.cancel(id),
});

/** Posts a scheduled message (internal: only the scheduler calls it). */
export const deliver = internalMutation({
  args: { chatId: v.string(), author: v.string(), body: v.string() },
  handler: (ctx, message) => ctx.db.insert("messages", message),
});
