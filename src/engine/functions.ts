/**
 * The registry of a deployment's functions: the exports of its `convex/`
 * modules that `convex/server` built (`query`, `internalMutation`, ...),
 * named by module path as Convex names them (`messages.ts`'s `list` is
 * `messages:list`, a `default` export is `messages:default`). A function
 * object is recognised by the flags `convex/server` sets on it, as Convex's
 * backend does; its validators are read once, as JSON, at registration.
 */
import type { ValidatorJson } from "./validators.ts";
import { DEFAULT_ENGINE_LIMITS } from "./limits.ts";
import { GuardedRun, syncGuard, type SyncLimits } from "./sync-guard.ts";
import { loadAuthConfig } from "./auth/config-variables.ts";

export type FunctionKind = "query" | "mutation" | "action";
export type Visibility = "public" | "internal";

/** What `convex/server`'s builders attach to a registered function. */
interface ConvexFunctionObject {
  isQuery?: boolean;
  isMutation?: boolean;
  isAction?: boolean;
  isPublic?: boolean;
  isInternal?: boolean;
  invokeQuery?: (argsJson: string) => Promise<string>;
  invokeMutation?: (argsJson: string) => Promise<string>;
  invokeAction?: (requestId: string, argsJson: string) => Promise<string>;
  exportArgs?: () => string;
  exportReturns?: () => string;
}

export interface RegisteredFunction {
  /** Canonical path, e.g. `messages:list`, within its component instance. */
  readonly path: string;
  /** The component instance it belongs to (`""`: the app; see `components.ts`). */
  readonly componentPath: string;
  readonly kind: FunctionKind;
  readonly visibility: Visibility;
  /** The arguments validator (`{type: "any"}` when the function declared none). */
  readonly args: ValidatorJson;
  /** The return validator, or null when the function declared none. */
  readonly returns: ValidatorJson | null;
  /** Calls the handler with `[args]` in wire JSON; resolves to the result in wire JSON. */
  readonly invoke: (argsJson: string) => Promise<string>;
}

/**
 * `"messages"` -> `"messages:default"`, `"messages.js:list"` -> `"messages:list"`,
 * as the official client canonicalizes paths.
 */
export function canonicalizePath(path: string): string {
  const colon = path.indexOf(":");
  const modulePath = colon < 0 ? path : path.slice(0, colon);
  const exportName = colon < 0 ? "default" : path.slice(colon + 1);
  const module = modulePath.endsWith(".js") ? modulePath.slice(0, -3) : modulePath;
  return `${module}:${exportName}`;
}

export type FunctionRegistry = ReadonlyMap<string, RegisteredFunction>;

function registered(path: string, componentPath: string, value: unknown): RegisteredFunction | null {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return null;
  const fn = value as ConvexFunctionObject;
  const visibility: Visibility = fn.isInternal ? "internal" : "public";
  const validators = () => ({
    args: JSON.parse(fn.exportArgs?.() ?? '{"type":"any"}') as ValidatorJson,
    returns: JSON.parse(fn.exportReturns?.() ?? "null") as ValidatorJson | null,
  });
  if (fn.isQuery && fn.invokeQuery) return { path, componentPath, kind: "query", visibility, ...validators(), invoke: fn.invokeQuery };
  if (fn.isMutation && fn.invokeMutation) return { path, componentPath, kind: "mutation", visibility, ...validators(), invoke: fn.invokeMutation };
  if (fn.isAction && fn.invokeAction) {
    const invokeAction = fn.invokeAction;
    return { path, componentPath, kind: "action", visibility, ...validators(), invoke: (argsJson) => invokeAction("", argsJson) };
  }
  return null;
}

/** Builds the registry from `{ "messages": import("./messages.ts"), "chat/rooms": ... }` (of the app, or of the component instance at `componentPath`). */
export function registerModules(modules: Record<string, Record<string, unknown>>, componentPath = ""): FunctionRegistry {
  const registry = new Map<string, RegisteredFunction>();
  for (const [modulePath, exports] of Object.entries(modules)) {
    for (const [name, value] of Object.entries(exports)) {
      const path = `${modulePath}:${name}`;
      const fn = registered(path, componentPath, value);
      if (fn) registry.set(path, fn);
    }
  }
  return registry;
}

/** What `convex/server`'s `httpRouter()` offers the engine: the route for a path and method. */
export interface HttpRouter {
  lookup(path: string, method: string): readonly [{ invokeHttpAction(request: Request): Promise<Response> }, string, string] | null;
}

/** The app's HTTP router: the default export of `convex/http.ts`, when it has one. */
export function findHttpRouter(modules: Record<string, Record<string, unknown>>): HttpRouter | null {
  const router = modules.http?.default as { isRouter?: boolean } | undefined;
  return router?.isRouter ? (router as unknown as HttpRouter) : null;
}

