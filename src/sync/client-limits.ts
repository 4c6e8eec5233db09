/**
 * Limits per client: a token bucket for each caller, so one client (one
 * address, or one signed-in identity) cannot take a deployment's whole
 * capacity of HTTP function calls or new sessions however many requests it
 * sends at once. The deployment's own limits (admission, `maxSessions`,
 * action slots) bound the sum; these bound each client's share of it.
 *
 * Who a client is: a signed-in caller's `tokenIdentifier` where the request
 * proves one, else its address. On Cloudflare the address is the
 * `CF-Connecting-IP` header, which the edge sets on every request (a client
 * cannot choose it); locally it is absent and every request is the one
 * client "local".
 */
import { TokenBucket } from "./token-bucket.ts";
import { retryHint } from "../knobs/wire.ts";

/** The header Cloudflare puts the client's address in. */
const CLIENT_ADDRESS_HEADER = "CF-Connecting-IP";

/** A request's client address; "local" where the runtime sets none (`wrangler dev`, tests). */
export function clientAddress(headers: Headers): string {
  return headers.get(CLIENT_ADDRESS_HEADER)?.trim() || "local";
}

/**
 * The key a caller is counted (and served in the function lock) under: its
 * identity when signed in, else its address. Prefixed, so no address spells
 * an identity's key.
 */
export function clientKey(address: string, tokenIdentifier: string | null): string {
  return tokenIdentifier === null ? `address:${address}` : `identity:${tokenIdentifier}`;
}

/** A refusal for one client: the caller is answered 429 with this hint. */
export interface ClientRefusal {
  code: "ClientRateLimited";
  message: string;
  retryAfterMs: number;
}

export interface ClientBucketsOptions {
  rate: () => number;
  burst: () => number;
  /** What is limited, for the message ("HTTP function calls"), and the knobs that set it. */
  what: string;
  knobs: string;
  /** Clients remembered at once (a bucket per client that sent something recently). */
  maxClients?: number;
}

/** Clients remembered by default: a full bucket is the same as none, so only busy clients need an entry. */
const DEFAULT_MAX_CLIENTS = 10_000;

export class ClientBuckets {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly options: ClientBucketsOptions;
  refused = 0;

  constructor(options: ClientBucketsOptions) {
    this.options = options;
  }

  /** Clients with a bucket now. */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token from `key`'s bucket: null when it had one, else a refusal with the wait until it has. */
  take(key: string, now: number): ClientRefusal | null {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      this.makeRoom(now);
      bucket = new TokenBucket(this.options.rate, this.options.burst, now);
      this.buckets.set(key, bucket);
    }
    if (bucket.take(now)) return null;
    this.refused++;
    const retryAfterMs = Math.max(bucket.waitMs(now), 1);
    const { what, knobs } = this.options;
    return {
      code: "ClientRateLimited",
      retryAfterMs,
      message: `Too many ${what} from this client (knobs ${knobs}: ${this.options.rate()}/s, burst ${this.options.burst()}); ${retryHint(retryAfterMs)}`,
    };
  }

  /** Returns the token `key` took for something refused for reasons not its own. */
  giveBack(key: string): void {
    this.buckets.get(key)?.giveBack();
  }

  /**
   * Keeps the map bounded: first forgets clients whose bucket has refilled
   * (forgetting them changes nothing), and if every one is still busy, the
   * oldest ones (those then start from a full bucket: a client with more
   * addresses than `maxClients` could reset others, but no one bucket's rate).
   */
  private makeRoom(now: number): void {
    const max = this.options.maxClients ?? DEFAULT_MAX_CLIENTS;
    if (this.buckets.size < max) return;
    const burst = this.options.burst();
    for (const [key, bucket] of this.buckets) if (bucket.waitMs(now, burst) === 0) this.buckets.delete(key);
    for (const key of this.buckets.keys()) {
      if (this.buckets.size < max) break;
      this.buckets.delete(key);
    }
  }
}
