/**
 * The MessageBus over NATS core, on nats.js (DESIGN.md invariants 4, 5 and 8).
 *
 * Interest routing: one NATS subscription per distinct (filter, group) of this bus,
 * reference-counted over its local subscribers (two for a filter ending in `/#`: see
 * subject-codec.ts), removed when the last local subscriber leaves. A NATS message is
 * decoded once and handed to every local subscriber of that (filter, group); a queue group
 * hands it to one, round-robin.
 *
 * Shared subscriptions: the NATS queue group is named from the MQTT group and the filter
 * (`<group>/<filter>`, escaped), because nats-server pools queue subscribers by queue name
 * across subjects: the same group name on two filters must not share one queue.
 *
 * publish, and what "accepted" means:
 * - nats.js buffers what is published while it reconnects; the bus does not rely on that.
 *   It tracks the connection from nats.js' status events and refuses every publish with
 *   BackendUnavailableError while NATS is not connected (first connect, reconnecting,
 *   closed), whatever the QoS;
 * - QoS 0 resolves once handed to nats.js on a live connection (it may be lost, as DESIGN
 *   allows);
 * - QoS 1 and 2 resolve once a flush (PING/PONG) issued after the message succeeded on the
 *   connection the message was written to: the server has then routed it. One flush serves
 *   every publish (and subscribe) of one tick. If the connection drops first, or changed in
 *   between, the publish rejects with BackendUnavailableError and the broker must not
 *   acknowledge. A publish made in the instant before nats.js notices a dead socket sits in
 *   nats.js' buffer; QoS 0 may then be lost (or sent late), QoS 1/2 are never confirmed.
 * - a topic whose subject, or an envelope that, exceeds what the server accepts is refused
 *   with an MqttError (0x90 Topic Name invalid, 0x95 Packet too large): sending it would make
 *   the server drop the whole connection.
 *
 * ready is true only while connected; after a reconnect (nats.js resubscribes by itself)
 * ready turns true once a flush has confirmed the replayed subscriptions.
 *
 * No echo: a node never receives its own publications back from NATS. The bus publishes and
 * holds its plain subscriptions on a connection with `noEcho`, and hands what it publishes to
 * its own matching plain subscriptions itself, synchronously, as the in-process bus does
 * (bus amplification 1.0: NATS sends a node only what another node published for it).
 * Queue groups cannot work that way (nats-server skips a no-echo publisher's own queue
 * members, and a group whose only members are on the publishing node would lose the
 * message), so shared subscriptions live on a second connection, `<name>/groups`, with echo:
 * NATS picks one member among every node, this one included. The bus is ready while both
 * connections are.
 */
import { DebugEvents, Events, connect } from 'nats';
import type { ConnectionOptions, Msg, NatsConnection, NatsError, ServerInfo, Status, Subscription } from 'nats';
import { BackendUnavailableError, MqttError, ReasonCode, isValidTopicFilter } from '@fleetmq/protocol';
import { TopicTrie, silentLog } from '@fleetmq/broker';
import type { BrokerLog, BusHandler, BusSubscribeOptions, BusSubscription, Message, MessageBus } from '@fleetmq/broker';
import { SubjectCodec, escapeLevel, leadingWildcard, subjectFits } from './subject-codec.js';
import { decodeEnvelope, encodeEnvelope } from './envelope.js';

export interface NatsReconnectOptions {
  /** Wait between two attempts on the same server (default 1000 ms): nats.js `reconnectTimeWait`. */
  readonly waitMs?: number;
  /** A random 0..jitterMs added to each wait (default 100 ms): nats.js `reconnectJitter`. */
  readonly jitterMs?: number;
}

export interface NatsMessageBusOptions {
  /** NATS servers, `nats://host:port` (credentials may be in the URL). */
  readonly servers: readonly string[];
  /** Connection name, e.g. the node ID: shown in the server's `/connz`. */
  readonly name: string;
  /** Subject prefix for MQTT traffic (default `mqtt`). */
  readonly subjectPrefix?: string;
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  /** Reconnect wait and jitter; the bus always retries forever. */
  readonly reconnect?: NatsReconnectOptions;
  /**
   * The server's `max_control_line` (nats-server default 4096 bytes). Subjects and queue
   * names are checked against it; raise both together to carry very long topics.
   */
  readonly maxControlLine?: number;
  /** Time allowed for one connection attempt (default 2000 ms): nats.js `timeout`. */
  readonly connectTimeoutMs?: number;
  /**
   * PING interval (default 5000 ms) and how many may stay unanswered (default 2): a dead
   * connection that the socket does not report is noticed after about (maxPingOut + 1) ×
   * pingIntervalMs.
   */
  readonly pingIntervalMs?: number;
  readonly maxPingOut?: number;
  /**
   * When the first connection attempt fails: false (default) rejects `connect`; true keeps
   * retrying (nats.js `waitOnFirstConnect`) and resolves once connected.
   */
  readonly waitOnFirstConnect?: boolean;
  readonly log?: BrokerLog;
}

