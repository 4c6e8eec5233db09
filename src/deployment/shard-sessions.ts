/**
 * The database object's side of its sync shards (docs/SHARDS.md): one
 * internal session of live sync per shard, opened when the shard asks,
 * pushing through a `ShardOutbox`. Shard names are kept in SQLite
 * (`sync_shards`), because internal sessions live in memory: when this
 * object starts again (a restart, a wake from hibernation) it tells each
 * shard to open a new one and add its queries again.
 */
import type { SyncServer } from "../sync/sync-server.ts";
import type { SyncSession } from "../sync/session.ts";
import { ShardOutbox, type ShardPushTarget } from "../sync/shard-outbox.ts";
import type { ShardStatus } from "./status.ts";

/** What the database object calls on a shard. */
export interface ShardApi extends ShardPushTarget {
  resync(why: string): Promise<void>;
  stats(): Promise<ShardStats>;
}

export interface ShardStats {
  sessions: number;
  /** Sessions waiting for room (shards have no waiting room yet: always 0) and sockets refused (its share was full). */
  waiting: number;
  refused: number;
  transitionsSent: number;
  lastPushSeq: number;
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
  private readonly sync: SyncServer;
  private readonly stub: (name: string) => ShardApi;

  constructor(sql: SqlStorage, sync: SyncServer, stub: (name: string) => ShardApi) {
    this.sql = sql;
    this.sync = sync;
    this.stub = stub;
  }

  /** Shards that had sessions before this object started: told to open new ones. */
  notifyKnownShards(): void {
    for (const { name } of this.sql.exec<{ name: string }>("SELECT name FROM sync_shards")) {
      this.stub(name)
        .resync("the database object started again")
        .catch((error: unknown) => console.warn(`shard ${name} could not be told to resync: ${(error as Error).message}`));
    }
  }

  /** A new internal session for `name`, closing its earlier one. */
  open(name: string): string {
    const earlier = this.byName.get(name);
    if (earlier) this.close(earlier, "the shard opened a new session");
    const connectionId = `${name}#${crypto.randomUUID().slice(0, 8)}`;
    // A broken stub fails every later call; a fresh one per push is cheap.
    const outbox = new ShardOutbox(connectionId, () => this.stub(name), (why, shardKnows) => {
      this.closeConnection(connectionId, why);
      // A push the shard missed: it starts a new session, or it is gone and its clients reconnect elsewhere.
      if (!shardKnows) this.stub(name).resync(why).catch((error: unknown) => console.warn(`shard ${name} could not be told to resync: ${(error as Error).message}`));
    });
    const shard = { name, session: this.sync.openInternal(outbox, connectionId), outbox };
    this.byConnection.set(connectionId, shard);
    this.byName.set(name, shard);
    this.sql.exec("INSERT OR IGNORE INTO sync_shards (name) VALUES (?)", name);
    return connectionId;
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
    shard.outbox.close();
    if (!shard.session.closed) this.sync.drop(shard.session, 1000, "shard session closed", why);
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
          subscriptions: shard.session.queries.size,
          lastPushSeq: shard.outbox.seq,
          lagMs: shard.outbox.inFlightSince === null ? 0 : now - shard.outbox.inFlightSince,
        };
      }),
    );
  }
}
