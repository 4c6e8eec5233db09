/**
 * The HTTP function API in the shapes `ConvexHttpClient` uses:
 * `POST /api/query|mutation` with `{path, format: "convex_encoded_json", args: [argsObject]}`,
 * answered `{status: "success", value, logLines}` or `{status: "error", errorMessage, errorData?, logLines}`.
 */
import type { JSONValue } from "../engine/index.ts";
import { FunctionError, isPlainObject, MAX_VALUE_DEPTH, nestedDeeperThan } from "../engine/index.ts";

export type FunctionResponse =
  | { status: "success"; value: JSONValue; logLines: string[] }
  | { status: "error"; errorMessage: string; errorData?: JSONValue; logLines: string[] }
  /** The caller's token was refused (the Worker answers 401, as Convex does, and no function ran). */
  | { status: "unauthenticated"; code: string; message: string }
  /** The caller is past its own rate (knob clientCallRate): the Worker answers 429 with Retry-After, and no function ran. */
  | { status: "rateLimited"; code: "ClientRateLimited"; message: string; retryAfterMs: number };

export interface FunctionRequest {
  path: string;
  /** The arguments object, still Convex-JSON encoded. */
  args: JSONValue;
}

/** A request the API refuses before running anything: answered with a 4xx. */
export class BadRequestError extends Error {
  override name = "BadRequestError";
  readonly code: string;
  readonly status: 400 | 413;

  constructor(code: string, message: string, status: 400 | 413 = 400) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export function parseFunctionRequest(body: unknown): FunctionRequest {
  if (!isPlainObject(body)) throw new BadRequestError("BadRequestBody", "Request body must be a JSON object {path, format, args}");
  const { path, format, args } = body;
  if (typeof path !== "string" || path.length === 0 || path.length > 1024) {
    throw new BadRequestError("BadRequestBody", 'path must be a function path such as "messages:list"');
  }
  if (format !== undefined && format !== "convex_encoded_json") {
    throw new BadRequestError("UnsupportedFormat", `format must be "convex_encoded_json", got ${JSON.stringify(format)}`);
  }
  // The official clients send the arguments object wrapped in a one-element array.
  let argsObject: unknown = args ?? {};
  if (Array.isArray(argsObject)) {
    if (argsObject.length !== 1) throw new BadRequestError("BadRequestBody", `args must be [argsObject], got an array of ${argsObject.length}`);
    argsObject = argsObject[0];
  }
  if (!isPlainObject(argsObject)) throw new BadRequestError("BadRequestBody", "args must be an object or [object]");
  // Refused here, before decoding recurses through it or it is cloned to the deployment object.
  if (nestedDeeperThan(argsObject, MAX_VALUE_DEPTH)) throw new BadRequestError("ValueTooDeep", `args are nested more than ${MAX_VALUE_DEPTH} levels deep`);
  return { path, args: argsObject as JSONValue };
}

export function successResponse(value: JSONValue, logLines: readonly string[] = []): FunctionResponse {
  return { status: "success", value, logLines: [...logLines] };
}

export function errorResponse(error: FunctionError): FunctionResponse {
  const response: FunctionResponse = { status: "error", errorMessage: error.message, logLines: [...error.logLines] };
  if (error.data !== undefined) response.errorData = error.dataJson;
  return response;
}
