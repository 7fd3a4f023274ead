import { randomBytes } from 'node:crypto';
import { allowAll, allowAllTopics, type Authenticator, type Authorizer } from './auth.js';
import { Channel, type ChannelContext, type ChannelSink, type ChannelStats, type ConnectionInfo } from './channel.js';
import { checkClientLimits, checkListenerLimits, defaultClientLimits, type ClientLimits, type LimitPolicy, type ListenerLimits } from './client-limits.js';
import { ListenerGate } from './listener-gate.js';
import type { ClientIdentity } from './auth.js';
import { LocalRouter } from './local-router.js';
import { silentLog, type BrokerLog } from './log.js';
import { MessageIdFactory, type Message } from './message.js';
import { defaultBrokerOptions, type BrokerOptions } from './options.js';
import type { MessageBus } from './ports/message-bus.js';
import type { NodeLink } from './ports/node-link.js';
import type { OfflineQueue } from './ports/offline-queue.js';
import type { RetainedStore } from './ports/retained-store.js';
import type { SessionOwnership } from './ports/session-ownership.js';
import type { SessionStore } from './ports/session-store.js';
import { SessionRegistry } from './session-registry.js';
import type { WillMessage } from './session-snapshot.js';

export interface BrokerPorts {
  readonly bus: MessageBus;
  readonly ownership: SessionOwnership;
  readonly sessions: SessionStore;
  readonly offlineQueue: OfflineQueue;
  readonly retained: RetainedStore;
  /** Session takeover between nodes; absent for a node alone. */
  readonly link?: NodeLink | undefined;
}

export interface BrokerConfig {
  readonly nodeId: string;
  readonly ports: BrokerPorts;
  readonly options?: Partial<BrokerOptions>;
  /** Default: everyone in (allowAll). */
  readonly authenticator?: Authenticator;
  /** Default: every topic but the reserved ones (allowAllTopics). */
  readonly authorizer?: Authorizer;
  /** Policy limits for every client; default none (defaultClientLimits). */
  readonly limits?: Partial<ClientLimits>;
  /** Limits per client picked at CONNECT (listener, user, group); default `limits` for all. */
  readonly policy?: LimitPolicy;
  /** Connection limits by listener name. */
  readonly listenerLimits?: Readonly<Record<string, ListenerLimits>>;
  /** The client certificate's subject attribute (`CN`) that becomes the username; default none. */
  readonly usernameFromCertificate?: string;
  readonly log?: BrokerLog;
}

/**
 * One edge node's broker: the ports, the local router, the session registry, and the
 * factory of channels. It decides nothing about sockets; transports hand it sinks.
 */
export class Broker implements ChannelContext {
  readonly nodeId: string;
  readonly options: BrokerOptions;
  readonly router: LocalRouter;
  readonly registry: SessionRegistry;
  readonly retained: RetainedStore;
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  readonly limits: ClientLimits;
  readonly usernameFromCertificate: string | undefined;
  readonly log: BrokerLog;
  readonly stats: ChannelStats = {
    messagesIn: [0, 0, 0],
    messagesOut: [0, 0, 0],
    bytesIn: 0,
    bytesOut: 0,
    connectsRefused: new Map(),
    dropped: { queueFull: 0, expired: 0, tooLarge: 0, publishFailed: 0, slowConsumer: 0 },
    protocolErrors: 0,
    auth: { accepted: 0, refused: 0, expired: 0 },
    authz: { publishDenied: 0, subscribeDenied: 0, readDenied: 0, willDenied: 0 },
    limits: { publishRate: 0, maxQoS: 0, retain: 0, payloadSize: 0, packetSize: 0, inflight: 0, queueLength: 0, connections: 0, connectionRate: 0 },
    connectionsRefused: {},
  };
  /** Messages handed to the bus (`fleetmq_bus_messages_published_total`). */
  busPublished = 0;
  private readonly ids: MessageIdFactory;
  private readonly bus: MessageBus;
  private readonly channels = new Set<Channel>();
  private readonly policy: LimitPolicy | undefined;
  /** Connection limits by listener name (only listeners that have some). */
  private readonly gates = new Map<string, ListenerGate>();
  /** The gate each admitted channel counts against, until it is released. */
  private readonly admitted = new Map<Channel, ListenerGate>();

