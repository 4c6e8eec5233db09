import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
import { authTables } from "@convex-dev/auth/server";

export default defineSchema({
  // Convex Auth's users, accounts and sessions (convex/auth.ts).
  ...authTables,
  messages: defineTable({ chatId: v.string(), author: v.string(), body: v.string(), image: v.optional(v.id("_storage")) })
    .index("by_chat", ["chatId"])
    .searchIndex("search_body", { searchField: "body", filterFields: ["chatId"] }),
  // How many digest jobs (convex/digests.ts) run right now, and the most at once.
  digestRuns: defineTable({ running: v.number(), most: v.number() }),
});
