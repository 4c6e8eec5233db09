/**
 * Per-function limits the engine enforces. The deployment fills these from its
 * knob table; the defaults here are what a plain engine (tests, benchmarks) uses.
 */
export interface EngineLimits {
  /** Documents a single query or mutation may read (scanned, filtered ones included). */
  maxDocumentsRead: number;
  /** Distinct key intervals a query's read-set may hold. */
  maxReadIntervals: number;
  /** Documents a single mutation may write. */
  maxDocumentsWritten: number;
  /** Encoded size of one document, in bytes. */
  maxDocumentBytes: number;
  /** Terms one search may have. */
  searchMaxTerms: number;
  /** Equality filters one search may have. */
  searchMaxFilters: number;
  /** Results one search may scan before `.filter()`/`take`. */
  searchMaxScanned: number;
  /** Minimum length for the last search term to match as a prefix. */
  searchMinPrefixLength: number;
}

export const DEFAULT_ENGINE_LIMITS: Readonly<EngineLimits> = {
  maxDocumentsRead: 16_384,
  maxReadIntervals: 4_096,
  maxDocumentsWritten: 8_192,
  maxDocumentBytes: 1_048_576,
  searchMaxTerms: 16,
  searchMaxFilters: 8,
  searchMaxScanned: 1_024,
  searchMinPrefixLength: 2,
};
