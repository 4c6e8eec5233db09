/**
 * The sync shard Durable Object (docs/SHARDS.md): client sockets of one
 * deployment, served by the same `SyncFront` and `SessionGate` as the
 * deployment object, over an `UpstreamSource` whose peer session lives in
 * the deployment's object (`<deployment>`); this object is
 * `<deployment>/shard-<k>`.
 *
 * It admits its share of the deployment's session limits (`gateShare`), and
 * a newcomer it has no room for waits in its waiting room, as on the
 * deployment object. The deployment object tells it when knobs change.
 *
 * Hibernation: its client sockets are hibernatable, each session's versions
 * ride on its socket's attachment, query sets, held mutations, the peer
 * session, the queries it holds and the requests still waiting for an
 * answer are in its own SQLite (`SHARD_MIGRATIONS`), and idle pings and the
 * waiting room's turns come from its alarm. So a quiet shard sleeps, and one
 * woken by a push, a client's frame or its alarm carries on where it was.
 */
import { DurableObject } from "cloudflare:workers";
import { AuthenticationError } from "../engine/index.ts";
import { DEFAULT_KNOBS } from "../knobs/knob-table.ts";
import { SyncFront } from "../sync/front.ts";
import { shardFront, type UpstreamSource } from "../sync/upstream-source.ts";
import { SqliteSyncStorage } from "./sqlite-sync-storage.ts";
import { SHARD_MIGRATIONS, SqliteShardStorage } from "./sqlite-shard-storage.ts";
import { migrate } from "./migrations.ts";
import { AlarmScheduler } from "../operations/alarm-scheduler.ts";
import { SessionGate, type GateKnobs } from "../sync/session-gate.ts";
import type { SyncSession } from "../sync/session.ts";
import {
  acceptBareSocket,
  answerClose,
  isWebSocketUpgrade,
  newConnectionId,
  openSockets,
  refusalResponse,
  socketConnection,
  SocketSessions,
  upgradeRequiredResponse,
} from "./sockets.ts";
import { isLocalConfiguration, type Env } from "../env.ts";
import { deploymentStub } from "./deployment.ts";
import { shardConfig, shardName, type ShardApi, type ShardConfig, type ShardStats } from "./shard-sessions.ts";
import { clientAddress } from "../sync/client-limits.ts";

export class SyncShard extends DurableObject<Env> implements ShardApi {
  private readonly front: SyncFront<UpstreamSource>;
  private readonly upstream: UpstreamSource;
  private readonly gate: SessionGate;
  private readonly alarms: AlarmScheduler;
  private readonly sockets = new SocketSessions();
  private readonly shardStorage: SqliteShardStorage;
  /** The deployment's knobs and this shard's share, as of the last session it opened or the last change it was told of (kept in SQLite). */
  private config: ShardConfig;
  /** Local tests only: what happens to the next push (see `faultNextPush`). */
  private nextPushFault: "lose" | "twice" | null = null;
  /** Local tests only: the next opens of a peer session that fail (see `refuseNextOpens`). */
  private opensToRefuse = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const name = ctx.id.name!;
    const { deployment, index } = shardName(name);
    migrate(ctx.storage, SHARD_MIGRATIONS);
    this.shardStorage = new SqliteShardStorage(ctx.storage.sql);
    const kept = this.shardStorage.loadValue("config");
    // A config kept by an older version may lack newer knobs: those take their defaults until the deployment sends its own.
    const defaults = shardConfig(DEFAULT_KNOBS, index);
    const stored = kept ? (JSON.parse(kept) as ShardConfig) : null;
    this.config = stored ? { knobs: { ...defaults.knobs, ...stored.knobs }, share: { ...defaults.share, ...stored.share } } : defaults;
    // A fresh stub per call: a stub that threw once fails every later call.
    const database = () => deploymentStub(env, deployment);
    this.front = shardFront({
      storage: new SqliteSyncStorage(ctx.storage.sql, () => this.config.knobs.mutationResultRetentionMs),
      shardStorage: this.shardStorage,
      knobs: () => this.config.knobs,
      link: {
        open: async () => {
          if (this.opensToRefuse > 0) {
            this.opensToRefuse--;
            throw new Error("refused by the test hook");
          }
          const { connectionId, config } = await database().openShardSession(name);
          this.configure(config);
          return connectionId;
        },
        send: (connectionId, frames) => database().shardFrames(connectionId, frames),
        advanceTimestamp: (connectionId, ts) => database().advanceShardTimestamp(connectionId, ts.toString()),
      },
      authenticate: async (token) => {
        const answer = await database().verifyToken(token);
        if (answer.ok) return answer.verified;
        throw new AuthenticationError(answer.code, answer.message);
      },
    });
    this.upstream = this.front.source;
    this.alarms = new AlarmScheduler(ctx.storage, {
      // Waiting sessions are pinged too: their clients must not time out while they wait.
      ping: () => {
        this.front.pingIdle();
        return this.front.sessionCount + this.front.waitingCount > 0 ? Date.now() + this.config.knobs.idlePingMs : null;
      },
      waitingRoom: () => this.gate.serve(),
    });
    this.gate = new SessionGate({ front: this.front, knobs: (): GateKnobs => this.config.share, now: Date.now, wake: (at) => this.alarms.request(at) });
    this.front.restore(openSockets(ctx));
    // Sessions restored as waiting are served again now (room may have freed while the shard slept).
    if (this.front.waitingCount > 0) this.gate.pump();
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  /** A client's socket (the Worker routes `/api/<version>/sync` here when the deployment has shards). */
  override async fetch(request: Request): Promise<Response> {
    if (!isWebSocketUpgrade(request)) return upgradeRequiredResponse();
    const bare = acceptBareSocket(this.ctx, this.env, request, this.sockets);
    if (bare) return bare;
    await this.configured();
    const door = this.gate.accept(clientAddress(request.headers));
    if ("refusal" in door) return refusalResponse(door.refusal, " (this shard's share)");
    const { 0: client, 1: socket } = new WebSocketPair();
    this.ctx.acceptWebSocket(socket);
    this.sockets.set(socket, this.front.open(socketConnection(socket), newConnectionId(), door.waiting));
    this.alarms.request(Date.now() + this.config.knobs.idlePingMs);
    if (door.waiting) this.gate.pump();
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const session = this.sockets.of(ws, this.front);
    if (session) await this.front.receive(session, message);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    const session = this.sockets.of(ws, this.front);
    if (session) this.closed(session);
    answerClose(ws, code, reason);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    const session = this.sockets.of(ws, this.front);
    if (session) this.closed(session);
  }

