/**
 * Query and mutation definitions and the registry that names them by module
 * path: `messages.ts`'s export `list` is `messages:list`.
 *
 * @example
 * export const list = query({
 *   args: { chatId: v.string() },
 *   handler: (ctx, { chatId }) => ctx.db.query("messages").withIndex("by_chat", (q) => q.eq("chatId", chatId)).take(20),
 * });
 */
import type { DatabaseReader, DatabaseWriter } from "./database.ts";
import type { ObjectType, PropertyValidators } from "./validators.ts";

export interface QueryCtx {
  db: DatabaseReader;
}

export interface MutationCtx {
  db: DatabaseWriter;
}

export type FunctionKind = "query" | "mutation";

export interface RegisteredFunction<Kind extends FunctionKind = FunctionKind> {
  readonly kind: Kind;
  readonly args: PropertyValidators;
  readonly handler: (ctx: any, args: any) => unknown;
}

export function query<A extends PropertyValidators, R>(definition: {
  args: A;
  handler: (ctx: QueryCtx, args: ObjectType<A>) => R | Promise<R>;
}): RegisteredFunction<"query"> {
  return { kind: "query", args: definition.args, handler: definition.handler };
}

export function mutation<A extends PropertyValidators, R>(definition: {
  args: A;
  handler: (ctx: MutationCtx, args: ObjectType<A>) => R | Promise<R>;
}): RegisteredFunction<"mutation"> {
  return { kind: "mutation", args: definition.args, handler: definition.handler };
}

function isRegisteredFunction(value: unknown): value is RegisteredFunction {
  return (
    typeof value === "object" &&
    value !== null &&
    ((value as RegisteredFunction).kind === "query" || (value as RegisteredFunction).kind === "mutation") &&
    typeof (value as RegisteredFunction).handler === "function"
  );
}

/**
 * `"messages"` -> `"messages:default"`, `"messages.js:list"` -> `"messages:list"`,
 * as the official client canonicalizes paths.
 */
export function canonicalizePath(path: string): string {
  const [modulePath, exportName = "default"] = path.split(":", 2) as [string, string?];
  const module = modulePath.endsWith(".js") ? modulePath.slice(0, -3) : modulePath;
  return `${module}:${exportName}`;
}

export type FunctionRegistry = ReadonlyMap<string, RegisteredFunction>;

/** Builds the registry from `{ "messages": import("./messages.ts"), "chat/rooms": ... }`. */
export function registerModules(modules: Record<string, Record<string, unknown>>): FunctionRegistry {
  const registry = new Map<string, RegisteredFunction>();
  for (const [modulePath, exports] of Object.entries(modules)) {
    for (const [name, value] of Object.entries(exports)) {
      if (isRegisteredFunction(value)) registry.set(`${modulePath}:${name}`, value);
    }
  }
  return registry;
}

/** What a deployment serves: a schema and function modules keyed by module path. */
export interface AppDefinition {
  schema: import("./schema.ts").Schema;
  modules: Record<string, Record<string, unknown>>;
}
