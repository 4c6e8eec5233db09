/**
 * Sign-in for the chat page with Convex Auth (`@convex-dev/auth`), written as
 * its documentation shows: email and password (`Password`), accounts and
 * sessions in the tables `authTables` adds to the schema, the library's HTTP
 * routes in convex/http.ts. It signs its tokens with JWT_PRIVATE_KEY and
 * publishes JWKS: `npm run dev` puts a pair in `.dev.vars` the first time
 * (scripts/dev-vars.ts); elsewhere `npm run auth:keys`.
 */
import { Password } from "@convex-dev/auth/providers/Password";
import { convexAuth } from "@convex-dev/auth/server";

export const { auth, signIn, signOut, store, isAuthenticated } = convexAuth({
  providers: [Password],
});
