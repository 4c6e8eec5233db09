/**
 * A short SHA-256 digest of a text (96 bits, hex): what the sync layer
 * compares instead of the text itself: encoded results (an equal result
 * sends no modification), identities (instance keys) and mutation
 * fingerprints.
 */
export async function shortDigest(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  let hex = "";
  for (const byte of new Uint8Array(digest).subarray(0, 12)) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** Digests of identities seen, by object: a verified token's identity is one object for as long as its token is cached. */
const identityKeys = new WeakMap<object, Promise<string>>();

/**
 * The digest of a caller's identity that keys the instances of queries that read it (`query-instances.ts`),
 * taken once per identity object (a one-shot call of such a query would otherwise digest on every hit).
 */
export function identityKey(identity: object): Promise<string> {
  let key = identityKeys.get(identity);
  if (key === undefined) identityKeys.set(identity, (key = shortDigest(JSON.stringify(identity))));
  return key;
}
