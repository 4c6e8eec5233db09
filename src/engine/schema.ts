/**
 * Schema: tables, their document validators, indexes and search indexes.
 *
 * @example
 * defineSchema({
 *   messages: defineTable({ chatId: v.string(), body: v.string() })
 *     .index("by_chat", ["chatId"])
 *     .searchIndex("search_body", { searchField: "body", filterFields: ["chatId"] }),
 * });
 *
 * Every index orders by its fields, then `_creationTime`, then `_id`, so keys
 * are unique. Each table also has `by_id` and `by_creation_time`.
 */
import type { Document, Value } from "./values.ts";
import type { PropertyValidators } from "./validators.ts";
import { checkFields } from "./validators.ts";
import { encodeKey, type IndexKey } from "./keys.ts";

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

export class TableDefinition<F extends PropertyValidators = PropertyValidators> {
  readonly indexes: { name: string; fields: string[] }[] = [];
  readonly searchIndexes: { name: string; searchField: string; filterFields: string[] }[] = [];

  readonly fields: F;

  constructor(fields: F) {
    this.fields = fields;
  }

  index(name: string, fields: string[]): this {
    this.indexes.push({ name, fields });
    return this;
  }

  searchIndex(name: string, config: { searchField: string; filterFields?: string[] }): this {
    this.searchIndexes.push({ name, searchField: config.searchField, filterFields: config.filterFields ?? [] });
    return this;
  }
}

export function defineTable<F extends PropertyValidators>(fields: F): TableDefinition<F> {
  return new TableDefinition(fields);
}

export class SchemaError extends Error {
  override name = "SchemaError";
}

const NAME_PATTERN = /^[a-zA-Z][a-zA-Z0-9_]{0,63}$/;
const RESERVED_INDEXES = new Set(["by_id", "by_creation_time"]);

export interface ResolvedTable {
  readonly name: string;
  readonly definition: TableDefinition;
  readonly indexes: ReadonlyMap<string, IndexDefinition>;
  readonly searchIndexes: ReadonlyMap<string, SearchIndexDefinition>;
}

export class Schema {
  readonly tables: ReadonlyMap<string, ResolvedTable>;
  /** Every index of every table by qualified name. */
  readonly indexes: ReadonlyMap<string, IndexDefinition>;

  constructor(definitions: Record<string, TableDefinition>) {
    const tables = new Map<string, ResolvedTable>();
    const allIndexes = new Map<string, IndexDefinition>();
    for (const [table, definition] of Object.entries(definitions)) {
      if (!NAME_PATTERN.test(table) || table.startsWith("_")) throw new SchemaError(`Invalid table name ${JSON.stringify(table)}`);
      const indexes = new Map<string, IndexDefinition>();
      const add = (name: string, fields: string[]) => {
        if (indexes.has(name)) throw new SchemaError(`Duplicate index ${table}.${name}`);
        const keyFields = name === "by_id" ? ["_id"] : [...fields, "_creationTime", "_id"];
        indexes.set(name, { name, qualifiedName: `${table}.${name}`, table, fields, keyFields });
      };
      add("by_id", ["_id"]);
      add("by_creation_time", ["_creationTime"]);
      for (const index of definition.indexes) {
        if (!NAME_PATTERN.test(index.name)) throw new SchemaError(`Invalid index name ${JSON.stringify(index.name)} on ${table}`);
        if (RESERVED_INDEXES.has(index.name)) throw new SchemaError(`Index name ${index.name} on ${table} is reserved`);
        if (index.fields.length === 0) throw new SchemaError(`Index ${table}.${index.name} has no fields`);
        for (const field of index.fields) {
          if (field.startsWith("_")) throw new SchemaError(`Index ${table}.${index.name} cannot name system field ${field}`);
          if (!(field.split(".")[0]! in definition.fields)) throw new SchemaError(`Index ${table}.${index.name} names unknown field ${field}`);
        }
        add(index.name, index.fields);
      }
      const searchIndexes = new Map<string, SearchIndexDefinition>();
      for (const search of definition.searchIndexes) {
        if (!NAME_PATTERN.test(search.name) || indexes.has(search.name) || searchIndexes.has(search.name)) {
          throw new SchemaError(`Invalid or duplicate search index name ${JSON.stringify(search.name)} on ${table}`);
        }
        for (const field of [search.searchField, ...search.filterFields]) {
          if (!(field in definition.fields)) throw new SchemaError(`Search index ${table}.${search.name} names unknown field ${field}`);
        }
        searchIndexes.set(search.name, { ...search, qualifiedName: `${table}.${search.name}`, table });
      }
      for (const index of indexes.values()) allIndexes.set(index.qualifiedName, index);
      tables.set(table, { name: table, definition, indexes, searchIndexes });
    }
    this.tables = tables;
    this.indexes = allIndexes;
  }

  table(name: string): ResolvedTable {
    const table = this.tables.get(name);
    if (!table) throw new SchemaError(`Table ${JSON.stringify(name)} is not in the schema`);
    return table;
  }

  /** Null when `fields` (without system fields) conform to the table, else a message. */
  validateDocument(table: string, fields: Record<string, Value | undefined>): string | null {
    return checkFields(this.table(table).definition.fields, fields, "");
  }
}

export function defineSchema(tables: Record<string, TableDefinition>): Schema {
  return new Schema(tables);
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
