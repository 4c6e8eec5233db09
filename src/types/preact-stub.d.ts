/**
 * What the Worker's type-check (tsconfig.json) sees of `preact`. The example app's
 * Convex Auth (convex/auth.ts, its `authTables` in the schema) brings in
 * `@auth/core`'s typings, whose credentials provider types its form fields with
 * preact's JSX, and preact's JSX typings pull in the DOM lib (`/// <reference lib="dom" />`),
 * whose `crypto`, `Response` and buffers replace workerd's. The Worker never renders JSX:
 * the one name used is given here, loosely typed.
 */
export namespace JSX {
  interface IntrinsicElements {
    [element: string]: Record<string, unknown>;
  }
}
