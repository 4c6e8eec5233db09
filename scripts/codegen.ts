/**
 * `npm run codegen`: writes `convex/_generated/` for the project's functions,
 * offline and with no Convex account (Convex's own `npx convex codegen` pushes
 * to a deployment first).
 *
 * - `server.ts`, `dataModel.ts`, `api.ts`: the same types a Convex project
 *   gets (`query` from "./_generated/server", `Doc<"messages">`,
 *   `api.messages.list`), built from `convex/server`'s generic helpers.
 * - `modules.js` (and its `.d.ts`): calmsync's registry of the app: the schema and every
 *   function module by module path, which the Worker imports. There is no
 *   hand-kept index: adding a file to `convex/` adds its functions.
 * - `guarded/` and `guard.js`: the app's files as the Worker runs them, with a guard
 *   at every loop and function entry so one that never yields can be stopped
 *   (scripts/lib/guarded-copies.ts); `modules.js` imports these.
 *
 * - With `convex.config.ts`, its component instances
 *   (`scripts/lib/component-tree.ts`): `components` in `api.ts`, typed by
 *   each package's own `_generated/component.js` as Convex's codegen types
 *   it, and in `modules.js` each component's compiled schema and function
 *   modules, imported from the package by file (its `exports` hide them).
 *
 * Files Convex's codegen left behind (`api.js`, `server.d.ts`, ...) are
 * removed: they read `process.env` at import and would shadow these.
 *
 * Usage: node scripts/codegen.ts [convex-dir]
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import { flatten, readComponentTreeSync, type ComponentNode } from "./lib/component-tree.ts";
import { appSourceFiles, writeGuardedCopies } from "./lib/guarded-copies.ts";

const SOURCE = /\.(ts|tsx|js|jsx|mts|mjs)$/;
const STALE = [
  "api.js",
  "api.d.ts",
  "api.ts",
  "server.js",
  "server.d.ts",
  "server.ts",
  "dataModel.d.ts",
  "dataModel.ts",
  "modules.ts",
  "modules.js",
  "modules.d.ts",
  "api_cjs.cjs",
  "api_cjs.d.cts",
];

/** Module paths (`messages`, `chat/rooms`) of every function file, as Convex picks them. */
export function findModules(convexDir: string): { modulePath: string; file: string }[] {
  const found: { modulePath: string; file: string }[] = [];
  for (const path of appSourceFiles(convexDir)) {
    const file = relative(convexDir, path).split("\\").join("/");
    const modulePath = file.replace(SOURCE, "");
    // schema.ts is not a module; neither is a file with more dots in its name (auth.config.ts, convex.config.ts).
    if (basename(modulePath).includes(".") || modulePath === "schema") continue;
    found.push({ modulePath, file });
  }
  return found;
}

/** `schema.ts`, `auth.config.ts`: the file with that stem at the top of the app, if any. */
function rootFile(convexDir: string, stem: string): string | null {
  for (const extension of ["ts", "tsx", "js", "mts", "mjs"]) if (existsSync(join(convexDir, `${stem}.${extension}`))) return `${stem}.${extension}`;
  return null;
}

function identifier(modulePath: string, taken: Set<string>): string {
  let name = modulePath.replace(/[^a-zA-Z0-9_]/g, "_");
  if (/^[0-9]/.test(name)) name = `_${name}`;
  while (taken.has(name)) name = `${name}_`;
  taken.add(name);
  return name;
}

/** What this codegen writes; the rest of `STALE` is Convex's codegen's leftovers. */
const GENERATED = new Set(["dataModel.ts", "server.ts", "api.ts", "modules.js", "modules.d.ts", "guard.js"]);

/**
 * Writes `text` unless the file already holds it: `wrangler dev` reruns codegen (its build
 * command) when `convex/` changes, and a rewrite of `_generated/` would set the watch off again.
 */
function writeIfChanged(path: string, text: string): void {
  if (existsSync(path) && readFileSync(path, "utf8") === text) return;
  writeFileSync(path, text);
}

/** An import specifier for `file` from the directory `from` (relative, POSIX separators). */
function importFrom(from: string, file: string): string {
  const path = relative(from, file).split("\\").join("/");
  return path.startsWith(".") ? path : `./${path}`;
}

/** A component's `ComponentApi` type, from its package as Convex's codegen names it (a component without a package specifier is untyped). */
function componentApiType(node: ComponentNode): string {
  const specifier = node.specifier?.replace(/\/convex\.config(\.js|\.mjs|\.ts)?$/, "");
  return specifier ? `import(${JSON.stringify(`${specifier}/_generated/component.js`)}).ComponentApi<${JSON.stringify(node.name)}>` : "any";
}

