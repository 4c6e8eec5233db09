/**
 * The messages between a sync shard and the deployment object
 * (docs/SHARDS.md), typed and checked here, once, as `sync.ts` does for
 * client frames.
 *
 * - Shard to deployment: client-protocol frames on the shard's peer session,
 *   with the fields only a peer may send (`InternalFields` in `sync.ts`),
 *   over the `shardFrames` RPC.
 * - Deployment to shard: what the peer session was sent (Transitions,
 *   responses, pings), in numbered pushes (`deliver`). `parsePeerPush` reads
 *   one frame of a push; a frame it cannot read is an error for that peer
 *   session only (the shard starts it over), never a crash.
 */
import { isPlainObject, type JSONValue } from "../engine/index.ts";
import type { EncodedResult } from "../sync/query-instances.ts";
import { decodeTs, ProtocolError, type StateVersion } from "./sync.ts";

/** One query's change in a pushed Transition: its new result (null: removed) and journal. */
export interface PeerModification {
  queryId: number;
  result: EncodedResult | null;
  journal: string | null;
}

export type PeerPush =
  | { type: "Transition"; startVersion: StateVersion; endVersion: StateVersion; modifications: PeerModification[] }
  | { type: "MutationResponse"; requestId: number; ts: bigint | null; raw: Record<string, unknown> }
  | { type: "ActionResponse"; requestId: number; raw: Record<string, unknown> }
  | { type: "Ping" }
  /** A FatalError or anything else a peer session should not be sent. */
  | { type: "Other"; what: string };

/** Reads one frame of a push; a `ProtocolError` says what is wrong with it. */
export function parsePeerPush(frame: string): PeerPush {
  let message: unknown;
  try {
    message = JSON.parse(frame);
  } catch {
    throw new ProtocolError("a push frame is not JSON");
  }
  if (!isPlainObject(message)) throw new ProtocolError("a push frame must be an object");
  switch (message.type) {
    case "Transition":
      if (!Array.isArray(message.modifications)) throw new ProtocolError("Transition.modifications must be an array");
      return {
        type: "Transition",
        startVersion: version(message.startVersion),
        endVersion: version(message.endVersion),
        modifications: message.modifications.map(modification),
      };
    case "MutationResponse":
      return {
        type: "MutationResponse",
        requestId: requestId(message),
        ts: message.success === true ? decodeTs(message.ts, "MutationResponse.ts") : null,
        raw: message,
      };
    case "ActionResponse":
      return { type: "ActionResponse", requestId: requestId(message), raw: message };
    case "Ping":
      return { type: "Ping" };
    default:
      return { type: "Other", what: `${String(message.type)}: ${frame.slice(0, 200)}` };
  }
}

function requestId(message: Record<string, unknown>): number {
  if (!Number.isSafeInteger(message.requestId)) throw new ProtocolError(`${String(message.type)}.requestId must be an integer`);
  return message.requestId as number;
}

function version(value: unknown): StateVersion {
  if (!isPlainObject(value) || !Number.isSafeInteger(value.querySet) || !Number.isSafeInteger(value.identity)) {
    throw new ProtocolError("a Transition version must be {querySet, ts, identity}");
  }
  return { querySet: value.querySet as number, ts: decodeTs(value.ts, "Transition version ts"), identity: value.identity as number };
}

function modification(value: unknown): PeerModification {
  if (!isPlainObject(value) || !Number.isSafeInteger(value.queryId)) throw new ProtocolError("a Transition modification must name its queryId");
  const queryId = value.queryId as number;
  const journal = typeof value.journal === "string" ? value.journal : null;
  const logLines = Array.isArray(value.logLines) ? value.logLines.filter((line): line is string => typeof line === "string") : [];
  switch (value.type) {
    case "QueryUpdated":
      return { queryId, journal, result: { ok: true, value: JSON.stringify(value.value), logLines } };
    case "QueryFailed":
      return { queryId, journal, result: { ok: false, message: String(value.errorMessage), data: value.errorData as JSONValue | undefined, logLines } };
    case "QueryRemoved":
      return { queryId, journal: null, result: null };
    default:
      throw new ProtocolError(`unknown modification ${String(value.type)}`);
  }
}
