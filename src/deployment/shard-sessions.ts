/**
 * The database object's side of its sync shards (docs/SHARDS.md): one
 * internal session of live sync per shard, opened when the shard asks,
 * pushing through a `ShardOutbox`. Each session's id and versions are kept
 * in SQLite (`sync_shards`; its queries are in `sync_queries` like any
 * session's), so when this object starts again (a restart, a wake from
 * hibernation) the sessions come back without running a query, as sockets'
 * sessions do. Pushes then carry a new epoch, and each shard is told to
 * re-send the mutations it is still waiting for (a crash may have lost their
 * answers; a retry is answered from the record).
 */
import type { SyncFront } from "../sync/front.ts";
import { CLOSE } from "../knobs/wire.ts";
import { newConnectionId } from "./sockets.ts";
import type { SessionAttachment, SyncSession } from "../sync/session.ts";
import { ShardOutbox, type ShardPushTarget } from "../sync/shard-outbox.ts";
import type { KnobValues } from "../knobs/knob-table.ts";
import { gateShare, type GateKnobs } from "../sync/session-gate.ts";

/** `<deployment>/shard-<k>`: the deployment a shard serves, and k. */
export function shardName(name: string): { deployment: string; index: number } {
  const at = name.lastIndexOf("/shard-");
  const index = Number(name.slice(at + "/shard-".length));
  if (at <= 0 || !Number.isSafeInteger(index) || index < 0) throw new Error(`A sync shard is named <deployment>/shard-<k>, not ${JSON.stringify(name)}`);
  return { deployment: name.slice(0, at), index };
}

/** The deployment's config for shard `index` of `knobs.syncShards`: its knobs, and its share of the admission limits. */
export function shardConfig(knobs: KnobValues, index: number): ShardConfig {
  return { knobs, share: gateShare(knobs, index, knobs.syncShards) };
}

/** One sync shard: what it reports (null if it did not answer) and what the deployment object knows of it. */
export interface ShardStatus {
  id: string;
  sessions: number | null;
  waiting: number | null;
  refused: number | null;
  transitionsSent: number | null;
  /** Peer sessions it started over; failed opens it retried after a backoff. */
  resyncs: number | null;
  upstreamRetries: number | null;
  /** Bytes of held results (budget: shardResultCacheBytes). */
  resultBytes: number | null;
  /** Distinct queries it holds. */
  subscriptions: number;
  lastPushSeq: number;
  /** How long the push in flight to it has been on its way (0: none). */
  lagMs: number;
}

/** What a shard serves its clients with: the deployment's knobs, and its share of the admission limits (`gateShare`). */
export interface ShardConfig {
  knobs: KnobValues;
  share: GateKnobs;
}

/** What the database object calls on a shard. */
export interface ShardApi extends ShardPushTarget {
  resync(why: string): Promise<void>;
  /** The database object started again with `connectionId` restored (see the module doc). */
  upstreamRestarted(connectionId: string): Promise<void>;
  /** The deployment's knobs changed. */
  configChanged(config: ShardConfig): Promise<void>;
  stats(): Promise<ShardStats>;
}

export interface ShardStats {
  sessions: number;
  /** Sessions in the shard's waiting room. */
  waiting: number;
  /** Sockets it refused (past its share of maxWaitingSessions). */
  refused: number;
  transitionsSent: number;
  /** Distinct queries its peer session holds. */
  heldQueries: number;
  /** Bytes of their results it holds (within shardResultCacheBytes), and how many it dropped past it. */
  resultBytes: number;
  resultEvictions: number;
  /** Peer sessions it started over, and failed attempts to open one that it retried after a backoff. */
  resyncs: number;
  upstreamRetries: number;
}

interface OpenShard {
  name: string;
  session: SyncSession;
  outbox: ShardOutbox;
}

export class ShardSessions {
  private readonly byConnection = new Map<string, OpenShard>();
  private readonly byName = new Map<string, OpenShard>();
  private readonly sql: SqlStorage;
  private readonly sync: SyncFront;
  private readonly stub: (name: string) => ShardApi;
  /** `maxPeerBatchBytes`: the most one push carries. */
  private readonly batchBytes: () => number;
  /** This start of the object: pushes are numbered within it. */
  private readonly epoch = crypto.randomUUID().slice(0, 8);

  constructor(sql: SqlStorage, sync: SyncFront, stub: (name: string) => ShardApi, batchBytes: () => number) {
    this.batchBytes = batchBytes;
    this.sql = sql;
    this.sync = sync;
    this.stub = stub;
  }

