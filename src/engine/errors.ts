/**
 * Errors a function call can end with. Each has a closed `code`, so the HTTP and
 * socket layers map them without matching on message text.
 */
import type { Value } from "./values.ts";

export const FUNCTION_ERROR_CODES = [
  /** The path names no registered function of the requested kind. */
  "FunctionNotFound",
  /** Arguments or a written document fail their validator. */
  "InvalidArgument",
  /** A query called a write method. */
  "ReadOnly",
  /** A read or write limit (a knob) was exceeded. */
  "LimitExceeded",
  /** The handler misused the database API (bad index range, unknown table, ...). */
  "BadRequest",
  /** The handler threw. */
  "UserError",
] as const;

export type FunctionErrorCode = (typeof FUNCTION_ERROR_CODES)[number];

export class FunctionError extends Error {
  override name = "FunctionError";
  readonly code: FunctionErrorCode;
  /** Structured data for the client (`errorData`), from a thrown `ConvexError`. */
  readonly data: Value | undefined;

  constructor(code: FunctionErrorCode, message: string, data?: Value) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

/**
 * Throw from a handler to send structured data to the client: the official
 * client surfaces it as its own `ConvexError` with `.data`.
 */
export class ConvexError<T extends Value = Value> extends Error {
  override name = "ConvexError";
  readonly data: T;

  constructor(data: T) {
    super(typeof data === "string" ? data : JSON.stringify(data, (_k, v) => (typeof v === "bigint" ? `${v}n` : v)));
    this.data = data;
  }
}
