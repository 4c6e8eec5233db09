/**
 * `npm run check:modules [-- <convex dir>] [--warn]`: loads every function
 * module of the app, as a deployment will, and names each one that throws
 * while it loads (a key read at the top level that is not set, a typo in an
 * import), before anything serves it.
 *
 * `npm run dev` runs it with `--warn` (it reports and the server still
 * starts: the other modules serve, as the deployment would); `npm run deploy`
 * refuses to deploy an app with such a module, as Convex's push does.
 *
 * The app is bundled the way wrangler bundles the Worker (esbuild, the
 * `workerd` export condition) from the registry codegen writes, and each
 * module's loader is called in Node. A module that needs something only
 * workerd has at its top level would be reported too: say so in the
 * message, since the deployment itself records the real outcome
 * (`moduleErrors` in the admin status).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { generate } from "./codegen.ts";

export interface ModuleLoadError {
  modulePath: string;
  error: string;
}

/** The modules of the app in `convexDir` that throw while they load (codegen runs first). */
export async function moduleLoadErrors(convexDir: string): Promise<ModuleLoadError[]> {
  generate(convexDir);
  const out = mkdtempSync(join(tmpdir(), "calmsync-modules-"));
  try {
    await build({
      entryPoints: [join(convexDir, "_generated", "modules.js")],
      outdir: out,
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "node",
      conditions: ["workerd", "worker"],
      external: ["cloudflare:*", "node:*"],
      logLevel: "silent",
    });
    const { app } = (await import(pathToFileURL(join(out, "modules.js")).href)) as { app: { modules: Record<string, () => Promise<unknown>> } };
    const errors: ModuleLoadError[] = [];
    for (const [modulePath, load] of Object.entries(app.modules)) {
      try {
        await load();
      } catch (error) {
        errors.push({ modulePath, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
      }
    }
    return errors;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** The report for `errors`: one line per module. */
export function describeLoadErrors(errors: ModuleLoadError[]): string {
  return errors.map(({ modulePath, error }) => `  convex/${modulePath} fails to load: ${error}`).join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  const args = process.argv.slice(2);
  const warnOnly = args.includes("--warn");
  const convexDir = resolve(args.find((arg) => !arg.startsWith("--")) ?? "convex");
  const errors = await moduleLoadErrors(convexDir);
  if (errors.length === 0) {
    console.log(`Module check: every module of ${convexDir} loads.`);
  } else {
    const report = `${errors.length} module(s) fail to load; their functions will answer with this error, the others serve:\n${describeLoadErrors(errors)}`;
    if (warnOnly) console.warn(`WARNING: ${report}`);
    else {
      console.error(`Module check failed: ${report}`);
      process.exit(1);
    }
  }
}