  constructor(config: BrokerConfig) {
    this.nodeId = config.nodeId;
    this.options = { ...defaultBrokerOptions, ...config.options };
    this.log = config.log ?? silentLog;
    this.authenticator = config.authenticator ?? allowAll;
    this.authorizer = config.authorizer ?? allowAllTopics;
    this.limits = { ...defaultClientLimits, ...config.limits };
    this.usernameFromCertificate = config.usernameFromCertificate;
    checkClientLimits(this.limits); // throws RangeError when unusable
    this.policy = config.policy;
    for (const [listener, limits] of Object.entries(config.listenerLimits ?? {})) {
      checkListenerLimits(limits, `listeners.${listener}`);
      if (limits.maxConnections === undefined && limits.connectionRate === undefined) continue;
      this.gates.set(listener, new ListenerGate(limits));
      this.stats.connectionsRefused[listener] = { connections: 0, connectionRate: 0 };
    }
    this.bus = config.ports.bus;
    this.retained = config.ports.retained;
    this.ids = new MessageIdFactory(config.nodeId);
    this.router = new LocalRouter(this.bus);
    this.registry = new SessionRegistry({
      nodeId: config.nodeId,
      router: this.router,
      ownership: config.ports.ownership,
      store: config.ports.sessions,
      offlineQueue: config.ports.offlineQueue,
      limits: { maxQueued: this.options.maxQueuedMessages, dropPolicy: this.options.queueDropPolicy },
      publishWill: (clientId, will) => this.publishWill(clientId, will),
      link: config.ports.link,
      log: this.log.child({ component: 'registry' }),
    });
  }

  /** A channel for a new connection; the connection feeds it packets and closes. */
  createChannel(sink: ChannelSink, info: ConnectionInfo): Channel {
    const gate = this.gates.get(info.listener);
    const refusal = gate?.admit();
    if (refusal !== undefined) {
      const refused = this.stats.connectionsRefused[info.listener]!;
      if (refusal === 'connections') {
        this.stats.limits.connections++;
        refused.connections++;
      } else {
        this.stats.limits.connectionRate++;
        refused.connectionRate++;
      }
    }
    const channel = new Channel(this, sink, info, refusal);
    this.channels.add(channel);
    if (gate !== undefined && refusal === undefined) this.admitted.set(channel, gate);
    return channel;
  }

  /** The connection of this channel is gone for good. */
  releaseChannel(channel: Channel): void {
    this.channels.delete(channel);
    const gate = this.admitted.get(channel);
    if (gate === undefined) return;
    this.admitted.delete(channel);
    gate.release();
  }

  /** A client's limits: the policy's answer, or the node-wide limits. */
  limitsFor(identity: ClientIdentity | undefined, clientId: string, info: ConnectionInfo): ClientLimits {
    return this.policy === undefined ? this.limits : this.policy.limitsFor(identity, clientId, info);
  }

  /** Connections open on a listener with connection limits (undefined: it has none). */
  openConnections(listener: string): number | undefined {
    return this.gates.get(listener)?.openConnections;
  }

  get connectionCount(): number {
    return this.channels.size;
  }

  /** The channels of this node's connections, connecting ones included (read-only: admin API, metrics). */
  connections(): IterableIterator<Channel> {
    return this.channels.values();
  }

  /**
   * Accepts a message: stores it when retained (an empty payload deletes) and hands it to
   * the bus. Resolves when both are done, which is when a publisher may be acknowledged.
   */
  publish(message: Message): Promise<void> {
    this.busPublished++;
    if (!message.retain) return this.bus.publish(message);
    return Promise.all([this.retained.set(message), this.bus.publish(message)]).then(() => undefined);
  }

  newMessageId(): string {
    return this.ids.next();
  }

  assignClientId(): string {
    return `fleetmq-${randomBytes(9).toString('base64url')}`;
  }

  private publishWill(clientId: string, will: WillMessage): Promise<void> {
    const now = Date.now();
    return this.publish({
      id: this.ids.next(),
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
      properties: will.properties,
      expiresAt: will.messageExpiryInterval !== undefined ? now + will.messageExpiryInterval * 1000 : undefined,
      publisherId: clientId,
      createdAt: now,
    });
  }

  /** Starts serving other nodes (session takeover); call before accepting clients. */
  start(): Promise<void> {
    return this.registry.serve();
  }

  /**
   * Drain (DESIGN node lifecycle): disconnects every client (MQTT 5: with the reason code, 0x8B
   * by default, or 0x9C Use another server with `serverReference`), waits until their sessions are detached and saved, then hands every detached
   * session to one of `liveNodes`. Returns how many went and how many stay in the stores only.
   */
  async drain(liveNodes: readonly string[], reasonCode: number, serverReference?: string): Promise<{ handed: number; kept: number }> {
    for (const channel of [...this.channels]) channel.disconnect(reasonCode, 'server shutting down', serverReference);
    await this.registry.idle();
    const result = await this.registry.handOffDetached(liveNodes);
    await this.registry.settleHandovers();
    this.registry.shutdown();
    return result;
  }

  /** Disconnects every client (MQTT 5: with the reason code) and stops session timers. */
  shutdown(reasonCode: number): void {
    for (const channel of [...this.channels]) channel.disconnect(reasonCode, 'server shutting down');
    this.registry.shutdown();
  }
}