export type NatsBusStatus = 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface NatsMessageBusStats {
  /** NATS messages this bus received (every copy, before any check), on both connections. */
  readonly messagesIn: number;
  /** Own publications handed to this node's plain subscriptions without NATS (one per subscription). */
  readonly localDeliveries: number;
  readonly messagesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Messages dropped because their subject or envelope was not ours (foreign traffic, corruption). */
  readonly malformed: number;
  /** Handler calls that threw. */
  readonly handlerErrors: number;
  readonly reconnects: number;
}

/** Room for `PUB `, `SUB `, spaces, sid and size digits and CRLF on a control line. */
const LINE_OVERHEAD = 48;
/** At most one warning of a kind per this many ms (no per-message logging). */
const WARN_INTERVAL_MS = 10_000;
/** How long `close()` waits for unconfirmed publishes before closing anyway. */
const CLOSE_FLUSH_TIMEOUT_MS = 2_000;

const RESOLVED: Promise<void> = Promise.resolve();

/** One local subscriber. */
class Member {
  active = true;
  constructor(readonly handler: BusHandler) {}
}

/** One distinct (filter, group) of this bus: its NATS subscriptions and its local members. */
class Interest {
  readonly members: Member[] = [];
  /** One NATS subscription, or two for a filter ending in '/#'. */
  subs: Subscription[] = [];
  /** True once a flush after the SUBs succeeded: the server has the interest. */
  confirmed = false;
  private cursor = 0;

  constructor(
    readonly key: string,
    readonly filter: string,
    readonly group: string | undefined,
    /** The filter starts with a wildcard: '$' topics must be dropped [MQTT-4.7.2-1]. */
    readonly dropDollar: boolean,
  ) {}

  nextMember(): Member | undefined {
    const n = this.members.length;
    if (n === 0) return undefined;
    if (this.cursor >= n) this.cursor = 0;
    return this.members[this.cursor++];
  }

  remove(member: Member): void {
    const i = this.members.indexOf(member);
    if (i < 0) return;
    this.members.splice(i, 1);
    if (i < this.cursor) this.cursor--;
  }
}

/**
 * One flush shared by the QoS 1/2 publishes and the subscribes of one tick, on the
 * connection they were written to.
 */
class Confirmation {
  readonly promise: Promise<void>;
  /** Its flush was issued (or refused): once per confirmation. */
  flushed = false;
  private settle!: (err?: Error) => void;
  private settled = false;

  constructor(readonly connection: unknown) {
    this.promise = new Promise<void>((resolve, reject) => {
      this.settle = (err) => (err === undefined ? resolve() : reject(err));
    });
  }

  done(err?: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.settle(err);
  }
}

class NatsBusSubscription implements BusSubscription {
  constructor(
    private readonly bus: NatsMessageBus,
    private readonly interest: Interest,
    private readonly member: Member,
  ) {}

  unsubscribe(): Promise<void> {
    if (this.member.active) {
      this.member.active = false;
      this.bus.detach(this.interest, this.member);
    }
    return RESOLVED;
  }
}

