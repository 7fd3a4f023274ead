import type { QoS } from '@fleetmq/protocol';
import type { MessageProperties } from '@fleetmq/broker';

/** A message on its way to the remote broker, its topic already mapped. */
export interface OutgoingMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  /** MQTT 5 properties as the local broker delivered them (message expiry included). */
  readonly properties: MessageProperties & { messageExpiryInterval?: number } | undefined;
}

interface Entry {
  readonly seq: number;
  readonly message: OutgoingMessage;
}

/**
 * The bridge's QoS 1/2 messages for the remote broker: waiting, or sent and not yet
 * acknowledged (inflight). Bounded by `maxQueued` in all; when full, the oldest waiting
 * message is dropped (drop-oldest, counted). Inflight messages go back to the front, in
 * their order, when the remote connection is lost, and are sent again on reconnect.
 */
export class OutgoingQueue {
  private waiting: Entry[] = [];
  private head = 0;
  private readonly inflight = new Map<number, Entry>();
  private seq = 0;
  /** Messages dropped because the queue was full. */
  dropped = 0;

  constructor(
    readonly maxQueued: number,
    readonly maxInflight: number,
  ) {
    if (!Number.isInteger(maxQueued) || maxQueued < 1) throw new RangeError(`maxQueued must be a whole number >= 1, got ${maxQueued}`);
    if (!Number.isInteger(maxInflight) || maxInflight < 1) throw new RangeError(`maxInflight must be a whole number >= 1, got ${maxInflight}`);
  }

  /** Waiting plus inflight. */
  get length(): number {
    return this.waiting.length - this.head + this.inflight.size;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Adds a message; returns false when the oldest waiting one had to go (or this one, with none waiting). */
  push(message: OutgoingMessage): boolean {
    let kept = true;
    if (this.length >= this.maxQueued) {
      this.dropped++;
      kept = false;
      if (this.head < this.waiting.length) this.head++;
      else return false; // all inflight: the new one is the one that goes
    }
    this.waiting.push({ seq: this.seq++, message });
    this.compact();
    return kept;
  }

  /** The next message to send, moved to inflight; undefined when none waits or the window is full. */
  take(): { id: number; message: OutgoingMessage } | undefined {
    if (this.inflight.size >= this.maxInflight || this.head >= this.waiting.length) return undefined;
    const entry = this.waiting[this.head++]!;
    this.inflight.set(entry.seq, entry);
    this.compact();
    return { id: entry.seq, message: entry.message };
  }

  /** The remote acknowledged (or refused for good) an inflight message. */
  settle(id: number): void {
    this.inflight.delete(id);
  }

  /** The connection is gone: inflight messages wait again, first and in their order. */
  requeueInflight(): void {
    if (this.inflight.size === 0) return;
    const back = [...this.inflight.values()].sort((a, b) => a.seq - b.seq);
    this.inflight.clear();
    this.waiting = [...back, ...this.waiting.slice(this.head)];
    this.head = 0;
  }

  /** Empties the queue (the bridge stops here); returns how many messages it held. */
  clear(): number {
    const count = this.length;
    this.waiting = [];
    this.head = 0;
    this.inflight.clear();
    return count;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
  }
}