/** The registry's lines for the component instances: each component's definition once, then the instances by path. */
function componentRegistry(out: string, components: readonly ComponentNode[]): { imports: string; entries: string } {
  const definitions = new Map<string, string>();
  let imports = "";
  for (const { directory } of components) {
    if (definitions.has(directory)) continue;
    const id = `component${definitions.size}`;
    definitions.set(directory, id);
    const schema = rootFile(directory, "schema");
    if (schema) imports += `import ${id}Schema from ${JSON.stringify(importFrom(out, join(directory, schema)))};\n`;
    const modules = findModules(directory).map(
      ({ modulePath, file }) => `    ${JSON.stringify(modulePath)}: () => import(${JSON.stringify(importFrom(out, join(directory, file)))}),`,
    );
    imports += `const ${id} = {\n  schema: ${schema ? `${id}Schema` : "null"},\n  modules: {\n${modules.join("\n")}\n  },\n};\n`;
  }
  const entries = components
    .map(
      ({ path, directory, package: pkg, httpPrefix }) =>
        `    ${JSON.stringify(path)}: { definition: ${definitions.get(directory)}, package: ${JSON.stringify(pkg)}${httpPrefix ? `, httpPrefix: ${JSON.stringify(httpPrefix)}` : ""} },`,
    )
    .join("\n");
  return { imports, entries };
}

const HEADER =
  "/* eslint-disable */\n// Generated by `npm run codegen` (scripts/codegen.ts). Do not edit: it is rewritten before dev, test, typecheck and deploy.\n";

