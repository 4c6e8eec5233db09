/**
 * Convex's snapshot ZIP, as `npx convex export` writes it and `npx convex
 * import` reads it (get-convex/convex-backend, crates/exports and
 * snapshot_import/parse.rs):
 *
 *   README.md
 *   _tables/documents.jsonl          one {"name", "id"} per table (the id is Convex's table number)
 *   <table>/documents.jsonl          one document per line, in export JSON (export-json.ts)
 *   <table>/generated_schema.jsonl   "uniform": the documents are export JSON
 *   _storage/documents.jsonl         {_id, _creationTime, sha256, size, contentType?, internalId?}
 *   _storage/<id>[.<ext>]            each file's bytes (the extension a guess from its type)
 *
 * and the import options Convex's CLI has for it.
 */

export type SnapshotEntry =
  | { kind: "documents"; table: string }
  | { kind: "generatedSchema"; table: string }
  | { kind: "storageFile"; sourceId: string }
  | { kind: "tables" }
  | { kind: "ignored" };

const DOCUMENTS = /^(?:.*\/)?([^/]+)\/documents\.jsonl$/;
const GENERATED_SCHEMA = /^(?:.*\/)?([^/]+)\/generated_schema\.jsonl$/;
const STORAGE_FILE = /^(?:.*\/)?_storage\/([^/.]+)(?:\.[^/]+)?$/;

/** What a ZIP entry is, by its name (a prefix directory, as a renamed export has, is allowed). */
export function snapshotEntry(name: string): SnapshotEntry {
  if (name.endsWith("/")) return { kind: "ignored" };
  const documents = DOCUMENTS.exec(name);
  if (documents) {
    const table = documents[1]!;
    if (table === "_tables") return { kind: "tables" };
    // Other system tables (scheduled functions, crons) are the deployment's own, as on Convex.
    if (table.startsWith("_") && table !== "_storage") return { kind: "ignored" };
    return { kind: "documents", table };
  }
  const schema = GENERATED_SCHEMA.exec(name);
  if (schema) return { kind: "generatedSchema", table: schema[1]! };
  const file = STORAGE_FILE.exec(name);
  if (file) return { kind: "storageFile", sourceId: file[1]! };
  return { kind: "ignored" };
}

/** Whether an entry lies inside a component's folder (`_components/<name>/...`), which this import does not take. */
export function isComponentEntry(name: string): boolean {
  return /(^|\/)_components\//.test(name);
}

/** The one line of `generated_schema.jsonl` a current export writes (older ones wrote inferred shapes). */
export const UNIFORM_SCHEMA_LINE = '"uniform"';

export const SNAPSHOT_README = `# A calmsync snapshot export

This ZIP file is a snapshot of the tables of one calmsync deployment, in the
layout of a Convex snapshot export: documents for each table are lines of JSON
in <table>/documents.jsonl, files' metadata in _storage/documents.jsonl and
their bytes in _storage/<id>.

Import it with \`npm run import -- <deployment> <file>.zip\` (calmsync) or
\`npx convex import <file>.zip\` (Convex).
`;

export type ImportMode = "requireEmpty" | "append" | "replace";
export type ImportFormat = "zip" | "jsonl" | "json" | "csv";

export interface ImportOptions {
  readonly mode: ImportMode;
  readonly format: ImportFormat;
  /** The table of a single-table import (jsonl, json, csv); null for a ZIP. */
  readonly table: string | null;
}

const TABLE_NAME = /^[a-zA-Z][a-zA-Z0-9_]{0,63}$/;

/** The options of an import request (`?mode=&format=&table=`), or why they are wrong. */
export function importOptions(query: { mode?: string; format?: string; table?: string }): ImportOptions | { error: string } {
  const mode = query.mode ?? "requireEmpty";
  if (mode !== "requireEmpty" && mode !== "append" && mode !== "replace")
    return { error: `mode must be requireEmpty (the default), append or replace, not ${JSON.stringify(mode)}` };
  const table = query.table ?? null;
  const format = query.format ?? (table === null ? "zip" : "jsonl");
  if (format !== "zip" && format !== "jsonl" && format !== "json" && format !== "csv")
    return { error: `format must be zip, jsonl, json or csv, not ${JSON.stringify(format)}` };
  if (format === "zip" && table !== null) return { error: "A ZIP snapshot names its own tables: drop table, or import a jsonl, json or csv file into it" };
  if (format !== "zip" && table === null) return { error: `A ${format} file goes into one table: name it (--table <name>)` };
  if (table !== null && !TABLE_NAME.test(table))
    return {
      error: `${JSON.stringify(table)} is not a table name a file can be imported into (letters, digits and _, starting with a letter; system tables come only in a ZIP)`,
    };
  return { mode, format, table };
}

/** The format a file's name implies, as Convex's CLI guesses it. */
export function formatOfPath(path: string): ImportFormat | null {
  const extension = /\.([a-z]+)$/i.exec(path)?.[1]?.toLowerCase();
  return extension === "zip" ? "zip" : extension === "jsonl" ? "jsonl" : extension === "json" ? "json" : extension === "csv" ? "csv" : null;
}