/** The app as codegen writes it (`convex/_generated/modules.js`): each function module behind a loader of its own. */
export interface GeneratedApp {
  schema: AppDefinition["schema"];
  /** convex/auth.config.ts: its loader (evaluated as config-variables.ts explains), or its default export as is. */
  authConfig?: unknown;
  modules: Record<string, () => Promise<Record<string, unknown>>>;
  /** The component instances `convex/convex.config.ts` installs, by path (`"workpool"`, `"workpool/batchWorker"`). */
  components?: Record<string, GeneratedComponent>;
}

/**
 * One component instance in the registry: its definition (the package's
 * compiled `convex.config.js` directory: schema and function modules, shared
 * by every instance of that component).
 */
export interface GeneratedComponent {
  definition: { schema: AppDefinition["schema"]; modules: Record<string, () => Promise<Record<string, unknown>>> };
  /** The npm package the component comes from (`@convex-dev/workpool@0.5.0`), for the operator; null or absent when codegen found none. */
  package?: string | null;
  /** Where its `http.ts` routes are served (`app.use(x, { httpPrefix })`, ending in "/"); absent when not mounted. */
  httpPrefix?: string;
}

/** A component instance, loaded: its schema and its function modules. */
export interface LoadedComponent {
  path: string;
  schema: AppDefinition["schema"];
  modules: Record<string, Record<string, unknown>>;
  package?: string | null;
  httpPrefix?: string;
}

/** The component instances' schemas, as `new Schema(app.schema, ...)` takes them (known before any module loads). */
export function componentSchemas(app: GeneratedApp): { componentPath: string; schema: AppDefinition["schema"] }[] {
  return Object.entries(app.components ?? {}).map(([componentPath, { definition }]) => ({ componentPath, schema: definition.schema }));
}

/**
 * Loads every module of `app`, each on its own: one that throws while it
 * loads is recorded in `moduleErrors` (by module path) and the others serve,
 * so one bad file costs its own functions, not the deployment. A module's top
 * level is held to `limits` as a function is (sync-guard.ts): one that never
 * yields fails to load. The app loads once per isolate, for every deployment
 * in it, so these are the knob table's defaults, not a deployment's knobs.
 */
export async function loadApp(
  app: GeneratedApp,
  limits: SyncLimits = DEFAULT_ENGINE_LIMITS,
): Promise<AppDefinition & { moduleErrors: Record<string, string>; components: LoadedComponent[] }> {
  const moduleErrors: Record<string, string> = {};
  const loadAll = async (loaders: GeneratedComponent["definition"]["modules"], where: string) => {
    const modules: Record<string, Record<string, unknown>> = {};
    await Promise.all(
      Object.entries(loaders).map(async ([modulePath, load]) => {
        try {
          const guarded = new GuardedRun(`The top level of ${where || "convex/"}${modulePath}`, limits);
          modules[modulePath] = await guarded.bound(syncGuard.run(guarded, load));
        } catch (error) {
          moduleErrors[where + modulePath] = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
          console.error(`${where || "convex/"}${modulePath} failed to load, so its functions cannot run:`, error);
        }
      }),
    );
    return modules;
  };
  const modules = await loadAll(app.modules, "");
  // A component's modules are loaded once however many instances use it (a module runs its top level once anyway).
  const definitions = new Map<GeneratedComponent["definition"], Promise<Record<string, Record<string, unknown>>>>();
  const components = await Promise.all(
    Object.entries(app.components ?? {}).map(async ([path, { definition, package: pkg, httpPrefix }]) => {
      if (!definitions.has(definition)) definitions.set(definition, loadAll(definition.modules, `component ${path}: `));
      return { path, schema: definition.schema, modules: await definitions.get(definition)!, package: pkg ?? null, ...(httpPrefix ? { httpPrefix } : {}) };
    }),
  );
  let authConfig: unknown = app.authConfig ?? null;
  if (typeof authConfig === "function") {
    const load = authConfig as () => Promise<{ default?: unknown }>;
    const guarded = new GuardedRun("The top level of convex/auth.config.ts", limits);
    authConfig = await guarded.bound(syncGuard.run(guarded, () => loadAuthConfig(load)));
  }
  return { schema: app.schema, authConfig, modules, moduleErrors, components };
}

/** What a deployment serves: its schema (a `convex/server` `defineSchema`, if any) and its function modules by module path. */
export interface AppDefinition {
  schema: import("./schema.ts").ConvexSchemaDefinition | null;
  /** `convex/auth.config.ts`'s default export (`{ providers }`), or null/absent. */
  authConfig?: unknown;
  modules: Record<string, Record<string, unknown>>;
}
