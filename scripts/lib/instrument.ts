/**
 * Build-time guards in the app's own code, so a function that never yields can be stopped.
 *
 * Nothing can preempt synchronous JavaScript in workerd: a `while (true) {}` in a query keeps the
 * Durable Object's one thread, and locally (`wrangler dev`, the vitest pool) every object and the
 * Worker with it, forever (`cpu_ms` is not enforced there). So codegen compiles each source file of
 * the app to JavaScript (esbuild) and, on the parsed tree (acorn), puts a call to the guard at the
 * start of every loop body and every function body. The engine makes the guard count and look at
 * the clock, and throw once a run has held the thread past its budget (src/engine/sync-guard.ts).
 *
 * Only insertions, never on a new line: the copy keeps esbuild's line numbers, and with them its
 * inline source map, so stack traces still point at the app's own lines.
 */
import { transformSync, type Loader } from "esbuild";
import { parse, type Node } from "acorn";
import { full } from "acorn-walk";

/** The name the guard is imported under in an instrumented file (unlikely to meet an app's own). */
export const GUARD_NAME = "__calmsync_guard";

export interface InstrumentOptions {
  /** The file's path as its source map names it (relative to the instrumented copy). */
  sourcefile: string;
  /** The import specifier of the guard module (`convex/_generated/guard.js`) from the instrumented copy. */
  guardModule: string;
  /** A new specifier for each import of the file (static, re-export or `import("literal")`); return it unchanged to keep it. */
  rewriteSpecifier?: (specifier: string) => string;
}

const LOADERS: Record<string, Loader> = { ts: "ts", mts: "ts", cts: "ts", tsx: "tsx", js: "js", mjs: "js", cjs: "js", jsx: "jsx" };

/** Text put at `at` (or in place of `at`..`end`); `order` sorts the ones at one position. */
type Edit = { at: number; end?: number; text: string; order: number };
/** The few fields of ESTree nodes read here (acorn's `Node` declares none of them). */
type Tree = Node & { body: Tree | Tree[]; directive?: string; source?: Tree | null; value?: unknown };

/** `source` (TypeScript or JavaScript, per `extension`) as guarded JavaScript. */
export function instrument(source: string, extension: string, options: InstrumentOptions): string {
  const loader = LOADERS[extension.replace(/^\./, "")];
  if (!loader) throw new Error(`instrument: no loader for .${extension}`);
  // es2022 lowers what acorn cannot parse yet (decorators, `using`); workerd runs all of es2022.
  const { code } = transformSync(source, {
    loader,
    format: "esm",
    target: "es2022",
    jsx: "automatic",
    sourcemap: "inline",
    sourcesContent: false,
    sourcefile: options.sourcefile,
  });
  const tree = parse(code, { ecmaVersion: "latest", sourceType: "module", allowHashBang: true });
  const call = `${GUARD_NAME}();`;
  const edits: Edit[] = [];
  // At one position, an outer node's opening goes before an inner one's and its closing after it.
  const open = (at: number, text: string, node: Node) => edits.push({ at, text, order: -(node.end - node.start) });
  const close = (at: number, text: string, node: Node) => edits.push({ at, text, order: -1e15 + (node.end - node.start) });
  const guardBody = (body: Tree, owner: Node, isFunction: boolean) => {
    if (body.type === "BlockStatement") {
      // A function's "use strict" must stay its first statement to mean anything.
      const statements = body.body as Tree[];
      let prologue = 0;
      while (isFunction && statements[prologue]?.directive !== undefined) prologue++;
      open(prologue > 0 ? statements[prologue - 1]!.end : body.start + 1, call, owner);
    } else if (isFunction) {
      // An arrow's expression body: `x => (guard(), x * 2)`.
      open(body.start, `(${GUARD_NAME}(), `, owner);
      close(body.end, ")", owner);
    } else {
      // A loop body that is one statement: `for (...) { guard(); statement }`.
      open(body.start, `{${call}`, owner);
      close(body.end, "}", owner);
    }
  };
  const rewrite = (literal: Tree) => {
    if (!options.rewriteSpecifier || literal.type !== "Literal" || typeof literal.value !== "string") return;
    const specifier = options.rewriteSpecifier(literal.value);
    if (specifier !== literal.value) edits.push({ at: literal.start, end: literal.end, text: JSON.stringify(specifier), order: 0 });
  };
  full(tree, (node) => {
    const n = node as Tree;
    switch (node.type) {
      case "ForStatement":
      case "ForInStatement":
      case "ForOfStatement":
      case "WhileStatement":
      case "DoWhileStatement":
        guardBody(n.body as Tree, node, false);
        break;
      case "FunctionDeclaration":
      case "FunctionExpression":
      case "ArrowFunctionExpression":
        guardBody(n.body as Tree, node, true);
        break;
      case "ImportDeclaration":
      case "ExportNamedDeclaration":
      case "ExportAllDeclaration":
      case "ImportExpression":
        if (n.source) rewrite(n.source);
        break;
    }
  });
  edits.sort((a, b) => a.at - b.at || a.order - b.order);
  let out = `import { tick as ${GUARD_NAME} } from ${JSON.stringify(options.guardModule)};`;
  let from = 0;
  for (const edit of edits) {
    out += code.slice(from, edit.at) + edit.text;
    from = edit.end ?? edit.at;
  }
  return out + code.slice(from);
}