export class NatsMessageBus implements MessageBus {
  readonly codec: SubjectCodec;
  private readonly options: NatsMessageBusOptions;
  private readonly log: BrokerLog;
  private readonly maxControlLine: number;
  private readonly interests = new Map<string, Interest>();
  private nc: NatsConnection | undefined;
  /** The connection of the queue-group subscriptions (with echo). */
  private gnc: NatsConnection | undefined;
  /** The connection is up as far as the bus knows (status events, then a confirming flush). */
  private linkUp = false;
  private groupsUp = false;
  /** This bus's plain interests by filter: its own publications go to these directly. */
  private readonly local = new TopicTrie<string, Interest>();
  /** The message being handed to local interests; saved and restored around nested publishes. */
  private current: Message | undefined;
  private localCount = 0;
  /** Bumped whenever the connection goes down: a confirming flush from before does not count. */
  private generation = 0;
  /** nats.js closed the connection (by close(), or on its own). */
  private ncClosed = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** The background connect loop of `create()`, and its pending wait. */
  private background: Promise<void> | undefined;
  private wakeBackground: (() => void) | undefined;
  /** The confirmation of the current tick (not flushed yet), and those awaiting their PONG. */
  private pending: Confirmation | undefined;
  private readonly inflight = new Set<Confirmation>();
  private lastInfo: ServerInfo | undefined;
  private lastConnection: unknown;
  private subscriptionCount = 0;
  private malformedCount = 0;
  private handlerErrorCount = 0;
  private reconnectCount = 0;
  private lastMalformedLogAt = 0;
  private lastServerErrorLogAt = 0;

  /**
   * Connects to NATS and resolves with a ready bus; rejects with BackendUnavailableError when
   * the first attempt fails (unless `waitOnFirstConnect`).
   */
  static async connect(options: NatsMessageBusOptions): Promise<NatsMessageBus> {
    const bus = new NatsMessageBus(options);
    let connections: [NatsConnection, NatsConnection];
    try {
      connections = await bus.connectBoth(options.waitOnFirstConnect ?? false);
    } catch (err) {
      throw new BackendUnavailableError('nats', `cannot connect to NATS: ${errorMessage(err)}`, { cause: err });
    }
    bus.attach(...connections);
    return bus;
  }

  /** Both connections, or neither (one that opened is closed again). */
  private async connectBoth(waitOnFirstConnect: boolean): Promise<[NatsConnection, NatsConnection]> {
    const [main, groups] = await Promise.allSettled([
      connect(this.connectionOptions(waitOnFirstConnect, 'main')),
      connect(this.connectionOptions(waitOnFirstConnect, 'groups')),
    ]);
    if (main.status === 'fulfilled' && groups.status === 'fulfilled') return [main.value, groups.value];
    if (main.status === 'fulfilled') await main.value.close().catch(() => undefined);
    if (groups.status === 'fulfilled') await groups.value.close().catch(() => undefined);
    throw main.status === 'rejected' ? main.reason : (groups as PromiseRejectedResult).reason;
  }

  /**
   * Returns a bus at once and connects in the background, retrying with the reconnect wait
   * until it succeeds (whatever `waitOnFirstConnect` says): `ready` turns true once connected.
   * For a node that must start, report not ready, and recover by itself while NATS is down.
   * Unlike nats.js' `waitOnFirstConnect`, `close()` stops these attempts.
   */
  static create(options: NatsMessageBusOptions): NatsMessageBus {
    const bus = new NatsMessageBus(options);
    bus.background = bus.connectInBackground();
    return bus;
  }

  private constructor(options: NatsMessageBusOptions) {
    this.options = options;
    this.codec = new SubjectCodec(options.subjectPrefix ?? 'mqtt');
    this.log = (options.log ?? silentLog).child({ component: 'nats-message-bus' });
    this.maxControlLine = options.maxControlLine ?? 4096;
  }

  /** True while connected to NATS with every subscription active. */
  get ready(): boolean {
    return this.linkUp && this.groupsUp && !this.closed;
  }

  get status(): NatsBusStatus {
    if (this.closed || this.ncClosed) return 'closed';
    if (this.nc === undefined) return 'connecting';
    return this.linkUp && this.groupsUp ? 'connected' : 'reconnecting';
  }

  /** NATS subscriptions this bus holds (one per distinct (filter, group), two for `x/#`). */
  get natsSubscriptionCount(): number {
    return this.subscriptionCount;
  }

  get stats(): NatsMessageBusStats {
    const s = this.nc?.stats();
    const g = this.gnc?.stats();
    return {
      messagesIn: (s?.inMsgs ?? 0) + (g?.inMsgs ?? 0),
      localDeliveries: this.localCount,
      messagesOut: (s?.outMsgs ?? 0) + (g?.outMsgs ?? 0),
      bytesIn: (s?.inBytes ?? 0) + (g?.inBytes ?? 0),
      bytesOut: (s?.outBytes ?? 0) + (g?.outBytes ?? 0),
      malformed: this.malformedCount,
      handlerErrors: this.handlerErrorCount,
      reconnects: this.reconnectCount,
    };
  }

