/**
 * Document ids: 26 random characters of lowercase Crockford base32 (130 bits),
 * followed by the table's name. The table is part of the id because Convex's
 * runtime asks for it synchronously (`db.normalizeId`, `db.get(id)`, `v.id`
 * checks) with no storage read; the random part needs no coordination.
 * Ids written before tables were encoded are the bare 26 characters: they
 * remain valid, and their table is found by reading the document.
 * A component's table is named in storage with its instance's prefix
 * (`table-namespace.ts`: `_c1a2b3c4d_rateLimits`), so its ids name it too:
 * still letters, digits and underscores only, as every Convex id.
 */
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const RANDOM_LENGTH = 26;
const ID_PATTERN = /^[0-9abcdefghjkmnpqrstvwxyz]{26}(?:(?:_c[0-9a-f]{8}_)?[a-zA-Z_][a-zA-Z0-9_]{0,63})?$/;

export function newDocumentId(table: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(RANDOM_LENGTH));
  let id = "";
  for (const b of bytes) id += ALPHABET[b & 31];
  return id + table;
}

export function isDocumentId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/** The table an id names, or null for an old bare id (or a string that is no id). */
export function tableOfId(id: string): string | null {
  return id.length > RANDOM_LENGTH && isDocumentId(id) ? id.slice(RANDOM_LENGTH) : null;
}