  /** A socket went away: forget its session; its place may let a waiting one in. */
  private closed(session: SyncSession): void {
    this.front.forget(session);
    this.gate.pump();
  }

  override async alarm(): Promise<void> {
    await this.alarms.run();
  }

  private configure(config: ShardConfig): void {
    this.config = config;
    this.shardStorage.saveValue("config", JSON.stringify(config));
    this.gate.shedExcess();
    this.gate.pump();
  }

  /** The deployment's knobs changed: this shard's share moves with them at once (a raised cap lets its waiting clients in). */
  async configChanged(config: ShardConfig): Promise<void> {
    this.configure(config);
  }

  async deliver(connectionId: string, epoch: string, seq: number, frames: string[]): Promise<boolean> {
    const fault = this.nextPushFault;
    this.nextPushFault = null;
    if (fault === "lose") return true;
    const delivered = await this.upstream.deliver(connectionId, epoch, seq, frames);
    if (fault === "twice") await this.upstream.deliver(connectionId, epoch, seq, frames);
    return delivered;
  }

  async upstreamRestarted(connectionId: string): Promise<void> {
    await this.upstream.upstreamRestarted(connectionId);
  }

  /**
   * Local configuration only (tests): the next push is lost on its way (the
   * deployment object believes it arrived) or arrives twice. Refused anywhere else.
   */
  async faultNextPush(fault: "lose" | "twice"): Promise<void> {
    if (!isLocalConfiguration(this.env)) throw new Error("Push faults are a local test hook");
    this.nextPushFault = fault;
  }

  /** Local configuration only (tests): the next `count` attempts to open a peer session fail, as an unreachable deployment object would. */
  async refuseNextOpens(count: number): Promise<void> {
    if (!isLocalConfiguration(this.env)) throw new Error("Refused opens are a local test hook");
    this.opensToRefuse = count;
  }

  /** The deployment object started again: a shard with clients opens a new session and adds its queries. */
  async resync(why: string): Promise<void> {
    if (this.front.sessionCount + this.front.waitingCount > 0) await this.upstream.resync(why);
  }

  /**
   * A shard that never spoke to the deployment object learns its share of the
   * limits first, before it admits anyone.
   */
  private async configured(): Promise<void> {
    if (this.shardStorage.loadValue("config") === null) await this.upstream.resync("the first client arrived");
  }

  async stats(): Promise<ShardStats> {
    return {
      sessions: this.front.sessionCount,
      waiting: this.front.waitingCount,
      refused: this.gate.admission.refused,
      transitionsSent: this.front.counters.transitionsSent,
      heldQueries: this.upstream.heldCount,
      resultBytes: this.upstream.resultBytes,
      resultEvictions: this.upstream.resultEvictions,
      resyncs: this.upstream.counters.resyncs,
      upstreamRetries: this.upstream.counters.upstreamRetries,
    };
  }
}
