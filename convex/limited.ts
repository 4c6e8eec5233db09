// Sending with a rate limit per author (@convex-dev/rate-limiter): a token bucket of 3 a minute.
import { v } from "convex/values";
import { MINUTE, RateLimiter } from "@convex-dev/rate-limiter";
import { components } from "./_generated/api";
import { mutation } from "./_generated/server";

const rateLimiter = new RateLimiter(components.rateLimiter, {
  sendMessage: { kind: "token bucket", rate: 3, period: MINUTE, capacity: 3 },
});

/** Sends like messages:send while the author has tokens left; otherwise sends nothing and says when to retry. */
export const send = mutation({
  args: { chatId: v.string(), author: v.string(), body: v.string() },
  handler: async (ctx, { chatId, author, body }) => {
    const status = await rateLimiter.limit(ctx, "sendMessage", { key: author });
    if (status.ok) await ctx.db.insert("messages", { chatId, author, body });
    return status;
  },
});
