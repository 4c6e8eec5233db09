/**
 * HTTP actions, served at `/http/<path>` (and `/d/<deployment>/http/<path>`):
 * a feed of a chat's newest messages and a webhook that posts one, the way
 * another service (a bot, a form) would reach the chat, and `/whoami`, which
 * reads the caller from an `Authorization: Bearer` token. Convex Auth's
 * routes (its discovery document and keys, OAuth callbacks) are added too.
 */
import { httpRouter } from "convex/server";
import { httpAction } from "./_generated/server";
import { api } from "./_generated/api";
import { auth } from "./auth";

const http = httpRouter();

auth.addHttpRoutes(http);

http.route({
  path: "/messages",
  method: "GET",
  handler: httpAction(async (ctx, request) => {
    const chatId = new URL(request.url).searchParams.get("chatId");
    if (!chatId) return new Response("chatId is required", { status: 400 });
    const messages = await ctx.runQuery(api.messages.list, { chatId });
    return Response.json(messages.map(({ author, body, _creationTime }) => ({ author, body, at: _creationTime })));
  }),
});

http.route({
  path: "/messages",
  method: "POST",
  handler: httpAction(async (ctx, request) => {
    const { chatId, author, body } = (await request.json()) as { chatId: string; author: string; body: string };
    const id = await ctx.runMutation(api.messages.send, { chatId, author, body });
    return Response.json({ id }, { status: 201 });
  }),
});

http.route({
  path: "/whoami",
  method: "GET",
  handler: httpAction(async (ctx) => {
    const identity = await ctx.auth.getUserIdentity();
    return Response.json({ name: identity?.name ?? null });
  }),
});

export default http;
