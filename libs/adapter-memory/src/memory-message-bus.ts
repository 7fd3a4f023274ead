import { BackendUnavailableError, isValidTopicFilter } from '@fleetmq/protocol';
import { TopicTrie } from '@fleetmq/broker';
import type { BusHandler, BusSubscribeOptions, BusSubscription, Message, MessageBus } from '@fleetmq/broker';

/** One subscriber: a plain subscription, or one member of a queue group. */
class Member {
  active = true;
  constructor(readonly handler: BusHandler) {}
}

/** The members of one (group, filter) pair; each message goes to one of them, round-robin. */
class QueueGroup {
  readonly members: Member[] = [];
  private cursor = 0;

  next(): Member | undefined {
    const n = this.members.length;
    if (n === 0) return undefined;
    if (this.cursor >= n) this.cursor = 0;
    return this.members[this.cursor++];
  }

  /** Removes the member; returns true when the group is left empty. */
  remove(member: Member): boolean {
    const i = this.members.indexOf(member);
    if (i >= 0) {
      this.members.splice(i, 1);
      // keep the rotation where it was: the member after the removed one is still next
      if (i < this.cursor) this.cursor--;
    }
    return this.members.length === 0;
  }
}

type Entry = Member | QueueGroup;
/** Trie keys: the Member itself for a plain subscription, the group name for a queue group. */
type EntryKey = Member | string;

const RESOLVED: Promise<void> = Promise.resolve();

class MemoryBusSubscription implements BusSubscription {
  constructor(
    private readonly bus: MemoryMessageBus,
    private readonly filter: string,
    private readonly member: Member,
    private readonly group: string | undefined,
  ) {}

  unsubscribe(): Promise<void> {
    if (this.member.active) {
      this.member.active = false;
      this.bus.detach(this.filter, this.member, this.group);
    }
    return RESOLVED;
  }
}

/**
 * The in-process MessageBus, standing in for NATS on a node that runs alone.
 * `publish` delivers synchronously to every matching subscription (once per subscription,
 * one member per queue group), then resolves. A handler that throws is counted in
 * `handlerErrors` and does not stop delivery to the others.
 */
export class MemoryMessageBus implements MessageBus {
  private trie = new TopicTrie<EntryKey, Entry>();
  private closed = false;
  private errors = 0;
  /** The message being delivered; saved and restored around nested publishes from handlers. */
  private current: Message | undefined;

  get ready(): boolean {
    return !this.closed;
  }

  /** Handler calls that threw since the bus was created. */
  get handlerErrors(): number {
    return this.errors;
  }

  /** Distinct filters with at least one subscription (plain or group). */
  get filterCount(): number {
    return this.trie.size;
  }

  publish(message: Message): Promise<void> {
    if (this.closed) return Promise.reject(new BackendUnavailableError('nats', 'message bus is closed'));
    const previous = this.current;
    this.current = message;
    try {
      this.trie.match(message.topic, this.visitFilter);
    } finally {
      this.current = previous;
    }
    return RESOLVED;
  }

  subscribe(filter: string, handler: BusHandler, options?: BusSubscribeOptions): Promise<BusSubscription> {
    if (this.closed) return Promise.reject(new BackendUnavailableError('nats', 'message bus is closed'));
    if (!isValidTopicFilter(filter)) return Promise.reject(new TypeError(`invalid topic filter: ${JSON.stringify(filter)}`));
    const member = new Member(handler);
    const group = options?.group;
    if (group === undefined) {
      this.trie.add(filter, member, member);
    } else {
      let queue = this.trie.get(filter, group);
      if (!(queue instanceof QueueGroup)) {
        queue = new QueueGroup();
        this.trie.add(filter, group, queue);
      }
      queue.members.push(member);
    }
    return Promise.resolve(new MemoryBusSubscription(this, filter, member, group));
  }

  /** Deliveries are synchronous: everything published so far has been handed over. */
  sync(): Promise<void> {
    if (this.closed) return Promise.reject(new BackendUnavailableError('nats', 'message bus is closed'));
    return RESOLVED;
  }

  close(): Promise<void> {
    this.closed = true;
    this.trie = new TopicTrie<EntryKey, Entry>();
    return RESOLVED;
  }

  /** @internal Called by a subscription when it unsubscribes. */
  detach(filter: string, member: Member, group: string | undefined): void {
    if (group === undefined) {
      this.trie.remove(filter, member);
      return;
    }
    const queue = this.trie.get(filter, group);
    if (queue instanceof QueueGroup && queue.remove(member)) this.trie.remove(filter, group);
  }

  // Bound once, so that publishing allocates no closures.
  private readonly visitFilter = (_filter: string, entries: ReadonlyMap<EntryKey, Entry>): void => {
    entries.forEach(this.deliverEntry);
  };

  private readonly deliverEntry = (entry: Entry): void => {
    const member = entry instanceof QueueGroup ? entry.next() : entry;
    if (member === undefined || !member.active) return;
    try {
      member.handler(this.current!);
    } catch {
      this.errors++;
    }
  };
}
