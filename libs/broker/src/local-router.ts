import { parseSharedFilter, topicMatches } from '@fleetmq/protocol';
import { addMatch, type Delivery } from './delivery.js';
import type { Message } from './message.js';
import type { BusSubscription, MessageBus } from './ports/message-bus.js';
import type { SubscriptionOptions } from './subscription.js';
import { TopicTrie } from './topic-trie.js';

/** Whoever receives a client's messages on this node: its live channel or its detached session. */
export interface Subscriber {
  readonly clientId: string;
  /** False for a detached persistent session whose client is offline. */
  readonly online: boolean;
  /** `shared`: the `$share/{group}/{filter}` this copy is for; absent for ordinary subscriptions. */
  deliver(message: Message, delivery: Delivery, shared?: string): void;
}

/** One bus subscription of this node, shared by every local subscription with the same key. */
interface BusInterest {
  subscription: BusSubscription | undefined;
  /** True once the bus confirmed the subscription: only then may it be the canonical copy. */
  active: boolean;
  ready: Promise<void>;
}

interface SharedGroup {
  readonly group: string;
  readonly filter: string;
  readonly members: Map<string, SubscriptionOptions>;
  next: number;
}

/** What a topic matches on this node: kept per topic until the subscriptions change. */
interface TopicMatch {
  /** The matching filter whose bus copy is the one used (see LocalRouter). */
  readonly canonical: string | undefined;
  /** The entries (client → options) of every matching filter; live maps of the trie. */
  readonly entries: readonly ReadonlyMap<string, SubscriptionOptions>[];
}

/** Topics whose matches are kept; the cache starts afresh when full (hot topics come back first). */
export const MATCH_CACHE_LIMIT = 4096;

export interface RouterStats {
  /** Messages received from the bus (every copy). */
  busMessages: number;
  /** Topic matches answered from the cache, and computed from the trie. */
  matchCacheHits: number;
  matchCacheMisses: number;
  /** Copies ignored because another bus subscription of this node carries the same message. */
  busDuplicates: number;
  /** Messages delivered to subscribers on this node (one per client per message). */
  deliveries: number;
}

/**
 * The subscriptions of this node's sessions (after emqx_broker + emqx_router, node-local).
 * It holds one bus subscription per distinct filter (reference-counted by the trie) and
 * one per shared (group, filter); it re-checks what the bus delivers against the trie and
 * hands each matching client one delivery.
 *
 * The bus delivers a message once per matching subscription of this node. To hand each
 * client one copy, only the copy that arrives through the canonical filter is used: the
 * smallest matching filter whose bus subscription is active. Bus subscriptions of a node
 * share one ordered connection, so a copy through a newly active filter cannot overtake.
 */
export class LocalRouter {
  private readonly trie = new TopicTrie<string, SubscriptionOptions>();
  private readonly shared = new Map<string, SharedGroup>();
  private readonly interest = new Map<string, BusInterest>();
  private readonly subscribers = new Map<string, Subscriber>();
  /**
   * Topic → what it matches, bounded by MATCH_CACHE_LIMIT; emptied whenever a filter or a bus
   * interest comes or goes (the entries maps themselves are live, so a client joining a
   * filter that exists needs no invalidation).
   */
  private readonly matches = new Map<string, TopicMatch>();
  readonly stats: RouterStats = { busMessages: 0, matchCacheHits: 0, matchCacheMisses: 0, busDuplicates: 0, deliveries: 0 };

  constructor(private readonly bus: MessageBus) {}

  /** Makes `subscriber` the receiver of its client's messages, replacing any other. */
  attach(subscriber: Subscriber): void {
    this.subscribers.set(subscriber.clientId, subscriber);
  }

  /** Removes the receiver if it is still this one. */
  detach(subscriber: Subscriber): void {
    if (this.subscribers.get(subscriber.clientId) === subscriber) this.subscribers.delete(subscriber.clientId);
  }

  subscriberOf(clientId: string): Subscriber | undefined {
    return this.subscribers.get(clientId);
  }

  /** Resolves once what the bus routed to this node so far has been delivered (MessageBus.sync). */
  sync(): Promise<void> {
    return this.bus.sync();
  }

  /** Number of distinct bus subscriptions this node holds. */
  get busSubscriptionCount(): number {
    return this.interest.size;
  }

  /**
   * Adds a subscription (a plain or a `$share/group/` filter, already validated) and
   * resolves once the bus delivers what matches it. When the bus refuses it (NATS down),
   * the subscription is removed again and the error rethrown: a refused subscription must
   * not receive what a later subscription of the same filter brings to this node.
   */
  async subscribe(clientId: string, filter: string, options: SubscriptionOptions): Promise<void> {
    const shared = parseSharedFilter(filter);
    if (shared === 'invalid') throw new Error(`invalid shared filter ${filter}`);
    if (shared === null) {
      if (this.trie.add(filter, clientId, options)) this.matches.clear();
      try {
        await this.ensureInterest(filter, filter, undefined);
      } catch (err) {
        if (this.trie.remove(filter, clientId)) {
          this.matches.clear();
          await this.dropInterest(filter);
        }
        throw err;
      }
      return;
    }
    let group = this.shared.get(filter);
    if (group === undefined) {
      group = { group: shared.group, filter: shared.filter, members: new Map(), next: 0 };
      this.shared.set(filter, group);
    }
    group.members.set(clientId, options);
    try {
      await this.ensureInterest(filter, shared.filter, shared.group);
    } catch (err) {
      await this.unsubscribe(clientId, filter);
      throw err;
    }
  }

