/**
 * A strict raw-protocol client for workers tests: it checks every Transition
 * starts exactly at the version it holds (the official client's rule) and
 * records everything the server sends.
 */
import { exports } from "cloudflare:workers";
import { decodeTs } from "../../src/protocol/sync.ts";

type Version = { querySet: number; ts: string; identity: number };
type ServerMessage = { type: string; [key: string]: unknown };

export class ProtocolClient {
  readonly messages: ServerMessage[] = [];
  readonly results = new Map<number, unknown>();
  readonly errors = new Map<number, string>();
  readonly mutationResponses = new Map<number, ServerMessage>();
  version: Version = { querySet: 0, ts: "AAAAAAAAAAA=", identity: 0 };
  querySetVersion = 0;
  chainingErrors: string[] = [];
  closed: { code: number; reason: string } | null = null;
  private requestId = 0;

  readonly ws: WebSocket;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.addEventListener("message", (event) => this.onMessage(JSON.parse(event.data as string) as ServerMessage));
    ws.addEventListener("close", (event) => {
      this.closed = { code: event.code, reason: event.reason };
    });
  }

  /** Connected through the Worker (which picks the object), or straight to `on` (a sync shard's stub). */
  static async open(deployment: string, sessionId = crypto.randomUUID(), on?: Fetcher): Promise<ProtocolClient> {
    const client = await ProtocolClient.openRaw(deployment, on);
    client.send({ type: "Connect", sessionId, connectionCount: 0, lastCloseReason: null, clientTs: Date.now() });
    return client;
  }

  /** Opens the socket without sending Connect. */
  static async openRaw(deployment: string, on: Fetcher = (exports as unknown as { default: Fetcher }).default): Promise<ProtocolClient> {
    const response = await on.fetch(`http://calmsync.test/d/${deployment}/api/1.49.0/sync`, {
      headers: { Upgrade: "websocket" },
    });
    const ws = response.webSocket;
    if (!ws) throw new Error(`no WebSocket: ${response.status} ${await response.text()}`);
    ws.accept();
    return new ProtocolClient(ws);
  }

  private onMessage(message: ServerMessage): void {
    this.messages.push(message);
    if (message.type === "Transition") {
      const start = message.startVersion as Version;
      if (start.querySet !== this.version.querySet || start.ts !== this.version.ts || start.identity !== this.version.identity) {
        this.chainingErrors.push(`start ${JSON.stringify(start)} != held ${JSON.stringify(this.version)}`);
      }
      const end = message.endVersion as Version;
      if (decodeTs(end.ts, "ts") < decodeTs(start.ts, "ts")) this.chainingErrors.push(`ts went back: ${JSON.stringify(start)} -> ${JSON.stringify(end)}`);
      this.version = message.endVersion as Version;
      for (const m of message.modifications as { type: string; queryId: number; value?: unknown; errorMessage?: string }[]) {
        if (m.type === "QueryUpdated") {
          this.results.set(m.queryId, m.value);
          this.errors.delete(m.queryId);
        } else if (m.type === "QueryFailed") this.errors.set(m.queryId, m.errorMessage!);
        else if (m.type === "QueryRemoved") this.results.delete(m.queryId);
      }
    } else if (message.type === "MutationResponse") {
      this.mutationResponses.set(message.requestId as number, message);
    }
  }

  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  add(queryId: number, udfPath: string, args: unknown): void {
    this.modify([{ type: "Add", queryId, udfPath, args: [args] }]);
  }

  remove(queryId: number): void {
    this.modify([{ type: "Remove", queryId }]);
  }

  modify(modifications: unknown[]): void {
    this.send({ type: "ModifyQuerySet", baseVersion: this.querySetVersion, newVersion: this.querySetVersion + 1, modifications });
    this.querySetVersion++;
  }

  mutate(udfPath: string, args: unknown, requestId = this.requestId++): number {
    this.send({ type: "Mutation", requestId, udfPath, args: [args] });
    return requestId;
  }

  /** Polls until `ready()` holds (the socket delivers between polls). */
  async until(ready: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last messages: ${JSON.stringify(this.messages.slice(-3))}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /**
   * A barrier instead of a sleep: an empty query set change, answered by a
   * Transition on this socket. Frames arrive in order, so anything the server
   * sent this socket before handling it has arrived once this resolves.
   */
  async barrier(): Promise<void> {
    this.modify([]);
    await this.until(() => this.version.querySet === this.querySetVersion, "the barrier's Transition");
  }

  /** The ts of the version this client holds. */
  get ts(): bigint {
    return decodeTs(this.version.ts, "ts");
  }

  /** Waits for a mutation's response and for a Transition at or past its ts (what the official client waits for). */
  async mutation(udfPath: string, args: unknown): Promise<ServerMessage> {
    const id = this.mutate(udfPath, args);
    await this.until(() => this.mutationResponses.has(id), `mutation ${id}`);
    const response = this.mutationResponses.get(id)!;
    if (response.success) await this.until(() => this.ts >= decodeTs(response.ts, "ts"), `transition past mutation ${id}`);
    return response;
  }

  close(): void {
    try {
      this.ws.close(1000, "done");
    } catch {
      /* already closed */
    }
  }
}
