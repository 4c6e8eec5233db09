/**
 * Keeps stored indexes in step with the app's schema and its components'
 * (each instance's tables are in the schema under its prefix, so a new
 * version of a component builds its new indexes for every instance, from
 * that instance's documents: test/workers/components-backfill.test.ts). Adding `.index(...)` or
 * `.searchIndex(...)` to a table that already has documents must cover those
 * documents too, or queries through the new index silently miss them; a
 * removed or redefined index must not leave stale entries behind.
 *
 * On every start the object compares each index's definition with the one
 * recorded in `meta` and, for each that is new or changed, rebuilds it from
 * the documents in one transaction: index entries for an index, the search
 * log of every partition for a search index (partitions then load from the
 * log and the compactor snapshots them), the rows of a vector index. Unchanged indexes cost one read of
 * `meta`. This is a schema change, not a commit: nothing is invalidated (no
 * subscription can exist yet while the object starts).
 */
import { indexKeyOf, isBuiltInIndex, keyToBytes, searchDocumentOf, vectorDocumentOf, type Document, type Schema } from "../engine/index.ts";
import type { SearchStorage } from "../search/storage.ts";
import type { VectorIndexes } from "../vectors/vector-indexes.ts";

const META_KEY = "index_definitions";

interface BackfillReport {
  rebuilt: string[];
  dropped: string[];
  /** No definitions were recorded yet (a new deployment, or data from before this code). */
  firstStart: boolean;
}

/**
 * The indexes this schema defines. The built-in `by_id` and `by_creation_time`
 * are left out: every table has them, commits maintain them, and a table
 * outside the schema is only known once something used it, so recording them
 * would make a later start "drop" a schemaless table's entries.
 */
function definitions(schema: Schema): Map<string, string> {
  const out = new Map<string, string>();
  for (const table of schema.tables.values()) {
    for (const index of table.indexes.values()) {
      if (!isBuiltInIndex(index.qualifiedName)) out.set(index.qualifiedName, JSON.stringify({ kind: "index", keyFields: index.keyFields }));
    }
    for (const search of table.searchIndexes.values()) {
      out.set(search.qualifiedName, JSON.stringify({ kind: "search", searchField: search.searchField, filterFields: search.filterFields }));
    }
    for (const vector of table.vectorIndexes.values()) {
      out.set(
        vector.qualifiedName,
        JSON.stringify({ kind: "vector", vectorField: vector.vectorField, dimensions: vector.dimensions, filterFields: vector.filterFields }),
      );
    }
  }
  return out;
}

export function backfillIndexes(
  storage: DurableObjectStorage,
  schema: Schema,
  search: SearchStorage,
  vectors: VectorIndexes,
  documentsOf: (table: string) => Iterable<Document>,
): BackfillReport {
  const sql = storage.sql;
  // Records from before built-in indexes were left out still name them: they are not this function's to drop.
  const stored = new Map<string, string>(
    Object.entries(
      JSON.parse(sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", META_KEY).toArray()[0]?.value ?? "{}") as Record<string, string>,
    ).filter(([name]) => !isBuiltInIndex(name)),
  );
  const wanted = definitions(schema);
  const report: BackfillReport = { rebuilt: [], dropped: [], firstStart: stored.size === 0 };
  if (stored.size === wanted.size && [...wanted].every(([name, definition]) => stored.get(name) === definition)) return report;

  storage.transactionSync(() => {
    // Whatever is stored for an index that is new, changed or gone is replaced or removed
    // (an index "new" to this record may still have entries, e.g. from before it was recorded).
    for (const name of new Set([...stored.keys(), ...wanted.keys()])) {
      if (wanted.get(name) === stored.get(name)) continue;
      sql.exec("DELETE FROM index_entries WHERE index_name = ?", name);
      search.dropIndex(name);
      vectors.storage.dropIndex(name);
      if (!wanted.has(name)) report.dropped.push(name);
    }
    for (const [name, definition] of wanted) {
      if (stored.get(name) === definition) continue;
      const [tableName, indexName] = name.split(".") as [string, string];
      const table = schema.table(tableName);
      const index = table.indexes.get(indexName);
      const vectorIndex = table.vectorIndexes.get(indexName);
      if (vectorIndex) {
        vectors.rebuild(
          vectorIndex,
          (function* () {
            for (const document of documentsOf(tableName)) {
              const view = vectorDocumentOf(vectorIndex, document);
              if (view) yield { id: document._id, view };
            }
          })(),
        );
      } else if (index) {
        for (const document of documentsOf(tableName)) {
          sql.exec("INSERT INTO index_entries (index_name, key, doc_id) VALUES (?, ?, ?)", name, keyToBytes(indexKeyOf(index, document)).buffer, document._id);
        }
      } else {
        const searchIndex = table.searchIndexes.get(indexName)!;
        const byPartition = new Map<string, { id: string; old: null; new: ReturnType<typeof searchDocumentOf> }[]>();
        for (const document of documentsOf(tableName)) {
          const version = searchDocumentOf(searchIndex, document);
          let entries = byPartition.get(version.partition);
          if (!entries) byPartition.set(version.partition, (entries = []));
          entries.push({ id: document._id, old: null, new: version });
        }
        for (const [partition, entries] of byPartition) search.appendLog(name, partition, entries);
      }
      report.rebuilt.push(name);
    }
    sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", META_KEY, JSON.stringify(Object.fromEntries(wanted)));
  });
  return report;
}
