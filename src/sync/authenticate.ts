/**
 * What an `Authenticate` message asks for, decided the same way wherever a
 * session lives (the deployment object, or a sync shard): the caller to
 * switch to (null: signed out), or why the token is refused. The servers
 * then apply it (`SyncFront`).
 */
import { AuthenticationError, type VerifiedToken } from "../engine/index.ts";
import { authError, ProtocolError, type ClientMessage } from "../protocol/sync.ts";
import { identityKey } from "./hash.ts";
import type { SessionAuth, SyncSession } from "./session.ts";

/** An identity kept on the socket's attachment (16 KiB in all) may be at most this large. */
const MAX_IDENTITY_CHARS = 8_192;

export type AuthenticateOutcome = { ok: true; auth: SessionAuth | null } | { ok: false; reason: string };

/**
 * Checks the message's base version at once (a `ProtocolError` otherwise),
 * then the token. A failure that is not the token's (our bug, storage) is
 * thrown, not refused.
 */
export function decideAuthenticate(
  session: SyncSession,
  message: Extract<ClientMessage, { type: "Authenticate" }>,
  verify: (token: string) => Promise<VerifiedToken>,
): Promise<AuthenticateOutcome> {
  if (message.baseVersion !== session.receivedIdentity) {
    throw new ProtocolError(`Authenticate.baseVersion ${message.baseVersion} does not match the identity version ${session.receivedIdentity}`);
  }
  if (message.tokenType === "None") return Promise.resolve({ ok: true, auth: null });
  if (message.tokenType === "Admin")
    return Promise.resolve({ ok: false, reason: "Admin keys cannot sign in over the sync socket on calmsync; sign in with a user token" });
  return verify(message.value!).then(
    async (verified): Promise<AuthenticateOutcome> => {
      const identityJson = JSON.stringify(verified.identity);
      if (identityJson.length > MAX_IDENTITY_CHARS) {
        return {
          ok: false,
          reason: `The token's identity is ${identityJson.length} characters of claims; at most ${MAX_IDENTITY_CHARS} are kept per connection`,
        };
      }
      return { ok: true, auth: { identity: verified.identity, key: await identityKey(verified.identity), expiresAt: verified.expiresAt } };
    },
    (error: unknown) => {
      if (error instanceof AuthenticationError) return { ok: false, reason: error.message };
      throw error;
    },
  );
}

/**
 * The frame that ends a session whose `Authenticate` was refused: it names
 * that message's base version, so the client does not mistake it for an
 * older attempt (it fetches a fresh token and reconnects).
 */
export function refusedFrame(baseVersion: number, reason: string): string {
  return authError(reason, baseVersion, true);
}

/**
 * Checked before each function and Transition: the frame that ends a session
 * whose token expired (`authUpdateAttempted: false`), or null while it is valid.
 */
export function expiredFrame(session: SyncSession, now: number): string | null {
  return session.authExpired(now) ? authError("Token expired", session.receivedIdentity - 1, false) : null;
}
