/**
 * What a running function knows of the request and the deployment it runs
 * for, beside its syscalls: the request id (shared by every function one
 * request sets off, so the operator's log ties an action to the queries and
 * mutations it called) and the deployment's environment variables.
 *
 * `process.env` is the one way functions read variables (as on Convex). With
 * `nodejs_compat` the runtime fills it with the Worker's vars and secrets;
 * several deployments share an isolate and its `process`, so it is wrapped
 * when this module loads: inside a run a name the deployment set wins,
 * anything else reads the Worker's value as before. Outside any run (a module's top level, which is
 * loaded once for every deployment of the isolate) only the Worker's vars
 * are seen. Routed through the run's scope (../run-scope.ts) like the `Convex` global.
 */
import { runScope, withScopeField, type EnvironmentVariables, type RunContext } from "../run-scope.ts";

export type { EnvironmentVariables, RunContext } from "../run-scope.ts";

const NO_VARIABLES: EnvironmentVariables = new Map();
const context = { getStore: (): RunContext | undefined => runScope.getStore()?.context };

export function currentRunContext(): RunContext | undefined {
  return context.getStore();
}

/** The random half of this isolate's request ids (drawn on first use: Workers allow no random draw at module top level). */
let requestIdPrefix: string | null = null;
let requestCounter = 0;

/**
 * A request id as Convex prints them: 16 hex digits, a random half per isolate and a counter, so a run draws no
 * random UUID (one per run showed in a constant query's profile, issue 27); a new random half when the counter wraps.
 */
export function newRequestId(): string {
  if (requestIdPrefix === null || requestCounter === 0xffffffff) {
    requestIdPrefix = crypto.randomUUID().slice(0, 8);
    requestCounter = 0;
  }
  return requestIdPrefix + (++requestCounter).toString(16).padStart(8, "0");
}

/** Runs `fn` with `run` as its context: the functions it runs, at any depth of awaits, read these variables. */
export function inRunContext<T>(run: RunContext, fn: () => T): T {
  return withScopeField("context", run, fn);
}

/** A request from outside (HTTP) names its id: every function it runs carries it. */
export function withRequestId<T>(requestId: string, fn: () => T): T {
  return withScopeField("context", { requestId, environment: context.getStore()?.environment ?? NO_VARIABLES }, fn);
}

/**
 * Wraps `process.env` (where there is one: workerd with `nodejs_compat`,
 * Node) so a run sees its deployment's variables first. Done when the engine
 * is imported, before the app's function modules load, so a module that
 * keeps `const env = process.env` at its top level reads the wrapper too.
 */
function wrapProcessEnv(): void {
  const host = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  if (!host?.env) return;
  const own = (name: string | symbol) => (typeof name === "string" ? context.getStore()?.environment.get(name) : undefined);
  const hidden = (name: string | symbol) => typeof name === "string" && hiddenHostVariables.has(name);
  host.env = new Proxy(host.env, {
    get: (target, name) => own(name) ?? (hidden(name) ? undefined : Reflect.get(target, name)),
    has: (target, name) => own(name) !== undefined || (!hidden(name) && Reflect.has(target, name)),
    ownKeys: (target) => {
      const names = context.getStore()?.environment.keys();
      const visible = Reflect.ownKeys(target).filter((name) => !hidden(name));
      return names ? [...new Set([...visible, ...names])] : visible;
    },
    getOwnPropertyDescriptor: (target, name) => {
      const value = own(name);
      if (value !== undefined) return { value, writable: true, enumerable: true, configurable: true };
      return hidden(name) ? undefined : Reflect.getOwnPropertyDescriptor(target, name);
    },
  });
}

/** The host's own settings, which functions must not read (the admin key, ...): see `hideHostVariables`. */
const hiddenHostVariables = new Set<string>();

/**
 * Names of the host's variables that are its own configuration, not the
 * app's (with `nodejs_compat` every Worker var and secret is in `process.env`):
 * functions read them as unset, unless their deployment sets one of the same name.
 */
export function hideHostVariables(names: Iterable<string>): void {
  for (const name of names) hiddenHostVariables.add(name);
}

wrapProcessEnv();
