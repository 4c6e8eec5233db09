/**
 * `npm run check:imports` (part of `npm test`): the layering of `src/`.
 *
 * - No import cycle, type-only imports included: a cycle means two modules
 *   are one, or one of them depends on something above it.
 * - The runtime-agnostic rooms (the engine, sync, search, vectors, the wire
 *   protocol, knobs, operations, the client) import nothing of the
 *   Cloudflare shell: not `cloudflare:*`, not `src/deployment/`, not the
 *   Worker's own files. That is what lets them run and benchmark in Node.
 * - Every file in `src/deployment/` touches Cloudflare (directly, or through
 *   a file of the shell it imports): a file that does not belongs in an
 *   agnostic room.
 *
 * Exits 1 naming each problem. `--src <dir>` checks another tree laid out
 * the same way (the check's own test).
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";

const srcFlag = process.argv.indexOf("--src");
const SRC = srcFlag > 0 ? normalize(process.argv[srcFlag + 1]!) : join(import.meta.dirname, "..", "src");
const ROOT = dirname(SRC);
const AGNOSTIC_ROOMS = ["engine", "sync", "search", "vectors", "protocol", "knobs", "operations", "client", "web", "snapshots"];
/** Files at the top of `src/` that are not the Worker's: shared by every room. */
const SHARED_TOP_LEVEL = ["version.ts"];
/** The Cloudflare shell: the Durable Objects' room and the Worker's own files (the rest of the top of `src/`). */
const SHELL = (file: string) => roomOf(file) === "deployment" || (!relative(SRC, file).includes("/") && !SHARED_TOP_LEVEL.includes(relative(SRC, file)));
/** What only exists on Cloudflare's runtime: its modules, Durable Object and R2 types, socket attachments. */
const CLOUDFLARE_API = /\bcloudflare:|\b(DurableObject\w*|SqlStorage\w*|R2[A-Z]\w*|WebSocketPair|ExecutionContext|(de)?serializeAttachment)\b/;
/** Relative imports and re-exports, `import type` included. */
const RELATIVE_IMPORT = /(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+["'](\.{1,2}\/[^"']+)["']/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.tsx?$/.test(entry.name) && !/\.test\.tsx?$/.test(entry.name) && !entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

const files = sourceFiles(SRC);
const texts = new Map(files.map((file) => [file, readFileSync(file, "utf8")]));
const imports = new Map(files.map((file) => [file, [...texts.get(file)!.matchAll(RELATIVE_IMPORT)].map((m) => normalize(join(dirname(file), m[1]!)))]));
const name = (file: string) => relative(ROOT, file);
const roomOf = (file: string) => relative(SRC, file).split("/")[0]!;
const problems: string[] = [];

// Cycles: Tarjan's strongly connected components; each one of more than one file is a cycle.
const index = new Map<string, number>();
const low = new Map<string, number>();
const stack: string[] = [];
const onStack = new Set<string>();
function connect(file: string): void {
  index.set(file, index.size);
  low.set(file, index.get(file)!);
  stack.push(file);
  onStack.add(file);
  for (const target of imports.get(file)!) {
    if (!imports.has(target)) continue;
    if (!index.has(target)) {
      connect(target);
      low.set(file, Math.min(low.get(file)!, low.get(target)!));
    } else if (onStack.has(target)) low.set(file, Math.min(low.get(file)!, index.get(target)!));
  }
  if (low.get(file) !== index.get(file)) return;
  const component: string[] = [];
  let member: string;
  do {
    member = stack.pop()!;
    onStack.delete(member);
    component.push(member);
  } while (member !== file);
  if (component.length === 1) return;
  const inside = new Set(component);
  const edges = component.flatMap((from) =>
    imports
      .get(from)!
      .filter((to) => inside.has(to))
      .map((to) => `    ${name(from)} -> ${name(to)}`),
  );
  problems.push(`import cycle among ${component.length} files:\n${edges.join("\n")}`);
}
for (const file of files) if (!index.has(file)) connect(file);

// Agnostic rooms import nothing of the shell.
for (const file of files) {
  if (!AGNOSTIC_ROOMS.includes(roomOf(file))) continue;
  if (/\bfrom\s+["']cloudflare:/.test(texts.get(file)!))
    problems.push(`${name(file)} imports a cloudflare: module; the ${roomOf(file)} room must run in plain Node`);
  for (const target of imports.get(file)!) {
    if (SHELL(target)) {
      problems.push(`${name(file)} imports ${name(target)}: the ${roomOf(file)} room must not depend on the Cloudflare shell`);
    }
  }
}

// Every file of the shell touches Cloudflare, itself or through the shell files it imports.
const touchesCloudflare = new Map<string, boolean>();
function bound(file: string, seen = new Set<string>()): boolean {
  if (touchesCloudflare.has(file)) return touchesCloudflare.get(file)!;
  if (seen.has(file) || !texts.has(file)) return false;
  seen.add(file);
  const result = CLOUDFLARE_API.test(texts.get(file)!) || imports.get(file)!.some((target) => roomOf(target) === "deployment" && bound(target, seen));
  touchesCloudflare.set(file, result);
  return result;
}
for (const file of files) {
  if (roomOf(file) === "deployment" && !bound(file))
    problems.push(`${name(file)} uses nothing of Cloudflare: move it to a runtime-agnostic room (${AGNOSTIC_ROOMS.join(", ")})`);
}

if (problems.length > 0) {
  console.error(`Import check failed:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  process.exit(1);
}
console.log(`Import check: ${files.length} files in src/, no cycle, agnostic rooms free of the shell, every deployment/ file on Cloudflare.`);
