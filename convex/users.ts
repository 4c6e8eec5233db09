import { getAuthUserId } from "@convex-dev/auth/server";
import { api } from "./_generated/api";
import { action, query, type QueryCtx } from "./_generated/server";

/** Who is signed in, as the chat names them: null when nobody is. */
export interface Signedin {
  name: string;
  email: string | null;
  /** The token's issuer and subject (`iss|sub`), Convex's key for a user across providers. */
  tokenIdentifier: string;
}

/**
 * The caller: a Convex Auth user (convex/auth.ts) from the users table, by
 * `getAuthUserId`, named by their name or else their email; any other
 * provider's token (or the dev issuer's) has no such row, so its identity
 * names them.
 */
export async function signedIn(ctx: Pick<QueryCtx, "auth" | "db">): Promise<Signedin | null> {
  const identity = await ctx.auth.getUserIdentity();
  if (identity === null) return null;
  const userId = await getAuthUserId(ctx);
  const id = userId === null ? null : ctx.db.normalizeId("users", userId);
  const user = id === null ? null : await ctx.db.get(id);
  const { tokenIdentifier } = identity;
  if (user) return { name: user.name ?? user.email ?? user._id, email: user.email ?? null, tokenIdentifier };
  return { name: identity.name ?? identity.subject, email: identity.email ?? null, tokenIdentifier };
}

/** Who is signed in on this connection, or null: the chat page shows it. */
export const viewer = query({
  args: {},
  handler: (ctx) => signedIn(ctx),
});

/** A greeting for whoever calls: an action sees the caller too, and so do the functions it calls. */
export const greet = action({
  args: {},
  handler: async (ctx): Promise<string> => {
    const identity = await ctx.auth.getUserIdentity();
    const viewer: Signedin | null = await ctx.runQuery(api.users.viewer, {});
    return identity === null ? "Hello, stranger" : `Hello, ${viewer?.name ?? identity.subject}`;
  },
});
