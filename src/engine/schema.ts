/**
 * The deployment's schema as the engine uses it: tables, their indexes and
 * search indexes, and the document validators, read from a `convex/server`
 * `defineSchema(...)` (each table's `export()`, as Convex's own tooling does).
 *
 * Every index orders by its fields, then `_creationTime`, then `_id`, so keys
 * are unique. Every table also has `by_id` and `by_creation_time`. As in
 * Convex, a table the schema does not name may still be written; it gets the
 * two built-in indexes when first used, and its documents are not validated.
 */
import type { Document, Value } from "./values.ts";
import { validatorProblem, type ValidatorJson } from "./validators.ts";
import { encodeKey, type IndexKey } from "./keys.ts";
import { localTableName, namespacePrefix, splitTableName, TableNamespace } from "./table-namespace.ts";

export interface IndexDefinition {
  /** Name within the table, e.g. `by_chat`. */
  readonly name: string;
  /** Name unique within the deployment, e.g. `messages.by_chat`. */
  readonly qualifiedName: string;
  readonly table: string;
  /** The user fields; the key appends `_creationTime` and `_id` (only `_id` for `by_id`). */
  readonly fields: readonly string[];
  /** The fields actually encoded into the key, in order. */
  readonly keyFields: readonly string[];
}

export interface SearchIndexDefinition {
  readonly name: string;
  readonly qualifiedName: string;
  readonly table: string;
  readonly searchField: string;
  readonly filterFields: readonly string[];
}

export interface VectorIndexDefinition {
  readonly name: string;
  readonly qualifiedName: string;
  readonly table: string;
  readonly vectorField: string;
  readonly dimensions: number;
  readonly filterFields: readonly string[];
}

/** Convex's bounds on vector indexes, checked when a schema is pushed. */
export const VECTOR_INDEX_LIMITS = { minDimensions: 2, maxDimensions: 4_096, maxFilterFields: 16, maxIndexesPerTable: 4 } as const;

/** What `defineTable(...).export()` returns (the parts the engine uses). */
export interface ExportedTable {
  indexes: { indexDescriptor: string; fields: string[] }[];
  searchIndexes: { indexDescriptor: string; searchField: string; filterFields: string[] }[];
  vectorIndexes?: { indexDescriptor: string; vectorField: string; dimensions: number; filterFields: string[] }[];
  documentType: ValidatorJson;
}

/**
 * The shape of `convex/server`'s `defineSchema(...)` result the engine reads.
 * Each table has an `export()` (marked internal in convex's types, so not typed here).
 */
export interface ConvexSchemaDefinition {
  tables: Record<string, unknown>;
  schemaValidation: boolean;
}

export class SchemaError extends Error {
  override name = "SchemaError";
}

const TABLE_NAME = /^[a-zA-Z][a-zA-Z0-9_]{0,63}$/;
/**
 * Convex's system tables, readable through `db.system` and written only by
 * the engine: `_scheduled_functions` by the scheduler (with an index of
 * pending jobs by due time), `_cron_jobs` by the cron runner, `_storage` by
 * file storage (src/engine/files).
 */
const SYSTEM_TABLES: Record<string, ExportedTable> = {
  _scheduled_functions: {
    indexes: [{ indexDescriptor: "by_next", fields: ["state.kind", "scheduledTime"] }],
    searchIndexes: [],
    documentType: { type: "any" },
  },
  _storage: { indexes: [], searchIndexes: [], documentType: { type: "any" } },
  _cron_jobs: { indexes: [], searchIndexes: [], documentType: { type: "any" } },
};
/** A name a table may have: an app's or system table's, or one of those under a component's prefix (`table-namespace.ts`). */
const isValidTableName = (name: string) => {
  const local = localTableName(name);
  return TABLE_NAME.test(local) || Object.hasOwn(SYSTEM_TABLES, local);
};

