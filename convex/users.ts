import { api } from "./_generated/api";
import { action, query } from "./_generated/server";

/** Who is signed in on this connection, or null: the chat page's sign-in box shows it. */
export const viewer = query({
  args: {},
  handler: async (ctx) => {
    const identity = await ctx.auth.getUserIdentity();
    return identity === null ? null : { name: identity.name ?? identity.subject, tokenIdentifier: identity.tokenIdentifier };
  },
});

/** A greeting for whoever calls: an action sees the caller too, and so do the functions it calls. */
export const greet = action({
  args: {},
  handler: async (ctx): Promise<string> => {
    const identity = await ctx.auth.getUserIdentity();
    const viewer: { name: string } | null = await ctx.runQuery(api.users.viewer, {});
    return identity === null ? "Hello, stranger" : `Hello, ${viewer?.name ?? identity.subject}`;
  },
});
