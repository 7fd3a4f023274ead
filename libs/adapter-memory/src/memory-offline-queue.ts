import { BackendUnavailableError } from '@fleetmq/protocol';
import type { AppendResult, Message, OfflineQueue, OfflineQueueOptions, QueuedMessage } from '@fleetmq/broker';

/** One client's queue: an array consumed from `head`, compacted now and then. */
class ClientQueue {
  items: (QueuedMessage | undefined)[] = [];
  head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  /** Index of the first item with seq > afterSeq (items are sorted by seq). */
  indexAfter(afterSeq: number): number {
    let lo = this.head;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid]!.seq <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Drops everything before index `to`. */
  dropBefore(to: number): void {
    for (let i = this.head; i < to; i++) this.items[i] = undefined;
    this.head = to;
    if (this.head > 64 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * The in-process OfflineQueue, standing in for DynamoDB on a node that runs alone.
 * Each client's messages are kept in order with increasing sequence numbers (one counter
 * for the whole store, so a sequence number is never reused, not even after `clear`).
 * At `maxLength`, 'drop-oldest' evicts from the head and 'drop-newest' refuses the new message.
 */
export class MemoryOfflineQueue implements OfflineQueue {
  private readonly queues = new Map<string, ClientQueue>();
  private readonly maxLength: number;
  private readonly dropOldest: boolean;
  private nextSeq = 1;
  private dropCount = 0;
  private closed = false;

  constructor(options: OfflineQueueOptions) {
    if (!Number.isSafeInteger(options.maxLength) || options.maxLength < 0) {
      throw new RangeError(`offline queue maxLength must be a non-negative integer, got ${options.maxLength}`);
    }
    if (options.dropPolicy !== 'drop-oldest' && options.dropPolicy !== 'drop-newest') {
      throw new RangeError(`offline queue dropPolicy must be 'drop-oldest' or 'drop-newest', got ${String(options.dropPolicy)}`);
    }
    this.maxLength = options.maxLength;
    this.dropOldest = options.dropPolicy === 'drop-oldest';
  }

  /** Messages dropped by the drop policy since the queue was created. */
  get droppedTotal(): number {
    return this.dropCount;
  }

  async append(clientId: string, messages: readonly Message[]): Promise<AppendResult> {
    this.ensureOpen();
    let dropped = 0;
    for (const message of messages) dropped += this.push(clientId, message);
    return { dropped };
  }

  async appendMany(clientIds: readonly string[], message: Message): Promise<AppendResult> {
    this.ensureOpen();
    let dropped = 0;
    for (const clientId of clientIds) dropped += this.push(clientId, message);
    return { dropped };
  }

  async read(clientId: string, limit: number, afterSeq?: number): Promise<QueuedMessage[]> {
    this.ensureOpen();
    const queue = this.queues.get(clientId);
    if (queue === undefined || !(limit > 0)) return [];
    const from = afterSeq === undefined ? queue.head : queue.indexAfter(afterSeq);
    const to = Math.min(queue.items.length, from + Math.floor(limit));
    return queue.items.slice(from, to) as QueuedMessage[];
  }

  async remove(clientId: string, upToSeq: number): Promise<void> {
    this.ensureOpen();
    const queue = this.queues.get(clientId);
    if (queue === undefined) return;
    queue.dropBefore(queue.indexAfter(upToSeq));
    if (queue.length === 0) this.queues.delete(clientId);
  }

  async length(clientId: string): Promise<number> {
    this.ensureOpen();
    return this.queues.get(clientId)?.length ?? 0;
  }

  async clear(clientId: string): Promise<void> {
    this.ensureOpen();
    this.queues.delete(clientId);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Appends one message under the drop policy; returns how many messages it dropped (0 or 1). */
  private push(clientId: string, message: Message): number {
    let queue = this.queues.get(clientId);
    if (queue === undefined) {
      if (this.maxLength === 0) return this.drop();
      queue = new ClientQueue();
      this.queues.set(clientId, queue);
    }
    let dropped = 0;
    if (queue.length >= this.maxLength) {
      if (!this.dropOldest || this.maxLength === 0) return this.drop();
      queue.dropBefore(queue.head + 1);
      dropped = this.drop();
    }
    queue.items.push(Object.freeze({ seq: this.nextSeq++, message }));
    return dropped;
  }

  private drop(): number {
    this.dropCount++;
    return 1;
  }

  private ensureOpen(): void {
    if (this.closed) throw new BackendUnavailableError('dynamodb', 'offline queue is closed');
  }
}