/** Whether a (stored) table is a system table: a component's `_scheduled_functions` is one, its `rateLimits` is not. */
export function isSystemTable(name: string): boolean {
  return localTableName(name).startsWith("_");
}
const BUILT_IN_INDEXES = new Set(["by_id", "by_creation_time"]);

export interface ResolvedTable {
  readonly name: string;
  /** The document validator (without system fields), or null when documents are not validated. */
  readonly documentType: ValidatorJson | null;
  readonly indexes: ReadonlyMap<string, IndexDefinition>;
  readonly searchIndexes: ReadonlyMap<string, SearchIndexDefinition>;
  readonly vectorIndexes: ReadonlyMap<string, VectorIndexDefinition>;
}

export function isBuiltInIndex(qualifiedName: string): boolean {
  return BUILT_IN_INDEXES.has(qualifiedName.slice(qualifiedName.indexOf(".") + 1));
}

export class Schema {
  private readonly resolved = new Map<string, ResolvedTable>();
  /** Every index of every table the schema names, by qualified name. */
  readonly indexes = new Map<string, IndexDefinition>();
  /** Whether writes are checked against their table's document type. */
  readonly validatesDocuments: boolean;

  /**
   * `definition` is a `convex/server` schema; without one every table is
   * schemaless. `components` are the app's component instances, each with its
   * own schema: their tables are stored under the instance's prefix.
   */
  constructor(definition?: ConvexSchemaDefinition | null, components: readonly { componentPath: string; schema: ConvexSchemaDefinition | null }[] = []) {
    this.validatesDocuments = definition?.schemaValidation ?? false;
    this.addTables("", definition ?? null);
    for (const { componentPath, schema } of components) this.addTables(namespacePrefix(componentPath), schema);
  }

  private addTables(prefix: string, definition: ConvexSchemaDefinition | null): void {
    const validates = definition?.schemaValidation ?? false;
    // System tables exist from the start, so every object in an isolate sees the same index definitions.
    for (const name of Object.keys(SYSTEM_TABLES)) this.table(prefix + name);
    for (const [table, tableDefinition] of Object.entries(definition?.tables ?? {})) {
      if (!TABLE_NAME.test(table)) throw new SchemaError(`Invalid table name ${JSON.stringify(table)}`);
      const exported = (tableDefinition as { export(): ExportedTable }).export();
      const resolved = resolveTable(prefix + table, exported, validates ? exported.documentType : null);
      this.resolved.set(prefix + table, resolved);
      for (const index of resolved.indexes.values()) this.indexes.set(index.qualifiedName, index);
    }
  }

  /** The tables the schema names. */
  get tables(): ReadonlyMap<string, ResolvedTable> {
    return this.resolved;
  }

  /** Whether `name` can hold documents: named in the schema, or a valid name for a schemaless table. */
  isTableName(name: string): boolean {
    return this.resolved.has(name) || isValidTableName(name);
  }

  table(name: string): ResolvedTable {
    let table = this.resolved.get(name);
    if (!table) {
      if (!isValidTableName(name)) throw new SchemaError(`Invalid table name ${JSON.stringify(name)}`);
      const local = localTableName(name);
      table = resolveTable(
        name,
        Object.hasOwn(SYSTEM_TABLES, local) ? SYSTEM_TABLES[local]! : { indexes: [], searchIndexes: [], documentType: { type: "any" } },
        null,
      );
      this.resolved.set(name, table);
      for (const index of table.indexes.values()) this.indexes.set(index.qualifiedName, index);
    }
    return table;
  }

  /** Null when `fields` (without system fields) conform to the table's document type, else Convex's message. */
  validateDocument(table: string, fields: Record<string, Value | undefined>): string | null {
    const documentType = this.table(table).documentType;
    if (!documentType) return null;
    // A component's `v.id("work")` names its own table: ids are read through its namespace.
    const namespace = new TableNamespace(splitTableName(table)[0]);
    return validatorProblem(documentType, fields, (id) => namespace.tableOfId(id));
  }
}

