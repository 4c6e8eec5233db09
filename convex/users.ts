import { query } from "./_generated/server";

/** Who is signed in on this connection, or null: the chat page's sign-in box shows it. */
export const viewer = query({
  args: {},
  handler: async (ctx) => {
    const identity = await ctx.auth.getUserIdentity();
    return identity === null ? null : { name: identity.name ?? identity.subject, tokenIdentifier: identity.tokenIdentifier };
  },
});