export function generate(convexDir: string): { modules: string[]; hasSchema: boolean; components: string[] } {
  const out = join(convexDir, "_generated");
  mkdirSync(out, { recursive: true });
  for (const name of STALE) if (!GENERATED.has(name)) rmSync(join(out, name), { force: true });
  const modules = findModules(convexDir);
  const schema = rootFile(convexDir, "schema");
  const authConfig = rootFile(convexDir, "auth.config");
  const componentConfig = rootFile(convexDir, "convex.config");
  const tree = componentConfig ? readComponentTreeSync(join(convexDir, componentConfig)) : [];
  const components = flatten(tree);
  const taken = new Set<string>(["schema"]);
  const names = modules.map((module) => ({ ...module, id: identifier(module.modulePath, taken) }));
  const copies = writeGuardedCopies(convexDir, writeIfChanged);
  /** The guarded copy of an app file (relative to convexDir), as `modules.js` imports it. */
  const guarded = (file: string) =>
    `./${relative(out, copies.get(join(convexDir, file))!)
      .split("\\")
      .join("/")}`;

  writeIfChanged(
    join(out, "dataModel.ts"),
    `${HEADER}import type { ${schema ? "DataModelFromSchemaDefinition" : "AnyDataModel"}, DocumentByName, SystemTableNames, TableNamesInDataModel } from "convex/server";
import type { GenericId } from "convex/values";
${schema ? `import type schema from "../${schema.replace(SOURCE, ".js")}";\n` : ""}
/** The tables of this app and their document types. */
export type DataModel = ${schema ? "DataModelFromSchemaDefinition<typeof schema>" : "AnyDataModel"};
export type TableNames = TableNamesInDataModel<DataModel>;
/** A document of \`TableName\`, with its system fields. */
export type Doc<TableName extends TableNames> = DocumentByName<DataModel, TableName>;
/** The id of a document of \`TableName\`. */
export type Id<TableName extends TableNames | SystemTableNames> = GenericId<TableName>;
`,
  );

  writeIfChanged(
    join(out, "server.ts"),
    `${HEADER}import {
  actionGeneric,
  httpActionGeneric,
  internalActionGeneric,
  internalMutationGeneric,
  internalQueryGeneric,
  mutationGeneric,
  queryGeneric,
} from "convex/server";
import type {
  ActionBuilder,
  GenericActionCtx,
  GenericDatabaseReader,
  GenericDatabaseWriter,
  GenericMutationCtx,
  GenericQueryCtx,
  HttpActionBuilder,
  MutationBuilder,
  QueryBuilder,
} from "convex/server";
import type { DataModel } from "./dataModel.js";

export const query: QueryBuilder<DataModel, "public"> = queryGeneric;
export const internalQuery: QueryBuilder<DataModel, "internal"> = internalQueryGeneric;
export const mutation: MutationBuilder<DataModel, "public"> = mutationGeneric;
export const internalMutation: MutationBuilder<DataModel, "internal"> = internalMutationGeneric;
export const action: ActionBuilder<DataModel, "public"> = actionGeneric;
export const internalAction: ActionBuilder<DataModel, "internal"> = internalActionGeneric;
export const httpAction: HttpActionBuilder = httpActionGeneric;

export type QueryCtx = GenericQueryCtx<DataModel>;
export type MutationCtx = GenericMutationCtx<DataModel>;
export type ActionCtx = GenericActionCtx<DataModel>;
export type DatabaseReader = GenericDatabaseReader<DataModel>;
export type DatabaseWriter = GenericDatabaseWriter<DataModel>;
`,
  );

  const moduleTypes = names.map(({ modulePath, id }) => `  ${JSON.stringify(modulePath)}: typeof ${id};`).join("\n");
  writeIfChanged(
    join(out, "api.ts"),
    `${HEADER}import { anyApi${tree.length ? ", componentsGeneric" : ""} } from "convex/server";
import type { ApiFromModules, FilterApi, FunctionReference } from "convex/server";
${names.map(({ file, id }) => `import type * as ${id} from "../${file.replace(SOURCE, ".js")}";`).join("\n")}

declare const fullApi: ApiFromModules<{
${moduleTypes}
}>;

/** References to the public functions: \`api.messages.list\`. */
export const api: FilterApi<typeof fullApi, FunctionReference<any, "public">> = anyApi as any;
/** References to the internal functions (callable from other functions only). */
export const internal: FilterApi<typeof fullApi, FunctionReference<any, "internal">> = anyApi as any;
${
  tree.length
    ? `
/** The component instances convex.config.ts installs: \`components.<name>.<module>.<function>\`, callable from functions only. */
export const components = componentsGeneric() as unknown as {
${tree.map((node) => `  ${JSON.stringify(node.name)}: ${componentApiType(node)};`).join("\n")}
};
`
    : ""
}`,
  );

  const registry = componentRegistry(out, components);
  // The registry is JavaScript with a declaration of its own, so the Worker's type-check stops
  // here and the app's modules are checked by the app's tsconfig (convex/tsconfig.json), as in Convex.
  writeIfChanged(
    join(out, "modules.js"),
    `${HEADER}// calmsync's registry of this app: the schema, the auth providers and every function module, by module path.
// auth.config.ts is loaded when calmsync asks, so it reads placeholders for the variables each deployment fills in.
// Each module is loaded on its own (a bundled dynamic import runs the module's top level when
// called), so one that throws while loading is reported and the others still serve. Each is the
// guarded copy of the app's file (./guarded/, see scripts/lib/guarded-copies.ts).
${schema ? `import schema from "${guarded(schema)}";\n` : ""}${registry.imports}
export const app = {
  schema: ${schema ? "schema" : "null"},
  authConfig: ${authConfig ? `() => import("${guarded(authConfig)}")` : "null"},
  modules: {
${names.map(({ modulePath, file }) => `    ${JSON.stringify(modulePath)}: () => import("${guarded(file)}"),`).join("\n")}
  },
  components: {
${registry.entries}
  },
};
`,
  );
  writeIfChanged(
    join(out, "modules.d.ts"),
    `${HEADER}/** The app's schema (a convex/server \`defineSchema\`, or null) and its function modules by module path. */
export declare const app: {
  schema: { tables: Record<string, unknown>; schemaValidation: boolean } | null;
  /** convex/auth.config.ts's loader (evaluated with placeholder variables, see calmsync's config-variables.ts), or null. */
  authConfig: (() => Promise<{ default?: unknown }>) | null;
  /** Loaders of the function modules, by module path (see calmsync's loadApp). */
  modules: Record<string, () => Promise<Record<string, unknown>>>;
  /** The component instances of convex.config.ts by path, each with its component's schema and modules, the npm package (\`name@version\`) it comes from, and where its http.ts routes are served (\`httpPrefix\`), if anywhere. */
  components: Record<string, { definition: { schema: { tables: Record<string, unknown>; schemaValidation: boolean } | null; modules: Record<string, () => Promise<Record<string, unknown>>> }; package: string | null; httpPrefix?: string }>;
};
`,
  );
  return { modules: modules.map((m) => m.modulePath), hasSchema: schema !== null, components: components.map((c) => c.path) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const convexDir = resolve(process.argv[2] ?? "convex");
  const { modules, hasSchema, components } = generate(convexDir);
  console.log(
    `codegen: ${modules.length} module(s) in ${relative(process.cwd(), convexDir) || "."}${hasSchema ? " with a schema" : ", no schema"}: ${modules.join(", ")}${components.length ? `; components: ${components.join(", ")}` : ""}`,
  );
}
