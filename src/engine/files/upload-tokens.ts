/**
 * Upload URLs' tokens: `<payload>.<mac>`, base64url, where the payload names
 * a random nonce and an expiry and the MAC is HMAC-SHA256 under the
 * deployment's own secret. A token of another deployment, an edited one or a
 * made-up one fails the MAC; an old one fails its expiry. That a token is used
 * once is the deployment's to record (it keeps the nonces it accepted).
 */
import { base64url } from "jose";

export interface UploadTokenOptions {
  /** The deployment's secret (at least 32 random bytes), read once. */
  secret: () => Uint8Array;
  /** How long an upload URL stays valid (Convex's: one hour). */
  ttlMs: () => number;
  now: () => number;
}

export type VerifiedUpload = { ok: true; nonce: string; expiresAt: number } | { ok: false; reason: "forged" | "expired" };

interface Payload {
  n: string;
  e: number;
}

const encoder = new TextEncoder();

export class UploadTokens {
  private key: Promise<CryptoKey> | null = null;
  private readonly options: UploadTokenOptions;

  constructor(options: UploadTokenOptions) {
    this.options = options;
  }

  private hmacKey(): Promise<CryptoKey> {
    return (this.key ??= crypto.subtle.importKey("raw", this.options.secret() as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]));
  }

  async issue(): Promise<string> {
    const payload: Payload = { n: base64url.encode(crypto.getRandomValues(new Uint8Array(16))), e: this.options.now() + this.options.ttlMs() };
    const body = base64url.encode(JSON.stringify(payload));
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await this.hmacKey(), encoder.encode(body)));
    return `${body}.${base64url.encode(mac)}`;
  }

  async verify(token: string): Promise<VerifiedUpload> {
    const [body, mac, extra] = token.split(".");
    if (!body || !mac || extra !== undefined) return { ok: false, reason: "forged" };
    let signature: Uint8Array;
    let payload: Payload;
    try {
      signature = base64url.decode(mac);
      if (!(await crypto.subtle.verify("HMAC", await this.hmacKey(), signature as BufferSource, encoder.encode(body)))) return { ok: false, reason: "forged" };
      payload = JSON.parse(new TextDecoder().decode(base64url.decode(body))) as Payload;
    } catch {
      return { ok: false, reason: "forged" };
    }
    if (typeof payload.n !== "string" || typeof payload.e !== "number") return { ok: false, reason: "forged" };
    if (payload.e <= this.options.now()) return { ok: false, reason: "expired" };
    return { ok: true, nonce: payload.n, expiresAt: payload.e };
  }
}

/** A new secret for `UploadTokens` (the deployment stores it). */
export function newUploadSecret(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}
