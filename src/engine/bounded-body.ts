/**
 * Reading a request's or response's body whole, but never more than a limit:
 * the declared Content-Length is checked first, then every chunk is counted,
 * since the header can be absent or wrong. What is past the limit is never
 * buffered.
 */

export class BodyTooLargeError extends Error {
  override name = "BodyTooLargeError";
  constructor(maxBytes: number) {
    super(`The body is larger than ${maxBytes} bytes`);
  }
}

/** The body's bytes (null for none); throws `BodyTooLargeError` past `maxBytes`, reading no further. */
export async function readBodyWithin(message: Request | Response, maxBytes: number): Promise<Uint8Array<ArrayBuffer> | null> {
  const declared = Number(message.headers.get("Content-Length") ?? "0");
  // Nothing of it is read: the answer ends the request.
  if (declared > maxBytes) throw new BodyTooLargeError(maxBytes);
  if (!message.body) return null;
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = message.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw new BodyTooLargeError(maxBytes);
    }
    chunks.push(value);
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}
