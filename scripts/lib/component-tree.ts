/**
 * The component instances an app installs (`convex/convex.config.ts`:
 * `app.use(rateLimiter, { name })`, and the components those components use),
 * read by evaluating the app's config as Convex's bundler does: each
 * component's `convex.config.js` is imported with its directory attached as
 * `componentDefinitionPath` (without it `use()` refuses, "This code only
 * works in Convex runtime") and its own name as the instance's default
 * (`defaultName`). The packages themselves are used unmodified.
 *
 * A component's directory is where its compiled `convex.config.js` lives
 * (`node_modules/@convex-dev/workpool/dist/component`): its function modules
 * and `schema.js` are beside it, as in Convex.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { registerHooks } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export interface ComponentNode {
  /** `"workpool"`, `"workpool/batchWorker"`. */
  path: string;
  /** The name its parent gave it (`use(x, { name })`, else the component's own). */
  name: string;
  /** The component's directory (its `convex.config.js`'s). */
  directory: string;
  /** How the app imported it (`@convex-dev/workpool/convex.config.js`), when a package specifier did. */
  specifier: string | null;
  /**
   * Where its `http.ts` routes are served (`app.use(x, { httpPrefix: "/x/" })`,
   * ending in "/"), composed with its parent's mount; null when not mounted
   * (a component whose parent is not mounted is not reachable either).
   */
  httpPrefix: string | null;
  /** The npm package the component comes from, `name@version` (its nearest package.json with a name), or null outside any package. */
  package: string | null;
  children: ComponentNode[];
}

const CONFIG = /\/convex\.config\.(js|mjs|ts)$/;
const ORIGINAL = "calmsync-original";

/** Package specifiers by the config file they resolved to (for the types of `components`). */
const specifiers = new Map<string, string>();
let hooked = false;

/** Makes every component config that is imported carry its directory (see the top of this file). */
function hookComponentConfigs(appConfigUrl: () => string): void {
  if (hooked) return;
  hooked = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = resolveAsBundlers(specifier, context, nextResolve);
      if (CONFIG.test(new URL(resolved.url).pathname) && !specifier.startsWith(".") && !specifier.startsWith("/")) specifiers.set(resolved.url, specifier);
      return resolved;
    },
    load(url, context, nextLoad) {
      const parsed = new URL(url);
      if (parsed.protocol !== "file:" || !CONFIG.test(parsed.pathname) || parsed.search.includes(ORIGINAL) || url.split("?")[0] === appConfigUrl())
        return nextLoad(url, context);
      const directory = dirname(fileURLToPath(parsed));
      const original = `${parsed.origin === "null" ? "file://" : parsed.origin}${parsed.pathname}?${ORIGINAL}`;
      return {
        format: "module",
        shortCircuit: true,
        // An instance's default name is the component's own (`defineComponent("rateLimiter")`), as in Convex.
        source: `import definition from ${JSON.stringify(original)};\ndefinition.componentDefinitionPath = ${JSON.stringify(directory)};\ndefinition.defaultName ??= definition._name;\nexport default definition;\n`,
      };
    },
  });
}

/**
 * Compiled component code may import `./logging` without an extension, as
 * bundlers (Convex's esbuild, wrangler's) allow and Node does not: try what a bundler would.
 */
function resolveAsBundlers(specifier: string, context: ResolveContext, nextResolve: NextResolve): ResolveResult {
  try {
    return nextResolve(specifier, context);
  } catch (error) {
    if (!specifier.startsWith(".") || (error as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw error;
    for (const candidate of [`${specifier}.js`, `${specifier}/index.js`]) {
      try {
        return nextResolve(candidate, context);
      } catch {
        // the next candidate
      }
    }
    throw error;
  }
}

type ResolveHook = NonNullable<Parameters<typeof registerHooks>[0]["resolve"]>;
type ResolveContext = Parameters<ResolveHook>[1];
type NextResolve = Parameters<ResolveHook>[2];
type ResolveResult = ReturnType<NextResolve>;

interface Definition {
  componentDefinitionPath?: string;
  _childComponents?: [name: string, definition: Definition, env?: unknown, httpPrefix?: string][];
}

let currentApp = "";

/** The instances `configFile` (the app's convex.config.ts) installs, depth first; a fresh evaluation on every call. */
export async function readComponentTree(configFile: string): Promise<ComponentNode[]> {
  const appUrl = pathToFileURL(configFile).href;
  currentApp = appUrl;
  hookComponentConfigs(() => currentApp);
  const app = ((await import(`${appUrl}?t=${Date.now()}`)) as { default?: Definition }).default;
  if (!app || !Array.isArray(app._childComponents)) throw new Error(`${configFile} must export default defineApp() (from "convex/server")`);
  const walk = (definition: Definition, parent: string, parentMount: string | null): ComponentNode[] =>
    (definition._childComponents ?? []).map(([name, child, , prefix]) => {
      const path = parent ? `${parent}/${name}` : name;
      const httpPrefix = mountOf(prefix, parentMount);
      if (!child.componentDefinitionPath)
        throw new Error(`Component ${path} has no convex.config.js of its own (only packaged components with a compiled convex.config.js are supported)`);
      const directory = child.componentDefinitionPath;
      const configUrl = [...specifiers.keys()].find((url) => dirname(fileURLToPath(url.split("?")[0]!)) === directory);
      const specifier = configUrl ? specifiers.get(configUrl)! : null;
      return { path, name, directory, specifier, httpPrefix, package: packageOf(directory), children: walk(child, path, httpPrefix) };
    });
  return walk(app, "", "/");
}

/** A child's mount: its `httpPrefix` (normalized to end in "/", as Convex does) under its parent's, or null. */
function mountOf(prefix: string | undefined, parentMount: string | null): string | null {
  if (prefix === undefined || parentMount === null) return null;
  const normalized = prefix.endsWith("/") ? prefix : `${prefix}/`;
  return parentMount + normalized.slice(1);
}

/**
 * The package a component directory belongs to, for the operator (status,
 * dashboard): the nearest package.json above it that has a name, inside
 * `node_modules`. Compiled
 * packages may hold nested package.json files with only `type` (dist/esm),
 * so those are passed over.
 */
export function packageOf(directory: string): string | null {
  // A component beside the app (not installed from npm) has no package of its own: the app's package.json is not its.
  if (!directory.split(/[\\/]/).includes("node_modules")) return null;
  for (let dir = directory; ; dir = dirname(dir)) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const { name, version } = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (name) return version ? `${name}@${version}` : name;
    }
    if (dirname(dir) === dir) return null;
  }
}

/**
 * `readComponentTree`, synchronously: in a Node process of its own, so the
 * loader hooks and the packages' module state stay out of the caller's
 * (codegen runs inside `wrangler dev`'s helper and tests too).
 */
export function readComponentTreeSync(configFile: string): ComponentNode[] {
  const output = execFileSync(process.execPath, [fileURLToPath(import.meta.url), configFile], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  return JSON.parse(output) as ComponentNode[];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.stdout.write(JSON.stringify(await readComponentTree(process.argv[2]!)));
}

/** Every instance of the tree, parents before children. */
export function flatten(tree: readonly ComponentNode[]): ComponentNode[] {
  return tree.flatMap((node) => [node, ...flatten(node.children)]);
}
