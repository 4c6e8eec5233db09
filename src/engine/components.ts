/**
 * The app's component instances (`convex/convex.config.ts`: `app.use(x, {name})`)
 * and how a function reaches another function. Each instance has a path
 * (`""` for the app, `"workpool"`, `"workpool/batchWorker"` for a component a
 * component uses), its own function registry and its own tables
 * (`table-namespace.ts`). Two instances of one component share the modules
 * and nothing else.
 *
 * A function names another by the address `convex/server` sends
 * (`getFunctionAddress`, see ../shared/reference/convex-runtime.md §5):
 * - `{name: "lib:f"}`: a function of the caller's own instance (its `api` and
 *   `internal` are relative), internal ones included;
 * - `{reference: "_reference/childComponent/<c>/<module path>/<fn>"}`: a
 *   public function of the caller's child `<c>` (a component's public
 *   functions are what it exports to its parent, nothing more);
 * - `{functionHandle: "function://..."}`: any function a handle was made for
 *   (`createFunctionHandle`), whoever holds the handle: this is how a
 *   workpool calls back into the app.
 * Clients reach only the app's public functions: nothing here is on their path.
 */
import { FunctionError } from "./errors.ts";
import {
  canonicalizePath,
  findHttpRouter,
  registerModules,
  type FunctionKind,
  type FunctionRegistry,
  type HttpRouter,
  type LoadedComponent,
  type RegisteredFunction,
} from "./functions.ts";
import { namespacePrefix, TableNamespace } from "./table-namespace.ts";

export interface ComponentInstance {
  /** `""` for the app; `"rateLimiter"`, `"rateLimiter/batchWorker"` for components. */
  readonly path: string;
  readonly namespace: TableNamespace;
  readonly functions: FunctionRegistry;
  /** The npm package it comes from (`@convex-dev/workpool@0.5.0`), shown to the operator; null for the app or when unknown. */
  readonly package: string | null;
  /** Its `http.ts` routes and where they are served (`app.use(x, { httpPrefix })`), or null when it has none or is not mounted. */
  readonly http: HttpMount | null;
}

/** A component's HTTP routes, served under `prefix` (it starts and ends with "/"). */
export interface HttpMount {
  readonly prefix: string;
  readonly router: HttpRouter;
}

/** A function and the instance it belongs to (a function runs inside its own instance). */
export interface FunctionTarget {
  readonly instance: ComponentInstance;
  readonly fn: RegisteredFunction;
}

/** What `convex/server` sends to name a function (one of the three keys). */
export interface FunctionAddress {
  name?: unknown;
  reference?: unknown;
  functionHandle?: unknown;
}

const CHILD_REFERENCE = "_reference/childComponent/";
const HANDLE = "function://";
/** Component names are identifiers, as Convex requires. */
const COMPONENT_NAME = /^[a-zA-Z][a-zA-Z0-9_]*$/;

export class Components {
  private readonly instances = new Map<string, ComponentInstance>();
  readonly root: ComponentInstance;

  /** `components` are the app's component instances by path (children after their parents or not: order does not matter). */
  constructor(
    appFunctions: FunctionRegistry,
    components: readonly { path: string; functions: FunctionRegistry; package?: string | null; http?: HttpMount | null }[] = [],
  ) {
    // The app's own routes (convex/http.ts) are the engine's `httpRouter`, served at the root.
    this.root = { path: "", namespace: new TableNamespace(""), functions: appFunctions, package: null, http: null };
    this.instances.set("", this.root);
    const prefixes = new Map<string, string>();
    for (const { path, functions, package: pkg = null, http = null } of components) {
      if (path === "" || !path.split("/").every((name) => COMPONENT_NAME.test(name)))
        throw new Error(`Invalid component path ${JSON.stringify(path)}: names are identifiers`);
      if (this.instances.has(path)) throw new Error(`Component ${path} is installed twice`);
      const prefix = namespacePrefix(path);
      // Two paths with one prefix would share tables: refuse to start rather than mix their data.
      if (prefixes.has(prefix)) throw new Error(`Components ${prefixes.get(prefix)} and ${path} hash to one table prefix; rename one`);
      prefixes.set(prefix, path);
      if (http && !(http.prefix.startsWith("/") && http.prefix.endsWith("/")))
        throw new Error(`Component ${path}: httpPrefix ${JSON.stringify(http.prefix)} must start and end with "/"`);
      this.instances.set(path, { path, namespace: new TableNamespace(prefix), functions, package: pkg, http });
    }
  }

  /** The app's functions and its loaded component instances (`loadApp`), each instance's functions registered under its path. */
  static load(appFunctions: FunctionRegistry, loaded: readonly LoadedComponent[]): Components {
    return new Components(
      appFunctions,
      loaded.map(({ path, modules, package: pkg, httpPrefix }) => {
        const router = httpPrefix ? findHttpRouter(modules) : null;
        return { path, functions: registerModules(modules, path), package: pkg ?? null, http: router ? { prefix: httpPrefix!, router } : null };
      }),
    );
  }

