/**
 * Document ids: 26 random characters of lowercase Crockford base32 (130 bits).
 * They carry no table or time (ordering by time is what `_creationTime` is for),
 * so they can be generated anywhere without coordination.
 */
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const ID_PATTERN = /^[0-9abcdefghjkmnpqrstvwxyz]{26}$/;

export function newDocumentId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(26));
  let id = "";
  for (const b of bytes) id += ALPHABET[b & 31];
  return id;
}

export function isDocumentId(value: string): boolean {
  return ID_PATTERN.test(value);
}
