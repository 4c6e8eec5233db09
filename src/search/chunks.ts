/**
 * Splitting a snapshot into rows under Durable Object SQLite's 2 MB limit
 * (which local workerd does not enforce, so we must). Cuts are measured in
 * UTF-8 bytes: pure ASCII (the usual JSON snapshot) is one byte per code unit;
 * otherwise a chunk takes at most `maxBytes / 3` code units (UTF-8 needs at
 * most 3 bytes per UTF-16 code unit). A cut never splits a surrogate pair.
 */
const NON_ASCII = /[^\x00-\x7f]/;

export function splitIntoChunks(text: string, maxBytes: number): string[] {
  const step = Math.max(1, NON_ASCII.test(text) ? Math.floor(maxBytes / 3) : maxBytes);
  const chunks: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + step);
    const code = text.charCodeAt(end - 1);
    if (end < text.length && code >= 0xd800 && code <= 0xdbff) end--;
    chunks.push(text.slice(start, end));
    start = end;
  }
  return chunks;
}
