import { v } from "convex/values";
import { mutation } from "./_generated/server";
import { signedIn } from "./users";

/** An upload URL for one image: the page POSTs the file to it and gets `{ storageId }` back. */
export const generateUploadUrl = mutation({
  args: {},
  handler: (ctx) => ctx.storage.generateUploadUrl(),
});

/** Posts an uploaded image (with an optional caption) to the chat; returns the message's id. */
export const sendImage = mutation({
  args: { chatId: v.string(), author: v.string(), storageId: v.id("_storage"), caption: v.optional(v.string()) },
  handler: async (ctx, { chatId, author, storageId, caption }) => {
    const user = await signedIn(ctx);
    return ctx.db.insert("messages", { chatId, author: user?.name ?? author, body: caption ?? "", image: storageId });
  },
});

/** Takes a message's image down: the file is deleted with it (its bytes go once this commits). */
export const removeImage = mutation({
  args: { id: v.id("messages") },
  handler: async (ctx, { id }) => {
    const message = await ctx.db.get(id);
    if (!message?.image) return;
    await ctx.storage.delete(message.image);
    await ctx.db.patch(id, { image: undefined });
  },
});