  /**
   * The internal sessions kept from before this object started, as live sync
   * restores sessions (`SyncFront.restore`); `adopt` registers them once it has.
   */
  restorable(): { open: { connection: ShardOutbox; attachment: SessionAttachment }[]; adopt: () => void } {
    const rows = this.sql
      .exec<{ name: string; connection_id: string; attachment: string }>("SELECT name, connection_id, attachment FROM sync_shards WHERE attachment IS NOT NULL")
      .toArray();
    const outboxes = rows.map((row) => this.outbox(row.name, row.connection_id));
    return {
      open: rows.map((row, i) => ({ connection: outboxes[i]!, attachment: JSON.parse(row.attachment) as SessionAttachment })),
      adopt: () =>
        rows.forEach((row, i) => {
          const session = this.sync.session(row.connection_id);
          if (!session) return;
          this.register({ name: row.name, session, outbox: outboxes[i]! });
          this.tell(row.name, (shard) => shard.upstreamRestarted(row.connection_id));
        }),
    };
  }

  /** Shards whose session was never kept (it closed, or never saved its versions): told to open a new one. */
  notifyKnownShards(): void {
    for (const { name } of this.sql.exec<{ name: string }>("SELECT name FROM sync_shards WHERE attachment IS NULL")) {
      this.tell(name, (shard) => shard.resync("the database object started again"));
    }
  }

  private tell(name: string, call: (shard: ShardApi) => Promise<void>): void {
    call(this.stub(name)).catch((error: unknown) => console.warn(`shard ${name} could not be told: ${(error as Error).message}`));
  }

  private outbox(name: string, connectionId: string): ShardOutbox {
    return new ShardOutbox(
      connectionId,
      this.epoch,
      () => this.stub(name),
      (why, shardKnows) => {
        this.closeConnection(connectionId, why);
        // A push the shard missed: it starts a new session, or it is gone and its clients reconnect elsewhere.
        if (!shardKnows) this.tell(name, (shard) => shard.resync(why));
      },
      (attachment) =>
        this.sql.exec("UPDATE sync_shards SET attachment = ? WHERE name = ? AND connection_id = ?", JSON.stringify(attachment), name, connectionId),
      this.batchBytes,
    );
  }

  private register(shard: OpenShard): void {
    this.byConnection.set(shard.session.connectionId, shard);
    this.byName.set(shard.name, shard);
  }

  /** A new internal session for `name`, closing its earlier one. */
  open(name: string): string {
    const earlier = this.byName.get(name);
    if (earlier) this.close(earlier, "the shard opened a new session");
    const connectionId = newConnectionId(`${name}#`);
    // Before the session exists: opening it saves its first versions into this row.
    this.sql.exec(
      "INSERT INTO sync_shards (name, connection_id, attachment) VALUES (?, ?, NULL) ON CONFLICT(name) DO UPDATE SET connection_id = excluded.connection_id, attachment = NULL",
      name,
      connectionId,
    );
    const outbox = this.outbox(name, connectionId);
    this.register({ name, session: this.sync.openPeer(outbox, connectionId), outbox });
    return connectionId;
  }

  /** Tells every shard with a session of the knobs' change (`config` gives each its share). */
  configChanged(config: (name: string) => ShardConfig): void {
    for (const name of this.byName.keys()) this.tell(name, (shard) => shard.configChanged(config(name)));
  }

  /** The peer session `connectionId`, if this object has it. */
  peer(connectionId: string): SyncSession | undefined {
    const shard = this.byConnection.get(connectionId);
    return shard && !shard.session.closed ? shard.session : undefined;
  }

  /** The shard's frames, handled in order; false if this object no longer has that session. */
  async receive(connectionId: string, frames: string[]): Promise<boolean> {
    const shard = this.byConnection.get(connectionId);
    if (!shard || shard.session.closed) return false;
    for (const frame of frames) await this.sync.receive(shard.session, frame);
    return !shard.session.closed;
  }

  private closeConnection(connectionId: string, why: string): void {
    const shard = this.byConnection.get(connectionId);
    if (shard) this.close(shard, why);
  }

  private close(shard: OpenShard, why: string): void {
    this.byConnection.delete(shard.session.connectionId);
    if (this.byName.get(shard.name) === shard) this.byName.delete(shard.name);
    this.sql.exec("UPDATE sync_shards SET attachment = NULL WHERE name = ? AND connection_id = ?", shard.name, shard.session.connectionId);
    shard.outbox.close();
    if (!shard.session.closed) this.sync.drop(shard.session, CLOSE.normal, "shard session closed", why);
  }

  /** Per shard: what this object knows (distinct queries held, pushes) and what the shard reports. */
  async status(now: number): Promise<ShardStatus[]> {
    return Promise.all(
      [...this.byName.values()].map(async (shard) => {
        const stats = await this.stub(shard.name)
          .stats()
          .catch(() => null);
        return {
          id: shard.name,
          sessions: stats?.sessions ?? null,
          waiting: stats?.waiting ?? null,
          refused: stats?.refused ?? null,
          transitionsSent: stats?.transitionsSent ?? null,
          resyncs: stats?.resyncs ?? null,
          upstreamRetries: stats?.upstreamRetries ?? null,
          resultBytes: stats?.resultBytes ?? null,
          subscriptions: shard.session.queries.size,
          lastPushSeq: shard.outbox.seq,
          lagMs: shard.outbox.inFlightSince === null ? 0 : now - shard.outbox.inFlightSince,
        };
      }),
    );
  }
}
