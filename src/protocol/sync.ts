/**
 * The Convex sync protocol over one WebSocket (JSON text frames), exact enough
 * for `ConvexClient` from the official `convex` package. Every client frame is
 * checked here before the server sees it; anything malformed is a
 * `ProtocolError`, which closes only that socket.
 */
import type { JSONValue } from "../engine/index.ts";
import { base64ToU64, isPlainObject, u64ToBase64, ValueError } from "../engine/index.ts";

/** `{querySet, ts, identity}`: a client's view of its session state. `ts` is a u64. */
export interface StateVersion {
  querySet: number;
  ts: bigint;
  identity: number;
}

export type ClientMessage =
  | {
      type: "Connect";
      sessionId: string;
      connectionCount: number;
      lastCloseReason: string | null;
      maxObservedTimestamp: bigint | null;
      clientTs: number | null;
    }
  | { type: "ModifyQuerySet"; baseVersion: number; newVersion: number; modifications: QuerySetModification[] }
  | { type: "Mutation"; requestId: number; udfPath: string; args: JSONValue; internal?: InternalFields }
  | { type: "Action"; requestId: number; udfPath: string; args: JSONValue; internal?: InternalFields }
  | { type: "Authenticate"; tokenType: "None" | "User" | "Admin"; baseVersion: number; value: string | null }
  | { type: "Event"; eventType: string | null; event: JSONValue | null };

/** The `Event` calmsync's client transport sends (src/client): the page went to the background or came back. */
export const VISIBILITY_EVENT = "calmsync.visibility";

export type QuerySetModification =
  { type: "Add"; queryId: number; udfPath: string; args: JSONValue; journal: string | null; internal?: InternalFields } | { type: "Remove"; queryId: number };

/**
 * Fields only a sync shard sends, on its internal session with the database
 * object (docs/SHARDS.md): it speaks for many clients, so it names the caller
 * of each query, mutation and action, and the client session and request a
 * mutation's retry belongs to. A client's socket may not send them.
 */
export interface InternalFields {
  caller: InternalCaller | null;
  clientSessionId: string | null;
  clientRequestId: number | null;
}

/** A verified caller as a shard passes it on (the session's identity, its digest and its expiry). */
export interface InternalCaller {
  identity: { tokenIdentifier: string; subject: string; issuer: string; [claim: string]: JSONValue };
  key: string;
  expiresAt: number;
}

function internalFields(message: Record<string, unknown>): InternalFields | undefined {
  const internal = message.internal;
  if (internal === undefined) return undefined;
  if (!isPlainObject(internal)) throw new ProtocolError("internal must be an object");
  const caller = internal.caller;
  if (caller !== null && caller !== undefined) {
    const identity = isPlainObject(caller) ? caller.identity : undefined;
    if (
      !isPlainObject(caller) ||
      !isPlainObject(identity) ||
      !isString(identity.tokenIdentifier) ||
      !isString(caller.key) ||
      typeof caller.expiresAt !== "number"
    ) {
      throw new ProtocolError("internal.caller must be {identity, key, expiresAt}");
    }
  }
  return {
    caller: (caller ?? null) as InternalCaller | null,
    clientSessionId: isString(internal.clientSessionId) ? internal.clientSessionId : null,
    clientRequestId: isVersion(internal.clientRequestId) ? internal.clientRequestId : null,
  };
}

export class ProtocolError extends Error {
  override name = "ProtocolError";
}

/** A frame over `maxFrameBytes` (the server may still answer the request it carries, see front.ts). */
export class FrameTooLargeError extends ProtocolError {
  override name = "FrameTooLargeError";
}

/** Encodes a u64 as the protocol does: base64 of its 8 little-endian bytes. */
export const encodeTs = u64ToBase64;

export function decodeTs(encoded: unknown, field: string): bigint {
  if (typeof encoded !== "string") throw new ProtocolError(`${field} must be a base64 u64 string`);
  try {
    return base64ToU64(encoded);
  } catch (error) {
    if (error instanceof ValueError) throw new ProtocolError(`${field}: ${error.message}`);
    throw error;
  }
}

function field<T>(message: Record<string, unknown>, name: string, check: (v: unknown) => v is T, what: string): T {
  const value = message[name];
  if (!check(value)) throw new ProtocolError(`${String(message.type)}.${name} must be ${what}`);
  return value;
}