  async unsubscribe(clientId: string, filter: string): Promise<void> {
    const group = this.shared.get(filter);
    if (group !== undefined) {
      if (!group.members.delete(clientId) || group.members.size > 0) return;
      this.shared.delete(filter);
      await this.dropInterest(filter);
      return;
    }
    if (this.trie.remove(filter, clientId)) {
      this.matches.clear();
      await this.dropInterest(filter);
    }
  }

  private async ensureInterest(key: string, filter: string, group: string | undefined): Promise<void> {
    const existing = this.interest.get(key);
    if (existing !== undefined) return existing.ready;
    const interest: BusInterest = { subscription: undefined, active: false, ready: Promise.resolve() };
    const handler =
      group === undefined
        ? (message: Message) => this.onBusMessage(filter, message)
        : (message: Message) => this.onSharedMessage(key, message);
    interest.ready = this.bus.subscribe(filter, handler, group === undefined ? {} : { group }).then(
      (subscription) => {
        if (this.interest.get(key) !== interest) {
          // dropped while the bus was subscribing
          void subscription.unsubscribe();
          return;
        }
        interest.subscription = subscription;
        interest.active = true;
        this.matches.clear();
      },
      (err: unknown) => {
        if (this.interest.get(key) === interest) this.interest.delete(key);
        throw err;
      },
    );
    this.interest.set(key, interest);
    return interest.ready;
  }

  private async dropInterest(key: string): Promise<void> {
    const interest = this.interest.get(key);
    if (interest === undefined) return;
    this.interest.delete(key);
    interest.active = false;
    this.matches.clear();
    if (interest.subscription !== undefined) await interest.subscription.unsubscribe();
  }

  /** What `topic` matches: from the cache, or from the trie (and then cached). */
  private matchOf(topic: string): TopicMatch {
    const cached = this.matches.get(topic);
    if (cached !== undefined) {
      this.stats.matchCacheHits++;
      return cached;
    }
    this.stats.matchCacheMisses++;
    const entries: ReadonlyMap<string, SubscriptionOptions>[] = [];
    let canonical: string | undefined;
    this.trie.match(topic, (filter, e) => {
      entries.push(e);
      if ((canonical === undefined || filter < canonical) && this.interest.get(filter)?.active === true) {
        canonical = filter;
      }
    });
    if (this.matches.size >= MATCH_CACHE_LIMIT) this.matches.clear();
    const match: TopicMatch = { canonical, entries };
    this.matches.set(topic, match);
    return match;
  }

  private onBusMessage(viaFilter: string, message: Message): void {
    this.stats.busMessages++;
    const { canonical, entries } = this.matchOf(message.topic);
    if (canonical !== viaFilter) {
      this.stats.busDuplicates++;
      return;
    }
    if (entries.length === 1) {
      for (const [clientId, options] of entries[0]!) {
        const delivery = addMatch(undefined, options, message, clientId);
        if (delivery !== undefined) this.deliverTo(clientId, message, delivery);
      }
      return;
    }
    const byClient = new Map<string, Delivery>();
    for (const e of entries) {
      for (const [clientId, options] of e) {
        const delivery = addMatch(byClient.get(clientId), options, message, clientId);
        if (delivery !== undefined) byClient.set(clientId, delivery);
      }
    }
    for (const [clientId, delivery] of byClient) this.deliverTo(clientId, message, delivery);
  }

  private onSharedMessage(key: string, message: Message): void {
    this.stats.busMessages++;
    const group = this.shared.get(key);
    if (group === undefined || !topicMatches(group.filter, message.topic)) return;
    // round-robin over members whose client is online; an offline member only if none is
    const members = [...group.members];
    let chosen: [string, SubscriptionOptions] | undefined;
    for (let i = 0; i < members.length; i++) {
      const candidate = members[(group.next + i) % members.length]!;
      if (this.subscribers.get(candidate[0])?.online === true) {
        chosen = candidate;
        group.next = (group.next + i + 1) % members.length;
        break;
      }
    }
    chosen ??= members[group.next++ % members.length];
    if (chosen === undefined) return;
    const delivery = addMatch(undefined, chosen[1], message, chosen[0]);
    if (delivery !== undefined) this.deliverTo(chosen[0], message, delivery, key);
  }

  private deliverTo(clientId: string, message: Message, delivery: Delivery, shared?: string): void {
    const subscriber = this.subscribers.get(clientId);
    if (subscriber === undefined) return;
    this.stats.deliveries++;
    if (shared === undefined) subscriber.deliver(message, delivery);
    else subscriber.deliver(message, delivery, shared);
  }
}