function resolveTable(table: string, exported: ExportedTable, documentType: ValidatorJson | null): ResolvedTable {
  const indexes = new Map<string, IndexDefinition>();
  const add = (name: string, fields: string[]) => {
    if (indexes.has(name)) throw new SchemaError(`Duplicate index ${table}.${name}`);
    const keyFields = name === "by_id" ? ["_id"] : [...fields, "_creationTime", "_id"];
    indexes.set(name, { name, qualifiedName: `${table}.${name}`, table, fields, keyFields });
  };
  add("by_id", ["_id"]);
  add("by_creation_time", ["_creationTime"]);
  for (const index of exported.indexes) {
    if (BUILT_IN_INDEXES.has(index.indexDescriptor)) throw new SchemaError(`Index name ${index.indexDescriptor} on ${table} is reserved`);
    // Convex lets an index end with `_creationTime` explicitly; the key appends it anyway.
    const fields = index.fields.at(-1) === "_creationTime" ? index.fields.slice(0, -1) : index.fields;
    add(index.indexDescriptor, fields);
  }
  const searchIndexes = new Map<string, SearchIndexDefinition>();
  for (const search of exported.searchIndexes) {
    if (indexes.has(search.indexDescriptor) || searchIndexes.has(search.indexDescriptor)) {
      throw new SchemaError(`Duplicate search index name ${JSON.stringify(search.indexDescriptor)} on ${table}`);
    }
    searchIndexes.set(search.indexDescriptor, {
      name: search.indexDescriptor,
      qualifiedName: `${table}.${search.indexDescriptor}`,
      table,
      searchField: search.searchField,
      filterFields: search.filterFields,
    });
  }
  const vectorIndexes = new Map<string, VectorIndexDefinition>();
  const { minDimensions, maxDimensions, maxFilterFields, maxIndexesPerTable } = VECTOR_INDEX_LIMITS;
  for (const vector of exported.vectorIndexes ?? []) {
    const name = vector.indexDescriptor;
    const where = `Vector index ${JSON.stringify(name)} on ${table}`;
    if (indexes.has(name) || searchIndexes.has(name) || vectorIndexes.has(name))
      throw new SchemaError(`Duplicate index name ${JSON.stringify(name)} on ${table}`);
    if (!Number.isInteger(vector.dimensions) || vector.dimensions < minDimensions || vector.dimensions > maxDimensions) {
      throw new SchemaError(`${where}: dimensions must be an integer from ${minDimensions} to ${maxDimensions}, got ${vector.dimensions}`);
    }
    if (vector.filterFields.length > maxFilterFields)
      throw new SchemaError(`${where}: at most ${maxFilterFields} filter fields, got ${vector.filterFields.length}`);
    if (new Set(vector.filterFields).size !== vector.filterFields.length) throw new SchemaError(`${where}: a filter field is named twice`);
    vectorIndexes.set(name, {
      name,
      qualifiedName: `${table}.${name}`,
      table,
      vectorField: vector.vectorField,
      dimensions: vector.dimensions,
      filterFields: vector.filterFields,
    });
  }
  if (vectorIndexes.size > maxIndexesPerTable)
    throw new SchemaError(`Table ${table} has ${vectorIndexes.size} vector indexes; at most ${maxIndexesPerTable} are allowed`);
  return { name: table, documentType, indexes, searchIndexes, vectorIndexes };
}

export function readField(document: Document, path: string): Value | undefined {
  let value: Value | undefined = document;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof ArrayBuffer) return undefined;
    value = (value as Record<string, Value | undefined>)[part];
  }
  return value;
}

/** The key of `document` in `index`: computed once per write and stored. */
export function indexKeyOf(index: IndexDefinition, document: Document): IndexKey {
  return encodeKey(index.keyFields.map((field) => (field.includes(".") ? readField(document, field) : document[field])));
}