const isVersion = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isString = (v: unknown): v is string => typeof v === "string";
const isPath = (v: unknown): v is string => typeof v === "string" && v.length > 0 && v.length <= 1024;

/** Function args travel as `[argsObject]`. */
function argsObject(message: Record<string, unknown>): JSONValue {
  const args = message.args;
  if (!Array.isArray(args) || args.length !== 1 || !isPlainObject(args[0])) {
    throw new ProtocolError(`${String(message.type)}.args must be [argsObject]`);
  }
  return args[0] as JSONValue;
}

/** Parses one text frame. Throws `ProtocolError` naming what is wrong. */
export function parseClientMessage(frame: string | ArrayBuffer, maxFrameBytes: number): ClientMessage {
  if (typeof frame !== "string") throw new ProtocolError("Binary frames are not part of the protocol; send JSON text");
  // A JS string's UTF-8 size is at most 3 bytes per code unit: only measure when it could be over.
  if (frame.length * 3 > maxFrameBytes) {
    const bytes = new TextEncoder().encode(frame).length;
    if (bytes > maxFrameBytes) throw new FrameTooLargeError(`Frame of ${bytes} bytes is larger than the ${maxFrameBytes}-byte limit (knob maxFrameBytes)`);
  }
  let message: unknown;
  try {
    message = JSON.parse(frame);
  } catch {
    throw new ProtocolError("Frame is not valid JSON");
  }
  if (!isPlainObject(message)) throw new ProtocolError("Frame must be a JSON object with a type");
  switch (message.type) {
    case "Connect":
      return {
        type: "Connect",
        sessionId: field(message, "sessionId", (v): v is string => isString(v) && v.length > 0 && v.length <= 128, "a string of 1-128 characters"),
        connectionCount: field(message, "connectionCount", isVersion, "a non-negative integer"),
        lastCloseReason: field(message, "lastCloseReason", (v): v is string | null => v === null || v === undefined || isString(v), "a string or null") ?? null,
        maxObservedTimestamp:
          message.maxObservedTimestamp === undefined || message.maxObservedTimestamp === null
            ? null
            : decodeTs(message.maxObservedTimestamp, "Connect.maxObservedTimestamp"),
        clientTs: typeof message.clientTs === "number" ? message.clientTs : null,
      };
    case "ModifyQuerySet": {
      const modifications = field(message, "modifications", Array.isArray, "an array");
      return {
        type: "ModifyQuerySet",
        baseVersion: field(message, "baseVersion", isVersion, "a non-negative integer"),
        newVersion: field(message, "newVersion", isVersion, "a non-negative integer"),
        modifications: modifications.map((m: unknown): QuerySetModification => {
          if (!isPlainObject(m)) throw new ProtocolError("ModifyQuerySet.modifications entries must be objects");
          const queryId = field(m, "queryId", isVersion, "a non-negative integer");
          if (m.type === "Add") {
            const internal = internalFields(m);
            return {
              type: "Add",
              queryId,
              udfPath: field(m, "udfPath", isPath, "a function path"),
              args: argsObject(m),
              journal: typeof m.journal === "string" ? m.journal : null,
              ...(internal ? { internal } : {}),
            };
          }
          if (m.type === "Remove") return { type: "Remove", queryId };
          throw new ProtocolError(`Unknown query set modification ${JSON.stringify(m.type)}`);
        }),
      };
    }
    case "Mutation":
    case "Action": {
      const internal = internalFields(message);
      return {
        type: message.type,
        requestId: field(message, "requestId", isVersion, "a non-negative integer"),
        udfPath: field(message, "udfPath", isPath, "a function path"),
        args: argsObject(message),
        ...(internal ? { internal } : {}),
      };
    }
    case "Authenticate": {
      const tokenType = field(
        message,
        "tokenType",
        (v): v is "None" | "User" | "Admin" => v === "None" || v === "User" || v === "Admin",
        '"None", "User" or "Admin"',
      );
      return {
        type: "Authenticate",
        tokenType,
        baseVersion: field(message, "baseVersion", isVersion, "a non-negative integer"),
        value: tokenType === "None" ? null : field(message, "value", isString, "a token string"),
      };
    }
    case "Event":
      // Clients send events of their own (the official one: NetworkRecoveryReconnect); unknown ones are ignored.
      return { type: "Event", eventType: typeof message.eventType === "string" ? message.eventType : null, event: (message.event ?? null) as JSONValue | null };
    default:
      throw new ProtocolError(`Unknown message type ${JSON.stringify(message.type)}`);
  }
}