  publish(message: Message): Promise<void> {
    const nc = this.nc;
    if (!this.ready || nc === undefined || nc.isClosed()) return Promise.reject(this.unavailable());
    const subject = this.codec.topicToSubject(message.topic);
    if (!subjectFits(subject, this.maxControlLine - LINE_OVERHEAD)) {
      return Promise.reject(
        new MqttError(ReasonCode.TopicNameInvalid, `topic too long for NATS (max_control_line ${this.maxControlLine})`),
      );
    }
    const connection = this.connection();
    const maxPayload = this.lastInfo?.max_payload;
    if (maxPayload === undefined) return Promise.reject(this.unavailable());
    // nats.js takes the body as one Uint8Array (and copies it into its outbound buffer): the
    // envelope is encoded straight into one buffer of its exact size, the one copy of the
    // payload on our side; an oversize payload is refused before that copy
    const data = message.payload.length > maxPayload ? undefined : encodeEnvelope(message);
    if (data === undefined || data.length > maxPayload) {
      const what = data === undefined ? `payload of ${message.payload.length}` : `message of ${data.length}`;
      return Promise.reject(new MqttError(ReasonCode.PacketTooLarge, `${what} bytes exceeds NATS max_payload ${maxPayload}`));
    }
    try {
      nc.publish(subject, data);
    } catch (err) {
      return Promise.reject(this.unavailable(err));
    }
    if (message.qos === 0) {
      this.deliverLocally(message);
      return RESOLVED;
    }
    // QoS 1/2 reach this node's own subscribers once NATS confirmed them, as they reach the
    // others: a publish that is refused was delivered nowhere (and its resend only once)
    const confirmed = this.confirm(connection);
    return this.local.size === 0 ? confirmed : confirmed.then(() => this.deliverLocally(message));
  }

  /** An own publication to this node's matching plain subscriptions (NATS does not echo it). */
  private deliverLocally(message: Message): void {
    if (this.local.size === 0) return;
    const previous = this.current;
    this.current = message;
    try {
      this.local.match(message.topic, this.visitLocal);
    } finally {
      this.current = previous;
    }
  }

  // Bound once, so that publishing allocates no closures.
  private readonly visitLocal = (_filter: string, entries: ReadonlyMap<string, Interest>): void => {
    for (const interest of entries.values()) {
      this.localCount++;
      this.deliver(interest, this.current!);
    }
  };

  async subscribe(filter: string, handler: BusHandler, options?: BusSubscribeOptions): Promise<BusSubscription> {
    if (this.closed) throw this.unavailable();
    if (!isValidTopicFilter(filter)) throw new TypeError(`invalid topic filter: ${JSON.stringify(filter)}`);
    // while disconnected nothing can be confirmed, not even an interest that exists
    if (!this.ready) throw this.unavailable();
    const group = options?.group;
    // a filter never contains U+0000 [MQTT-4.7.3-2], so the two kinds of key cannot collide
    const key = group === undefined ? filter : `\u0000${queueName(group, filter)}`;
    const interest = this.interests.get(key) ?? this.openInterest(key, filter, group);
    const member = new Member(handler);
    interest.members.push(member);
    if (!interest.confirmed) {
      try {
        await (group === undefined ? this.confirm(this.connection()) : this.confirmGroups());
        interest.confirmed = true;
      } catch (err) {
        member.active = false;
        this.detach(interest, member);
        throw err;
      }
    }
    return new NatsBusSubscription(this, interest, member);
  }

  /**
   * Waits (briefly) for unconfirmed publishes, then closes the NATS connection; publishes
   * after this are refused. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** @internal Called by a subscription when it unsubscribes. */
  detach(interest: Interest, member: Member): void {
    interest.remove(member);
    if (interest.members.length > 0 || this.interests.get(interest.key) !== interest) return;
    this.interests.delete(interest.key);
    if (interest.group === undefined) this.local.remove(interest.filter, interest.key);
    for (const sub of interest.subs) sub.unsubscribe();
    this.subscriptionCount -= interest.subs.length;
    interest.subs = [];
  }

