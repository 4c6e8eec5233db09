/**
 * Errors a function call can end with. Each has a closed `code`, so the HTTP and
 * socket layers map them without matching on message text.
 */
import { convexToJson, type JSONValue, type Value } from "./values.ts";

/** What a caller is told of a failure that is not a `FunctionError` (ours, or hidden outside development): the details go to the log. */
export const SERVER_ERROR = "Server Error";

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
  /** Structured data for the client (`errorData`), from a thrown `ConvexError` (of `convex/values`). */
  readonly data: Value | undefined;
  /** What the function printed before it failed (`[LEVEL] text`), for the client. */
  logLines: readonly string[] = [];

  constructor(code: FunctionErrorCode, message: string, data?: Value) {
    super(message);
    this.code = code;
    this.data = data;
  }

  /** `data` as it travels on every wire (HTTP `errorData`, sockets, shards): Convex JSON, which the official client decodes into `ConvexError.data`. */
  get dataJson(): JSONValue | undefined {
    return this.data === undefined ? undefined : convexToJson(this.data);
  }
}
