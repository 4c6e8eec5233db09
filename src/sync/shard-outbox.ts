/**
 * The database object's side of a shard's internal session (docs/SHARDS.md):
 * the `Connection` its `SyncSession` sends through. Frames queue here and go
 * to the shard in numbered pushes, one in flight at a time; whatever queues
 * meanwhile goes in the next push, so a stream of commits costs the shard
 * one call per round trip, not one per commit.
 */
import type { Connection, SessionAttachment } from "./session.ts";
import { takeBatch } from "./peer-batches.ts";

export interface ShardPushTarget {
  /**
   * Delivers one push; false when the shard no longer has this session (it
   * started a new one). Pushes are numbered from 1 within an `epoch`: one
   * start of the database object.
   */
  deliver(connectionId: string, epoch: string, seq: number, frames: string[]): Promise<boolean>;
}

export class ShardOutbox implements Connection {
  private frames: string[] = [];
  private sending = false;
  /** The number of the last push handed to the shard. */
  seq = 0;
  /** When the push in flight (if any) was sent, for the shard's lag. */
  inFlightSince: number | null = null;
  private readonly connectionId: string;
  private readonly epoch: string;
  private readonly target: () => ShardPushTarget;
  /** Keeps the session's versions where this object's next start finds them. */
  private readonly persist: (attachment: SessionAttachment) => void;
  /**
   * The session is over: the shard has a newer one (`shardKnows`), or a push
   * failed and the shard missed it (then it must be told to start again).
   */
  private readonly onGone: (why: string, shardKnows: boolean) => void;
  /** Characters of frames one push may carry (`maxPeerBatchBytes`): a larger backlog goes in several numbered pushes. */
  private readonly batchBytes: () => number;
  private closed = false;

  constructor(
    connectionId: string,
    epoch: string,
    target: () => ShardPushTarget,
    onGone: (why: string, shardKnows: boolean) => void,
    persist: (attachment: SessionAttachment) => void = () => undefined,
    batchBytes: () => number = () => Infinity,
  ) {
    this.batchBytes = batchBytes;
    this.connectionId = connectionId;
    this.epoch = epoch;
    this.target = target;
    this.onGone = onGone;
    this.persist = persist;
  }

  /** Nothing queued or in flight. */
  get idle(): boolean {
    return !this.sending && this.frames.length === 0;
  }

  send(frame: string): boolean {
    if (this.closed) return false;
    this.frames.push(frame);
    if (!this.sending) void this.drain();
    return true;
  }

  close(): void {
    this.closed = true;
    this.frames = [];
  }

  /** No socket to keep it on: the versions go where `persist` keeps them. */
  saveAttachment(attachment: SessionAttachment): void {
    if (!this.closed) this.persist(attachment);
  }

  private async drain(): Promise<void> {
    this.sending = true;
    try {
      while (this.frames.length > 0 && !this.closed) {
        // Below the RPC limit: a push too large would fail every time, and the shard's resync with it.
        const frames = takeBatch(this.frames, this.batchBytes());
        const seq = ++this.seq;
        this.inFlightSince = Date.now();
        let delivered: boolean;
        try {
          delivered = await this.target().deliver(this.connectionId, this.epoch, seq, frames);
        } catch (error) {
          // A broken stub fails every later call: the shard notices the lost push and starts a new session.
          this.onGone(`push ${seq} failed: ${(error as Error).message}`, false);
          return;
        }
        if (!delivered) {
          this.onGone(`the shard no longer has session ${this.connectionId}`, true);
          return;
        }
      }
    } finally {
      this.sending = false;
      this.inFlightSince = null;
    }
  }
}
