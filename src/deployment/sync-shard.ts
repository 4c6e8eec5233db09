/**
 * The sync shard Durable Object (docs/SHARDS.md): client sockets of one
 * deployment, served by a `ShardServer` whose internal session lives in the
 * deployment's object (`<deployment>`); this object is `<deployment>/shard-<k>`.
 *
 * Its sockets are not hibernatable: what it holds (results, query sets) is
 * memory only, so it stays awake while it has clients. When it is evicted or
 * restarted anyway, its sockets close and the official client reconnects, to
 * any shard (sessions need no stickiness; a retried mutation is recognised by
 * its session and request id in the deployment object).
 */
import { DurableObject } from "cloudflare:workers";
import { AuthenticationError } from "../engine/index.ts";
import { DEFAULT_KNOBS } from "./knob-table.ts";
import { ShardServer, type ShardKnobs } from "../sync/shard-server.ts";
import { socketConnection } from "./sockets.ts";
import { Admission, type AdmissionKnobs } from "./admission.ts";
import { deploymentStub, isLocalConfiguration, type Env } from "../env.ts";
import type { ShardApi, ShardStats } from "./shard-sessions.ts";

/** `<deployment>/shard-<k>`: the deployment a shard serves. */
export function shardDeployment(name: string): string {
  const at = name.lastIndexOf("/shard-");
  if (at <= 0) throw new Error(`A sync shard is named <deployment>/shard-<k>, not ${JSON.stringify(name)}`);
  return name.slice(0, at);
}

export class SyncShard extends DurableObject<Env> implements ShardApi {
  private readonly server: ShardServer;
  /** The deployment's knobs as of the last session it opened (the table's defaults until then). */
  private knobs: ShardKnobs = DEFAULT_KNOBS;
  private pinger: ReturnType<typeof setInterval> | null = null;
  /** Its share of the deployment's session limits, as of the last session it opened (the whole until then). */
  private admissionKnobs: AdmissionKnobs = DEFAULT_KNOBS;
  private readonly admission = new Admission(() => this.admissionKnobs, Date.now());
  /** Local tests only: what happens to the next push (see `faultNextPush`). */
  private nextPushFault: "lose" | "twice" | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const name = ctx.id.name!;
    // A fresh stub per call: a stub that threw once fails every later call.
    const database = () => deploymentStub(env, shardDeployment(name));
    this.server = new ShardServer({
      knobs: () => this.knobs,
      authenticate: async (token) => {
        const answer = await database().verifyToken(token);
        if (answer.ok) return answer.verified;
        throw new AuthenticationError(answer.code, answer.message);
      },
      link: {
        open: async () => {
          const { connectionId, knobs, admission } = await database().openShardSession(name);
          this.knobs = knobs;
          this.admissionKnobs = admission;
          return connectionId;
        },
        send: (connectionId, frames) => database().shardFrames(connectionId, frames),
      },
    });
  }

  /** A client's socket (the Worker routes `/api/<version>/sync` here when the deployment has shards). */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new Response("Expected a WebSocket upgrade", { status: 426 });
    // A full shard refuses with a retry hint, as the deployment object does past its waiting room; the
    // client backs off and its next socket may land on another shard.
    const now = Date.now();
    if (!this.admission.tryAdmit(this.server.sessionCount, now)) {
      const refusal = this.admission.refusal(this.server.sessionCount, now);
      return Response.json(
        { code: refusal.code, message: `${refusal.message} (this shard's share)`, retryAfterMs: refusal.retryAfterMs },
        { status: 429, headers: { "Retry-After": String(Math.ceil(refusal.retryAfterMs / 1000)) } },
      );
    }
    const { 0: client, 1: socket } = new WebSocketPair();
    socket.accept();
    const session = this.server.open(socketConnection(socket, { hibernatable: false }), crypto.randomUUID().replaceAll("-", "").slice(0, 12));
    socket.addEventListener("message", (event) => void this.server.receive(session, event.data as string | ArrayBuffer));
    const closed = () => {
      this.server.close(session);
      if (this.server.sessionCount === 0 && this.pinger !== null) {
        clearInterval(this.pinger);
        this.pinger = null;
      }
    };
    socket.addEventListener("close", closed);
    socket.addEventListener("error", closed);
    // Idle pings for clients. Nothing here calls the deployment object while all is quiet, so it can sleep; it
    // tells this shard to start a new session when it starts again or when a push to it failed.
    this.pinger ??= setInterval(() => this.server.pingIdle(), this.knobs.idlePingMs / 2);
    return new Response(null, { status: 101, webSocket: client });
  }

  async deliver(connectionId: string, epoch: string, seq: number, frames: string[]): Promise<boolean> {
    const fault = this.nextPushFault;
    this.nextPushFault = null;
    if (fault === "lose") return true;
    const delivered = await this.server.deliver(connectionId, epoch, seq, frames);
    if (fault === "twice") await this.server.deliver(connectionId, epoch, seq, frames);
    return delivered;
  }

  async upstreamRestarted(connectionId: string): Promise<void> {
    await this.server.upstreamRestarted(connectionId);
  }

  /**
   * Local configuration only (tests): the next push is lost on its way (the
   * deployment object believes it arrived) or arrives twice. Refused anywhere else.
   */
  async faultNextPush(fault: "lose" | "twice"): Promise<void> {
    if (!isLocalConfiguration(this.env)) throw new Error("Push faults are a local test hook");
    this.nextPushFault = fault;
  }

  /** The deployment object started again: a shard with clients opens a new session and adds its queries. */
  async resync(why: string): Promise<void> {
    if (this.server.sessionCount > 0) await this.server.resync(why);
  }

  async stats(): Promise<ShardStats> {
    return {
      sessions: this.server.sessionCount,
      waiting: 0,
      refused: this.admission.refused,
      transitionsSent: this.server.counters.transitionsSent,
      lastPushSeq: this.server.lastPushSeq,
    };
  }
}
