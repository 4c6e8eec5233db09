/** The runtime-agnostic engine: no Cloudflare imports anywhere below this folder. */
export * from "./values.ts";
export * from "./keys.ts";
export * from "./validators.ts";
export * from "./schema.ts";
export * from "./functions.ts";
export * from "./errors.ts";
export * from "./limits.ts";
export * from "./store.ts";
export * from "./memory-store.ts";
export * from "./read-set.ts";
export * from "./transaction.ts";
export * from "./index-range.ts";
export * from "./engine.ts";
export * from "./subscription-index.ts";
export * from "./search.ts";
export { isDocumentId, newDocumentId, tableOfId } from "./ids.ts";
export { Execution } from "./runtime/execution.ts";
export { ByteBudgetLru, type ByteBudgetLruOptions } from "./byte-budget-lru.ts";
