/**
 * An assistant that replies in the chat, written the way an app that streams
 * a language model's reply is: `ask` posts the question and an empty reply,
 * and schedules `reply`, an action that writes the reply in chunks through
 * `append` while every watching client sees it grow. A local text generator
 * stands in for the model (no network here).
 *
 * Why scheduled, not called from the client: the official client fails an
 * in-flight action when its socket drops and never re-sends it. The scheduled
 * action belongs to the deployment, so a dropped socket loses nothing: the
 * client reconnects and its subscription shows the reply where it has got to.
 */
import { ConvexError, v } from "convex/values";
import { action, internalAction, internalMutation, mutation } from "./_generated/server";
import { api, internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";

const WORDS = [
  "sure",
  "here",
  "is",
  "a",
  "thought",
  "about",
  "that",
  "the",
  "chat",
  "keeps",
  "going",
  "while",
  "I",
  "write",
  "this",
  "one",
  "word",
  "at",
  "time",
];

/** A deterministic stand-in for a model: `length` words seeded by the prompt. */
function generate(prompt: string, length: number): string[] {
  let seed = [...prompt].reduce((hash, c) => (hash * 31 + c.charCodeAt(0)) >>> 0, 7);
  return Array.from({ length }, () => {
    seed = (seed * 1_103_515_245 + 12_345) >>> 0;
    return WORDS[seed % WORDS.length]!;
  });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What a caller may ask for: anyone can call these, so a huge delay or length must not tie up an action slot. */
const LIMITS = { delayMs: 5_000, words: 200 };

function bounded(name: keyof typeof LIMITS, value: number | undefined): void {
  if (value !== undefined && !(value >= 0 && value <= LIMITS[name])) throw new ConvexError(`${name} must be between 0 and ${LIMITS[name]}, got ${value}`);
}

/** Posts the question and an empty reply, and schedules the reply's writing; returns the reply's id. */
export const ask = mutation({
  args: { chatId: v.string(), author: v.string(), body: v.string(), words: v.optional(v.number()), delayMs: v.optional(v.number()) },
  handler: async (ctx, { chatId, author, body, words, delayMs }): Promise<Id<"messages">> => {
    bounded("words", words);
    bounded("delayMs", delayMs);
    await ctx.db.insert("messages", { chatId, author, body });
    const replyId = await ctx.db.insert("messages", { chatId, author: "assistant", body: "" });
    await ctx.scheduler.runAfter(0, internal.assistant.reply, { replyId, prompt: body, words: words ?? 12, delayMs: delayMs ?? 150 });
    return replyId;
  },
});

/** Writes the reply a few words at a time (each chunk its own small mutation, so each push is small). */
export const reply = internalAction({
  args: { replyId: v.id("messages"), prompt: v.string(), words: v.number(), delayMs: v.number() },
  handler: async (ctx, { replyId, prompt, words, delayMs }) => {
    const text = generate(prompt, words);
    for (let i = 0; i < text.length; i += 3) {
      await pause(delayMs);
      await ctx.runMutation(internal.assistant.append, { id: replyId, text: text.slice(0, i + 3).join(" ") });
    }
  },
});

export const append = internalMutation({
  args: { id: v.id("messages"), text: v.string() },
  handler: async (ctx, { id, text }) => {
    await ctx.db.patch(id, { body: text });
  },
});

/**
 * Suggests a reply to a chat without posting it: an action a client calls
 * directly. It "thinks" for `delayMs` (outside the function lock: queries,
 * mutations and Transitions go on meanwhile), then reads the chat.
 */
export const suggest = action({
  args: { chatId: v.string(), prompt: v.string(), delayMs: v.optional(v.number()) },
  handler: async (ctx, { chatId, prompt, delayMs }): Promise<{ text: string; seen: number }> => {
    bounded("delayMs", delayMs);
    await pause(delayMs ?? 200);
    const recent = await ctx.runQuery(api.messages.list, { chatId });
    return { text: generate(prompt, 6).join(" "), seen: recent.length };
  },
});
