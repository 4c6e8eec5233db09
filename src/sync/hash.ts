/** A short content hash of an encoded query result: equal results send no modification. */
export async function resultHash(encoded: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(encoded));
  let hex = "";
  for (const byte of new Uint8Array(digest).subarray(0, 12)) hex += byte.toString(16).padStart(2, "0");
  return hex;
}