  private connectionOptions(waitOnFirstConnect: boolean, kind: 'main' | 'groups'): ConnectionOptions {
    const o = this.options;
    return {
      servers: [...o.servers],
      name: kind === 'main' ? o.name : `${o.name}/groups`,
      // the main connection never gets its own publications back (see the top of this file)
      noEcho: kind === 'main',
      ...(o.user !== undefined ? { user: o.user } : {}),
      ...(o.pass !== undefined ? { pass: o.pass } : {}),
      ...(o.token !== undefined ? { token: o.token } : {}),
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: o.reconnect?.waitMs ?? 1000,
      reconnectJitter: o.reconnect?.jitterMs ?? 100,
      // an auth error seen twice would otherwise end the reconnect loop for good
      ignoreAuthErrorAbort: true,
      waitOnFirstConnect,
      timeout: o.connectTimeoutMs ?? 2000,
      pingInterval: o.pingIntervalMs ?? 5000,
      maxPingOut: o.maxPingOut ?? 2,
    };
  }

  private async connectInBackground(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        const [nc, gnc] = await this.connectBoth(false);
        if (this.closed) {
          await Promise.all([nc.close(), gnc.close()]);
          return;
        }
        this.attach(nc, gnc);
        return;
      } catch (err) {
        if (this.closed) return;
        if (failures++ === 0) this.log.warn({ error: errorMessage(err) }, 'bus_connect_failed');
      }
      const wait = (this.options.reconnect?.waitMs ?? 1000) + Math.random() * (this.options.reconnect?.jitterMs ?? 100);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wakeBackground = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeBackground = undefined;
    }
  }

  private attach(nc: NatsConnection, gnc: NatsConnection): void {
    this.nc = nc;
    this.gnc = gnc;
    this.linkUp = true;
    this.groupsUp = true;
    this.log.info({ server: nc.getServer() }, 'bus_connected');
    this.watch(nc).catch((err: unknown) => this.log.error({ error: errorMessage(err) }, 'bus_status_watch_failed'));
    this.watchGroups(gnc).catch((err: unknown) => this.log.error({ error: errorMessage(err) }, 'bus_status_watch_failed'));
    void nc.closed().then((err) => this.onClosed(err));
    void gnc.closed().then((err) => {
      this.groupsUp = false;
      if (!this.closed) this.log.error(err ? { error: err.message } : {}, 'bus_groups_closed');
    });
  }

  /**
   * The queue-group connection: down means not ready (a shared subscription here would miss
   * what NATS gives this node); after a reconnect, ready once a flush confirms its replayed
   * subscriptions. Publications never travel on it, so no confirmation depends on it.
   */
  private async watchGroups(gnc: NatsConnection): Promise<void> {
    for await (const status of gnc.status()) {
      switch (status.type) {
        case Events.Disconnect:
        case DebugEvents.Reconnecting:
        case DebugEvents.StaleConnection:
        case DebugEvents.ClientInitiatedReconnect:
          if (this.groupsUp && !this.closed) this.log.warn({ server: String(status.data) }, 'bus_groups_disconnected');
          this.groupsUp = false;
          break;
        case Events.Reconnect:
          gnc.flush().then(
            () => {
              if (this.closed || this.groupsUp || gnc.isClosed()) return;
              for (const interest of this.interests.values()) if (interest.group !== undefined) interest.confirmed = true;
              this.groupsUp = true;
              this.log.info({ server: String(status.data) }, 'bus_groups_reconnected');
            },
            () => undefined,
          );
          break;
        default:
          break;
      }
    }
  }

  /**
   * A flush (PING/PONG) on both connections: the server answers a PING after what it routed
   * to the connection before it, and nats.js hands each MSG to its callback as it reads it.
   */
  sync(): Promise<void> {
    const nc = this.nc;
    if (this.closed || nc === undefined || !this.linkUp || nc.isClosed()) return Promise.reject(this.unavailable());
    const main = nc.flush().catch((err: unknown) => {
      throw this.unavailable(err);
    });
    return Promise.all([main, this.confirmGroups()]).then(() => undefined);
  }

  /** A flush on the queue-group connection: the server has its SUBs. */
  private confirmGroups(): Promise<void> {
    const gnc = this.gnc;
    if (gnc === undefined || !this.groupsUp || gnc.isClosed()) return Promise.reject(this.unavailable());
    return gnc.flush().catch((err: unknown) => {
      throw this.unavailable(err);
    });
  }

  private async watch(nc: NatsConnection): Promise<void> {
    // ends when the connection closes
    for await (const status of nc.status()) this.onStatus(nc, status);
  }

  private onStatus(nc: NatsConnection, status: Status): void {
    switch (status.type) {
      case Events.Disconnect:
      case DebugEvents.Reconnecting:
      case DebugEvents.StaleConnection:
      case DebugEvents.ClientInitiatedReconnect:
        this.linkDown(String(status.data));
        break;
      case Events.Reconnect:
        this.reconnectCount++;
        this.confirmReconnect(nc, String(status.data));
        break;
      case Events.Error:
        this.serverError(String(status.data));
        break;
      case Events.LDM:
        this.log.warn({ server: String(status.data) }, 'bus_server_lame_duck');
        break;
      default:
        break;
    }
  }

  /** The connection is gone: not ready, and nothing written to it can be confirmed any more. */
  private linkDown(server: string): void {
    this.generation++;
    if (this.linkUp) {
      this.linkUp = false;
      if (!this.closed) this.log.warn({ server, pendingConfirmations: this.inflight.size }, 'bus_disconnected');
    }
    this.failInflight();
  }

  /** nats.js reconnected and replayed the subscriptions: ready once a flush confirms them. */
  private confirmReconnect(nc: NatsConnection, server: string): void {
    const generation = this.generation;
    nc.flush().then(
      () => {
        if (generation !== this.generation || this.closed || this.linkUp) return;
        for (const interest of this.interests.values()) if (interest.group === undefined) interest.confirmed = true;
        this.linkUp = true;
        this.log.info({ server, subscriptions: this.subscriptionCount, reconnects: this.reconnectCount }, 'bus_reconnected');
      },
      // the connection dropped again: the next Disconnect/Reconnect pair follows
      () => undefined,
    );
  }

  private onClosed(err: void | Error): void {
    this.ncClosed = true;
    this.linkUp = false;
    this.generation++;
    this.failInflight();
    if (!this.closed) this.log.error(err ? { error: err.message } : {}, 'bus_closed');
  }

  /**
   * The identity of the current connection: nats.js replaces its server info when it starts
   * a new connection (and on asynchronous INFO updates, which keep server_id and client_id).
   */
  private connection(): unknown {
    const info = this.nc?.info;
    if (info !== this.lastInfo) {
      this.lastInfo = info;
      this.lastConnection =
        info === undefined ? undefined : typeof info.client_id === 'number' ? `${info.server_id}/${info.client_id}` : info;
    }
    return this.lastConnection;
  }

  private confirm(connection: unknown): Promise<void> {
    let c = this.pending;
    if (c === undefined || c.connection !== connection) {
      const next = new Confirmation(connection);
      this.pending = c = next;
      process.nextTick(() => this.flushConfirmation(next));
    }
    return c.promise;
  }

  /** One flush for the tick; rejects if the connection is not the one the tick wrote to. */
  private flushConfirmation(c: Confirmation): void {
    if (this.pending === c) this.pending = undefined;
    if (c.flushed) return;
    c.flushed = true;
    const nc = this.nc;
    if (nc === undefined || !this.linkUp || nc.isClosed() || c.connection === undefined || this.connection() !== c.connection) {
      c.done(this.unavailable('the connection was lost before confirmation'));
      return;
    }
    this.inflight.add(c);
    nc.flush().then(
      () => {
        this.inflight.delete(c);
        c.done();
      },
      (err: unknown) => {
        this.inflight.delete(c);
        c.done(this.unavailable(err));
      },
    );
  }

  private failInflight(): void {
    if (this.inflight.size === 0) return;
    const err = this.unavailable('the connection was lost before confirmation');
    for (const c of this.inflight) c.done(err);
    this.inflight.clear();
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    // no deliveries from here on, even of messages already on their way
    for (const interest of this.interests.values()) interest.members.length = 0;
    this.interests.clear();
    this.subscriptionCount = 0;
    this.wakeBackground?.();
    await this.background;
    const nc = this.nc;
    if (nc === undefined) return;
    this.groupsUp = false;
    await this.gnc?.close().catch(() => undefined);
    if (this.linkUp && !nc.isClosed()) {
      // confirm what this tick published now, then wait for every PONG (they come in order)
      const tick = this.pending;
      if (tick !== undefined) this.flushConfirmation(tick);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        nc.flush().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, CLOSE_FLUSH_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    this.linkUp = false;
    await nc.close();
    this.failInflight();
  }

  private openInterest(key: string, filter: string, group: string | undefined): Interest {
    const nc = group === undefined ? this.nc : this.gnc;
    if (nc === undefined) throw this.unavailable();
    const subjects = this.codec.interestSubjects(filter);
    const queue = group === undefined ? undefined : queueName(group, filter);
    const room = this.maxControlLine - LINE_OVERHEAD - (queue === undefined ? 0 : Buffer.byteLength(queue));
    if (!subjects.every((s) => subjectFits(s, room))) {
      throw new MqttError(ReasonCode.TopicFilterInvalid, `topic filter too long for NATS (max_control_line ${this.maxControlLine})`);
    }
    const interest = new Interest(key, filter, group, leadingWildcard(filter));
    const callback = (err: NatsError | null, msg: Msg): void => {
      if (err === null) this.receive(interest, msg);
      else this.log.warn({ filter, error: err.message }, 'bus_subscription_error');
    };
    interest.subs = subjects.map((subject) => nc.subscribe(subject, queue === undefined ? { callback } : { queue, callback }));
    this.subscriptionCount += interest.subs.length;
    this.interests.set(key, interest);
    if (group === undefined) this.local.add(filter, key, interest);
    return interest;
  }

  /** One NATS message for one interest: decode once, re-check, hand to the members. */
  private receive(interest: Interest, msg: Msg): void {
    if (interest.members.length === 0) return;
    let message: Message;
    let subject = '';
    try {
      subject = msg.subject;
      const topic = this.codec.subjectToTopic(subject);
      // [MQTT-4.7.2-1]: NATS matched '*' or '>' against a '$' level; MQTT does not
      if (interest.dropDollar && topic.charCodeAt(0) === 0x24) return;
      message = decodeEnvelope(ownBytes(msg.data), topic);
    } catch (err) {
      // SubjectCodecError or EnvelopeError; anything else would be a bug, and still must not
      // escape into nats.js' parser
      this.malformed(subject, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.deliver(interest, message);
  }

  /** One message to the members of one interest: one of a queue group, or all. */
  private deliver(interest: Interest, message: Message): void {
    if (interest.group !== undefined) {
      this.call(interest.nextMember(), message);
      return;
    }
    const members = interest.members;
    if (members.length === 1) {
      this.call(members[0], message);
      return;
    }
    // a handler may unsubscribe others (or itself) while we iterate: iterate a snapshot
    for (const member of members.slice()) this.call(member, message);
  }

  private call(member: Member | undefined, message: Message): void {
    if (member === undefined || !member.active) return;
    try {
      member.handler(message);
    } catch {
      this.handlerErrorCount++;
    }
  }

  private malformed(subject: string, err: Error): void {
    this.malformedCount++;
    const now = Date.now();
    if (now - this.lastMalformedLogAt < WARN_INTERVAL_MS) return;
    this.lastMalformedLogAt = now;
    this.log.warn(
      { subject: subject.slice(0, 200), error: err.message, kind: err.name, total: this.malformedCount },
      'nats_message_malformed',
    );
  }

  private serverError(error: string): void {
    const now = Date.now();
    if (now - this.lastServerErrorLogAt < WARN_INTERVAL_MS) return;
    this.lastServerErrorLogAt = now;
    this.log.warn({ error }, 'bus_server_error');
  }

  private unavailable(cause?: unknown): BackendUnavailableError {
    if (typeof cause === 'string') return new BackendUnavailableError('nats', `NATS: ${cause}`);
    const reason = cause === undefined ? '' : `: ${errorMessage(cause)}`;
    return new BackendUnavailableError('nats', `NATS is ${this.status}${reason}`, cause === undefined ? undefined : { cause });
  }
}

/**
 * nats.js hands over a message as a view into the socket chunk it arrived in when it fits in
 * one; a session may queue the message, and a view would pin the whole chunk. Copy it once
 * (the decoded payload is then a view of the copy), unless it already owns its memory.
 */
function ownBytes(data: Uint8Array): Buffer {
  if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) {
    return Buffer.from(data.buffer, 0, data.byteLength);
  }
  return Buffer.from(data);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The NATS queue group of a shared subscription: `<group>/<filter>`, each escaped like a
 * subject level (so: no whitespace, '.', '*' or '>'), with '/' in the group escaped too, so
 * that the first '/' always ends the group and distinct pairs get distinct names.
 */
export function queueName(group: string, filter: string): string {
  return `${escapeLevel(group).replaceAll('/', '%2F')}/${escapeLevel(filter)}`;
}