// Server messages. Encoded by hand where it saves work on the fan-out path.

function encodeVersion(v: StateVersion): string {
  return `{"querySet":${v.querySet},"ts":"${encodeTsRecent(v.ts)}","identity":${v.identity}}`;
}

/** The last two timestamps encoded: a fan-out's Transitions all start at one and end at another, so each is encoded once, not per session. */
let recentTs: [bigint | null, string, bigint | null, string] = [null, "", null, ""];

function encodeTsRecent(ts: bigint): string {
  if (ts === recentTs[0]) return recentTs[1];
  if (ts === recentTs[2]) return recentTs[3];
  const text = encodeTs(ts);
  recentTs = [ts, text, recentTs[0], recentTs[1]];
  return text;
}

/** A modification whose JSON is already encoded, so a shared result is stringified once. */
export type EncodedModification = string;

export function queryUpdated(queryId: number, encodedValue: string, journal: string | null, logLines: readonly string[] = []): EncodedModification {
  return `{"type":"QueryUpdated","queryId":${queryId},"value":${encodedValue},"logLines":${JSON.stringify(logLines)},"journal":${JSON.stringify(journal)}}`;
}

export function queryFailed(
  queryId: number,
  errorMessage: string,
  errorData: JSONValue | undefined,
  journal: string | null,
  logLines: readonly string[] = [],
): EncodedModification {
  return JSON.stringify({ type: "QueryFailed", queryId, errorMessage, logLines, ...(errorData !== undefined ? { errorData } : {}), journal });
}

export function queryRemoved(queryId: number): EncodedModification {
  return `{"type":"QueryRemoved","queryId":${queryId}}`;
}

export function transition(start: StateVersion, end: StateVersion, modifications: readonly EncodedModification[]): string {
  return `{"type":"Transition","startVersion":${encodeVersion(start)},"endVersion":${encodeVersion(end)},"modifications":[${modifications.join(",")}]}`;
}

export function mutationSuccess(requestId: number, encodedResult: string, ts: bigint, logLines: readonly string[] = []): string {
  return `{"type":"MutationResponse","requestId":${requestId},"success":true,"result":${encodedResult},"ts":"${encodeTs(ts)}","logLines":${JSON.stringify(logLines)}}`;
}

export function mutationFailure(requestId: number, errorMessage: string, errorData: JSONValue | undefined, logLines: readonly string[] = []): string {
  return JSON.stringify({
    type: "MutationResponse",
    requestId,
    success: false,
    result: errorMessage,
    logLines,
    ...(errorData !== undefined ? { errorData } : {}),
  });
}

/** No `ts`: the client resolves an action on arrival (what it wrote reaches it by the usual Transitions). */
export function actionSuccess(requestId: number, encodedResult: string, logLines: readonly string[] = []): string {
  return `{"type":"ActionResponse","requestId":${requestId},"success":true,"result":${encodedResult},"logLines":${JSON.stringify(logLines)}}`;
}

export function actionFailure(requestId: number, errorMessage: string, errorData?: JSONValue, logLines: readonly string[] = []): string {
  return JSON.stringify({
    type: "ActionResponse",
    requestId,
    success: false,
    result: errorMessage,
    logLines,
    ...(errorData !== undefined ? { errorData } : {}),
  });
}

/**
 * `authUpdateAttempted`: true when an `Authenticate` was refused (then
 * `baseVersion` is that message's, so the client does not ignore it), false
 * when the identity in use expired.
 */
export function authError(error: string, baseVersion: number, authUpdateAttempted: boolean): string {
  return JSON.stringify({ type: "AuthError", error, baseVersion, authUpdateAttempted });
}

export function fatalError(error: string): string {
  return JSON.stringify({ type: "FatalError", error });
}

export const PING = `{"type":"Ping"}`;
