import { mutation, query, v } from "../engine/index.ts";

/** The chat's newest 20 messages, newest first. */
export const list = query({
  args: { chatId: v.string() },
  handler: (ctx, { chatId }) =>
    ctx.db
      .query("messages")
      .withIndex("by_chat", (q) => q.eq("chatId", chatId))
      .order("desc")
      .take(20),
});

/** Posts a message; returns its id. */
export const send = mutation({
  args: { chatId: v.string(), author: v.string(), body: v.string() },
  handler: (ctx, { chatId, author, body }) => ctx.db.insert("messages", { chatId, author, body }),
});