  /** Every instance, the app first. */
  get all(): ComponentInstance[] {
    return [...this.instances.values()];
  }

  at(path: string): ComponentInstance | undefined {
    return this.instances.get(path);
  }

  /**
   * The mounted component whose routes serve `pathname`, and the path its
   * router sees (the mount's prefix taken off, as Convex does: a component's
   * `/hello` under `/greeter/` serves `/greeter/hello`); the longest prefix wins.
   */
  httpMountFor(pathname: string): { instance: ComponentInstance; router: HttpRouter; path: string } | null {
    let best: ComponentInstance | null = null;
    for (const instance of this.instances.values()) {
      if (instance.http && pathname.startsWith(instance.http.prefix) && (!best || instance.http.prefix.length > best.http!.prefix.length)) best = instance;
    }
    return best ? { instance: best, router: best.http!.router, path: pathname.slice(best.http!.prefix.length - 1) } : null;
  }

  /** The function `address` names, called from inside `caller` as a `kind` (throws `FunctionNotFound` / `BadRequest` saying why not). */
  resolve(caller: ComponentInstance, address: FunctionAddress, kind: FunctionKind | "mutationOrAction"): FunctionTarget {
    const target = this.find(caller, address);
    const wanted = kind === "mutationOrAction" ? target.fn.kind !== "query" : target.fn.kind === kind;
    if (!wanted) {
      const asked = kind === "mutationOrAction" ? "a mutation or action" : `a ${kind}`;
      throw new FunctionError("BadRequest", `${describeTarget(target)} is a ${target.fn.kind}, but ${asked} was called for`);
    }
    return target;
  }

  private find(caller: ComponentInstance, address: FunctionAddress): FunctionTarget {
    if (typeof address.name === "string") {
      const fn = caller.functions.get(canonicalizePath(address.name));
      if (!fn) throw notFound(`${canonicalizePath(address.name)}${caller.path ? ` in component ${caller.path}` : ""}`);
      return { instance: caller, fn };
    }
    if (typeof address.reference === "string") return this.child(caller, address.reference);
    if (typeof address.functionHandle === "string") return this.fromHandle(address.functionHandle);
    throw new FunctionError("BadRequest", "A function reference is required (a name, a component reference or a function handle)");
  }

  /** `_reference/childComponent/rateLimiter/lib/rateLimit` from `caller`: the public `lib:rateLimit` of its child `rateLimiter`. */
  private child(caller: ComponentInstance, reference: string): FunctionTarget {
    if (!reference.startsWith(CHILD_REFERENCE)) throw new FunctionError("BadRequest", `Unsupported function reference ${JSON.stringify(reference)}`);
    const parts = reference.slice(CHILD_REFERENCE.length).split("/");
    if (parts.length < 3)
      throw new FunctionError("BadRequest", `A component function reference names a component, a module and a function: ${JSON.stringify(reference)}`);
    const [name, ...rest] = parts as [string, ...string[]];
    const path = caller.path ? `${caller.path}/${name}` : name;
    const instance = this.instances.get(path);
    if (!instance) throw notFound(`component ${path} (is it installed with use() in its parent's convex.config.ts?)`);
    const fnPath = `${rest.slice(0, -1).join("/")}:${rest.at(-1)}`;
    const fn = instance.functions.get(fnPath);
    // A component's internal functions are its own: its parent reaches its public ones only.
    if (!fn || fn.visibility !== "public") throw notFound(`${fnPath} in component ${path}`);
    return { instance, fn };
  }

  private fromHandle(handle: string): FunctionTarget {
    const parsed = parseFunctionHandle(handle);
    const instance = parsed && this.instances.get(parsed.componentPath);
    const fn = parsed && instance?.functions.get(parsed.functionPath);
    if (!instance || !fn) throw notFound(`the function handle ${JSON.stringify(handle)}`);
    return { instance, fn };
  }

  /** `createFunctionHandle(ref)` from inside `caller`: a string that names the function from anywhere. */
  handleFor(caller: ComponentInstance, address: FunctionAddress): string {
    const { instance, fn } = this.find(caller, address);
    return functionHandle(instance.path, fn.path);
  }
}

/** `function://<component path>;<module:function>`: opaque to user code, stable across restarts (components store them). */
export function functionHandle(componentPath: string, functionPath: string): string {
  return `${HANDLE}${componentPath};${functionPath}`;
}

export function parseFunctionHandle(handle: string): { componentPath: string; functionPath: string } | null {
  if (!handle.startsWith(HANDLE)) return null;
  const rest = handle.slice(HANDLE.length);
  const semicolon = rest.indexOf(";");
  if (semicolon < 0) return null;
  return { componentPath: rest.slice(0, semicolon), functionPath: rest.slice(semicolon + 1) };
}

/** How a function is named in messages: `lib:rateLimit in component rateLimiter`. */
export function describeTarget({ instance, fn }: FunctionTarget): string {
  return instance.path ? `${fn.path} in component ${instance.path}` : fn.path;
}

function notFound(what: string): FunctionError {
  return new FunctionError("FunctionNotFound", `Could not find ${what}`);
}
