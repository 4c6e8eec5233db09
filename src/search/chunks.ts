/**
 * Splitting a snapshot into rows under Durable Object SQLite's 2 MB limit
 * (which local workerd does not enforce, so we must). A UTF-8 encoded JS string
 * is at most 3 bytes per code unit, so cutting every `maxBytes / 3` code units
 * is always safe; we never cut inside a surrogate pair.
 */
export function splitIntoChunks(text: string, maxBytes: number): string[] {
  const step = Math.max(1, Math.floor(maxBytes / 3));
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
