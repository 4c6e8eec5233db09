/**
 * One bit per dimension: the sign of each component. The Hamming distance of
 * two codes estimates the angle between their vectors (for embeddings whose
 * components are centred on zero, as text embeddings' are), at 1/32 of the
 * float32 vector's memory: 192 bytes for 1,536 dimensions. Codes only pick
 * candidates; scores always come from the exact vectors.
 */

/** 32-bit words in the code of a vector of `dimensions`. */
export function codeWords(dimensions: number): number {
  return Math.ceil(dimensions / 32);
}

/** Writes the sign code of `vector` into `out` at word `offset` (zeroing the words first). */
export function writeSignCode(vector: Float32Array, out: Uint32Array, offset = 0): void {
  const words = codeWords(vector.length);
  out.fill(0, offset, offset + words);
  for (let i = 0; i < vector.length; i++) if (vector[i]! > 0) out[offset + (i >>> 5)]! |= 1 << (i & 31);
}

export function signCode(vector: Float32Array): Uint32Array {
  const out = new Uint32Array(codeWords(vector.length));
  writeSignCode(vector, out);
  return out;
}

/**
 * Bits that differ between `query` and each code of `slots` (code `i` at word
 * `i * words` of `codes`). The hot loop of a large search, kept flat: 100,000
 * codes of 1,536 bits take about 15 ms on this machine's cores.
 */
export function hammingDistances(codes: Uint32Array, words: number, slots: Int32Array, query: Uint32Array): Uint16Array {
  const out = new Uint16Array(slots.length);
  for (let i = 0; i < slots.length; i++) {
    const offset = slots[i]! * words;
    let distance = 0;
    for (let w = 0; w < words; w++) {
      // Population count of the differing bits (SWAR).
      let x = codes[offset + w]! ^ query[w]!;
      x -= (x >>> 1) & 0x55555555;
      x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
      distance += Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
    }
    out[i] = distance;
  }
  return out;
}

/**
 * The positions of the `count` smallest of `distances` (ties broken by
 * position), in one pass and a histogram: distances are small integers
 * (at most the dimensions), so no sort is needed.
 */
export function smallestDistances(distances: Uint16Array, length: number, count: number, maxDistance: number): Int32Array {
  if (count >= length) return Int32Array.from({ length }, (_, i) => i);
  const histogram = new Uint32Array(maxDistance + 2);
  for (let i = 0; i < length; i++) histogram[distances[i]!]!++;
  let threshold = 0;
  let below = 0;
  while (below + histogram[threshold]! < count) below += histogram[threshold++]!;
  // Everything under the threshold, then as many at it as still fit.
  let atThreshold = count - below;
  const out = new Int32Array(count);
  let n = 0;
  for (let i = 0; i < length; i++) {
    const d = distances[i]!;
    if (d < threshold || (d === threshold && atThreshold-- > 0)) out[n++] = i;
  }
  return out;
}
