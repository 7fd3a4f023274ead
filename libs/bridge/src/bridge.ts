import { readFileSync } from 'node:fs';
import { connect as mqttConnect, type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { QoS } from '@fleetmq/protocol';
import type { Broker, BrokerLog, MessageProperties } from '@fleetmq/broker';
import { LocalClient, LocalPublishRefusedError } from './local-client.js';
import { OutgoingQueue, type OutgoingMessage } from './outgoing-queue.js';
import { localSubscriptions, remoteSubscriptions, toLocalTopic, toRemoteTopic, type TopicRule } from './topic-rules.js';

export interface BridgeAddress {
  readonly host: string;
  readonly port: number;
}

export interface BridgeTls {
  /** CA bundle (PEM file) the remote's certificate must chain to; absent: Node's default CAs. */
  readonly caFile?: string | undefined;
  /** Client certificate and key (PEM files), when the remote asks for one. */
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** Mosquitto's bridge_insecure: the remote's host name is not checked against its certificate (the chain still is). */
  readonly insecure: boolean;
  /** TLS SNI and the name checked; default the address host. */
  readonly serverName?: string | undefined;
}

/** One bridge, Mosquitto's `connection` section with FleetMQ's names (see the README table). */
export interface BridgeOptions {
  readonly name: string;
  /** Tried in order (failover); see `roundRobin`. */
  readonly addresses: readonly BridgeAddress[];
  readonly remoteClientId: string;
  readonly localClientId: string;
  /** The remote session ends with the connection (Mosquitto `cleansession`). */
  readonly cleanSession: boolean;
  /** The local session ends with the local connection (Mosquitto `local_cleansession`). */
  readonly localCleanSession: boolean;
  /** Seconds. */
  readonly keepAlive: number;
  readonly protocolVersion: 3 | 4 | 5;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly localUsername?: string | undefined;
  readonly localPassword?: string | undefined;
  readonly tls?: BridgeTls | undefined;
  /** 3.1/3.1.1: tell the remote this is a bridge (protocol level | 0x80), and fall back without it if refused. */
  readonly tryPrivate: boolean;
  readonly notifications: boolean;
  readonly notificationsLocalOnly: boolean;
  readonly notificationTopic: string;
  /** false: retained messages lose the retain flag on the way out (Mosquitto `bridge_outgoing_retain`). */
  readonly outgoingRetain: boolean;
  readonly topics: readonly TopicRule[];
  /** QoS 1/2 messages for the remote, waiting and inflight; beyond it the oldest is dropped. */
  readonly maxQueued: number;
  /** QoS 1/2 messages sent to the remote and not yet acknowledged. */
  readonly maxInflight: number;
  /** Reconnect delay: decorrelated jitter between `baseMs` and `capMs` (Mosquitto `restart_timeout base cap`). */
  readonly reconnect: { readonly baseMs: number; readonly capMs: number };
  /** false: after a lost connection the first address is tried first again (Mosquitto's default). */
  readonly roundRobin: boolean;
  /** Milliseconds to wait for CONNACK. */
  readonly connectTimeoutMs: number;
  /** Cluster: how long a node holds the bridge's lease unrenewed; default the manager's. */
  readonly leaseTtlMs?: number | undefined;
}

export type BridgeState = 'stopped' | 'standby' | 'connecting' | 'connected' | 'disconnected';

/**
 * What a bridge reports (BridgeManager.stats()). The metric names the ops endpoint publishes:
 * `fleetmq_bridge_state{bridge}` (1 connected, 0 not), `fleetmq_bridge_messages_total{bridge,direction="in"|"out"}`,
 * `fleetmq_bridge_queue_length{bridge}`, `fleetmq_bridge_dropped_total{bridge}`.
 */
export interface BridgeStats {
  readonly name: string;
  /** standby: another node holds the bridge's lease; connected: to `address`. */
  state: BridgeState;
  /** The remote address connected to (host:port), while connected. */
  address: string | undefined;
  /** Messages from the remote published locally. */
  messagesIn: number;
  /** Messages sent to the remote (QoS 1/2: acknowledged by it). */
  messagesOut: number;
  /** QoS 1/2 messages for the remote waiting or inflight. */
  queued: number;
  /**
   * Messages lost: QoS 1/2 dropped from a full queue (oldest first), QoS 0 while the remote
   * was away, messages the remote or the local broker refused, messages no rule maps, and
   * messages still queued when the bridge stopped on this node.
   */
  dropped: number;
  /** Successful remote connections since start. */
  connects: number;
}

/**
 * Makes mqtt.js send CONNECT with the bridge bit (protocol level | 0x80, Mosquitto's
 * try_private). mqtt-packet writes it when the CONNECT packet says `bridgeMode`, but mqtt.js
 * builds that packet from a fixed list of options, so the flag is added on its way out.
 */
function withBridgeBit(client: MqttClient): void {
  const internal = client as unknown as { _writePacket(packet: { cmd: string; bridgeMode?: boolean }, cb?: unknown): void };
  const write = internal._writePacket.bind(client);
  internal._writePacket = (packet, cb) => write(packet.cmd === 'connect' ? { ...packet, bridgeMode: true } : packet, cb);
}

/** Unread bytes to the remote beyond which QoS 0 messages are dropped (counted), not buffered. */
const QOS0_OUTPUT_LIMIT = 4 * 1024 * 1024;

/** Local publishes the bridge waits for at most before giving up on a message from the remote. */
const LOCAL_PUBLISH_TIMEOUT_MS = 30_000;

function readPem(bridge: string, what: string, file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`bridge ${bridge}: cannot read ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, { cause: err });
  }
}

/** Application properties the local broker delivered, as mqtt.js publishes them. */
type PublishProperties = NonNullable<IPublishPacket['properties']>;

/** The MQTT 5 properties that travel with a message across the bridge, unchanged. */
function carriedProperties(p: PublishProperties | undefined): (MessageProperties & { messageExpiryInterval?: number }) | undefined {
  if (p === undefined) return undefined;
  const out: MessageProperties & { messageExpiryInterval?: number } = {};
  let any = false;
  if (p.payloadFormatIndicator !== undefined) ((out.payloadFormatIndicator = p.payloadFormatIndicator), (any = true));
  if (p.contentType !== undefined) ((out.contentType = p.contentType), (any = true));
  if (p.responseTopic !== undefined) ((out.responseTopic = p.responseTopic), (any = true));
  if (p.correlationData !== undefined) ((out.correlationData = p.correlationData), (any = true));
  if (p.userProperties !== undefined) ((out.userProperties = p.userProperties), (any = true));
  if (p.messageExpiryInterval !== undefined) ((out.messageExpiryInterval = p.messageExpiryInterval), (any = true));
  return any ? out : undefined;
}

/**
 * One bridge to a remote MQTT broker, with Mosquitto's semantics. The local side is an
 * in-process MQTT 5 client of this node's broker (LocalClient): it subscribes to the local
 * side of the out/both rules and publishes what comes in. The remote side is mqtt.js
 * (3.1, 3.1.1 or 5.0, TCP or TLS), one connection at a time, addresses tried in order, reconnected with
 * backoff. QoS 1/2 messages going out while the remote is away wait in a bounded queue.
 *
 * Loop prevention: the local subscriptions are No Local, so what the bridge publishes
 * locally never goes back out; remote subscriptions are No Local on 5.0, and on 3.x the
 * bridge bit (try_private) asks a Mosquitto-like remote for the same.
 */
export class Bridge {
  readonly stats: BridgeStats;
  private readonly log: BrokerLog;
  private readonly queue: OutgoingQueue;
  private readonly tlsFiles: { ca?: Buffer | undefined; cert?: Buffer | undefined; key?: Buffer | undefined };
  private local: LocalClient | undefined;
  private client: MqttClient | undefined;
  /** Increases with every remote connection attempt: callbacks of an older one are ignored. */
  private generation = 0;
  private running = false;
  private addressIndex = 0;
  /** Failed attempts in a row (for the backoff and the once-per-outage log line). */
  private failures = 0;
  private delay = 0;
  private timer: NodeJS.Timeout | undefined;
  private localTimer: NodeJS.Timeout | undefined;
  /** The remote refused the bridge bit (CONNACK 1): 3.x connects without it from now on. */
  private privateRefused = false;
  private readonly outRules: boolean;

  constructor(
    readonly options: BridgeOptions,
    private readonly broker: Broker,
    log: BrokerLog,
  ) {
    if (options.addresses.length === 0) throw new Error(`bridge ${options.name}: no address`);
    this.log = log.child({ bridge: options.name });
    this.queue = new OutgoingQueue(options.maxQueued, Math.min(options.maxInflight, options.maxQueued));
    const tls = options.tls;
    this.tlsFiles = {
      ca: readPem(options.name, 'caFile', tls?.caFile),
      cert: readPem(options.name, 'certFile', tls?.certFile),
      key: readPem(options.name, 'keyFile', tls?.keyFile),
    };
    this.outRules = localSubscriptions(options.topics).size > 0;
    this.stats = { name: options.name, state: 'stopped', address: undefined, messagesIn: 0, messagesOut: 0, queued: 0, dropped: 0, connects: 0 };
  }

  get name(): string {
    return this.options.name;
  }

  /** Connects the local side, then the remote (in the background, retried until `stop`). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.stats.state = 'connecting';
    this.log.info({ addresses: this.options.addresses.map((a) => `${a.host}:${a.port}`) }, 'bridge_started');
    await this.connectLocal();
    if (!this.running) return;
    this.addressIndex = 0;
    this.connectRemote();
  }

  /**
   * Stops reconnecting; gives queued QoS 1/2 messages up to `flushMs` to reach a connected
   * remote; publishes state 0 (unless `notify` is false: another node runs the bridge now);
   * closes both sides. Messages still queued then are lost (counted).
   */
  async stop(flushMs = 0, notify = true): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.timer);
    clearTimeout(this.localTimer);
    if (flushMs > 0 && this.client?.connected === true && this.queue.length > 0) {
      const deadline = Date.now() + flushMs;
      while (this.queue.length > 0 && this.client?.connected === true && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    const client = this.client;
    this.client = undefined;
    this.generation++;
    // what did not reach the remote is lost: the bridge may run on another node next
    const lost = this.queue.clear();
    this.stats.dropped += lost;
    if (client !== undefined) {
      if (notify && client.connected && this.options.notifications && !this.options.notificationsLocalOnly) {
        await new Promise<void>((resolve) => {
          client.publish(this.options.notificationTopic, '0', { qos: 1, retain: true }, () => resolve());
          setTimeout(resolve, 1_000).unref();
        });
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => client.end(true, {}, () => resolve()), 2_000);
        client.end(false, {}, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (notify) await this.publishLocalState(false);
    const local = this.local;
    this.local = undefined;
    local?.disconnect();
    this.stats.state = 'stopped';
    this.stats.address = undefined;
    this.stats.queued = 0;
    this.log.info({ lost }, 'bridge_stopped');
  }

  // ------------------------------------------------------------------ local side

  private async connectLocal(): Promise<void> {
    const o = this.options;
    const info = { transport: 'bridge', listener: `bridge:${o.name}`, remoteAddress: `bridge:${o.name}`, remotePort: 0 };
    const local = new LocalClient(this.broker, info, {
      onMessage: (packet) => this.fromLocal(packet),
      onClosed: (reason) => this.localClosed(local, reason),
    });
    this.local = local;
    try {
      await local.connect({
        clientId: o.localClientId,
        cleanStart: o.localCleanSession,
        sessionExpiryInterval: o.localCleanSession ? 0 : 0xffffffff,
        username: o.localUsername,
        password: o.localPassword,
      });
      if (this.outRules) {
        const subs = [...localSubscriptions(o.topics)].map(([filter, qos]) => ({ filter, qos }));
        const granted = await local.subscribe(subs);
        granted.forEach((code, i) => {
          if (code >= 0x80) this.log.warn({ filter: subs[i]!.filter, reasonCode: code }, 'bridge_local_subscribe_refused');
        });
      }
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'bridge_local_connect_failed');
      local.close('bridge_local_connect_failed');
    }
  }

  /** The local connection ended (taken over by a client with the same ID, refused, …): reconnect it. */
  private localClosed(local: LocalClient, reason: string): void {
    if (this.local !== local) return;
    this.local = undefined;
    if (!this.running) return;
    this.log.warn({ reason }, 'bridge_local_disconnected');
    this.localTimer = setTimeout(() => {
      if (this.running && this.local === undefined) void this.connectLocal();
    }, this.options.reconnect.baseMs);
    this.localTimer.unref();
  }

  /** A local message for the remote (out/both rules). Acknowledged locally once queued here. */
  private fromLocal(packet: IPublishPacket): void {
    const topic = toRemoteTopic(this.options.topics, packet.topic);
    if (topic === undefined) {
      this.stats.dropped++;
      return;
    }
    const message: OutgoingMessage = {
      topic,
      payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload,
      qos: packet.qos,
      retain: this.options.outgoingRetain && packet.retain,
      properties: this.options.protocolVersion === 5 ? carriedProperties(packet.properties) : undefined,
    };
    const client = this.client;
    if (message.qos === 0) {
      // as Mosquitto: QoS 0 is not queued for a remote that is away, nor piled up for a slow one
      if (client?.connected !== true || client.stream.writableLength > QOS0_OUTPUT_LIMIT) {
        this.stats.dropped++;
        return;
      }
      client.publish(message.topic, message.payload, this.publishOptions(message));
      this.stats.messagesOut++;
      return;
    }
    this.queue.push(message);
    this.stats.dropped += this.takeDropped();
    this.stats.queued = this.queue.length;
    this.pump();
  }

  private takeDropped(): number {
    const dropped = this.queue.dropped;
    this.queue.dropped = 0;
    return dropped;
  }

  private publishOptions(message: OutgoingMessage): { qos: QoS; retain: boolean; properties?: PublishProperties } {
    return message.properties !== undefined
      ? { qos: message.qos, retain: message.retain, properties: message.properties }
      : { qos: message.qos, retain: message.retain };
  }

  /** Sends waiting QoS 1/2 messages while the remote is connected and the inflight window has room. */
  private pump(): void {
    const client = this.client;
    if (client?.connected !== true) return;
    const generation = this.generation;
    for (let next = this.queue.take(); next !== undefined; next = this.queue.take()) {
      const { id, message } = next;
      client.publish(message.topic, message.payload, this.publishOptions(message), (err) => {
        if (generation !== this.generation) return; // the connection was lost: it waits again
        this.queue.settle(id);
        // a refusal by a connected remote (5.0 reason code) is for good: counted, not resent
        if (err !== undefined && err !== null) this.stats.dropped++;
        else this.stats.messagesOut++;
        this.stats.queued = this.queue.length;
        this.pump();
      });
    }
  }

  // ------------------------------------------------------------------ remote side

  private remoteOptions(address: BridgeAddress): IClientOptions {
    const o = this.options;
    const v5 = o.protocolVersion === 5;
    const tls = o.tls;
    const options: IClientOptions = {
      host: address.host,
      port: address.port,
      protocol: tls !== undefined ? 'mqtts' : 'mqtt',
      protocolVersion: o.protocolVersion,
      ...(o.protocolVersion === 3 ? { protocolId: 'MQIsdp' } : {}),
      clientId: o.remoteClientId,
      clean: o.cleanSession,
      keepalive: o.keepAlive,
      reconnectPeriod: 0,
      connectTimeout: o.connectTimeoutMs,
      resubscribe: false,
      queueQoSZero: false,
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...(v5 ? { properties: { sessionExpiryInterval: o.cleanSession ? 0 : 0xffffffff } } : {}),
      // connect() is called once the CONNECT is set up to carry the bridge bit (connectRemote)
      manualConnect: true,
    };
    if (o.notifications && !o.notificationsLocalOnly) {
      options.will = { topic: o.notificationTopic, payload: Buffer.from('0'), qos: 1, retain: true };
    }
    if (tls !== undefined) {
      options.rejectUnauthorized = true;
      if (this.tlsFiles.ca !== undefined) options.ca = this.tlsFiles.ca;
      if (this.tlsFiles.cert !== undefined) options.cert = this.tlsFiles.cert;
      if (this.tlsFiles.key !== undefined) options.key = this.tlsFiles.key;
      if (tls.serverName !== undefined) options.servername = tls.serverName;
      // Mosquitto's bridge_insecure: the chain is verified, the host name is not
      if (tls.insecure) (options as { checkServerIdentity?: () => undefined }).checkServerIdentity = () => undefined;
    }
    return options;
  }

  private connectRemote(): void {
    if (!this.running) return;
    const generation = ++this.generation;
    const address = this.options.addresses[this.addressIndex % this.options.addresses.length]!;
    const bridgeBit = this.options.tryPrivate && this.options.protocolVersion !== 5 && !this.privateRefused;
    this.stats.state = 'connecting';
    const client = mqttConnect(this.remoteOptions(address));
    if (bridgeBit) withBridgeBit(client);
    this.client = client;
    let connected = false;
    // QoS 1/2 from the remote are acknowledged only once the local broker accepted them
    client.handleMessage = (packet, done) => {
      this.fromRemote(packet).then(
        () => done(),
        (err: unknown) => {
          done(err as Error);
          // not acknowledged: the remote sends it again after reconnecting
          if (generation === this.generation) client.end(true);
        },
      );
    };
    client.on('connect', () => {
      if (generation !== this.generation) return;
      connected = true;
      this.failures = 0;
      this.delay = 0;
      this.stats.connects++;
      this.stats.state = 'connected';
      this.stats.address = `${address.host}:${address.port}`;
      this.log.info({ address: this.stats.address, privateBridge: bridgeBit }, 'bridge_connected');
      this.onRemoteConnected(client);
    });
    client.on('error', (err: Error & { code?: unknown }) => {
      if (generation !== this.generation) return;
      if (!connected && bridgeBit && err.code === 1) {
        // CONNACK 1 (unacceptable protocol version): the remote does not take the bridge bit
        this.privateRefused = true;
        this.log.info({ address: `${address.host}:${address.port}` }, 'bridge_private_refused');
        return;
      }
      if (this.failures === 0) this.log.warn({ address: `${address.host}:${address.port}`, err: err.message }, 'bridge_connect_failed');
    });
    client.on('close', () => {
      if (generation !== this.generation) return;
      this.generation++;
      client.removeAllListeners('connect');
      client.end(true);
      this.client = undefined;
      this.queue.requeueInflight();
      this.stats.queued = this.queue.length;
      this.stats.address = undefined;
      if (!this.running) return;
      this.stats.state = 'disconnected';
      if (connected) {
        this.log.warn({ address: `${address.host}:${address.port}` }, 'bridge_disconnected');
        void this.publishLocalState(false);
        if (!this.options.roundRobin) this.addressIndex = 0;
        else this.addressIndex++;
        this.scheduleReconnect(this.options.reconnect.baseMs);
        return;
      }
      this.failures++;
      if (this.privateRefused && bridgeBit) {
        this.scheduleReconnect(0); // at once, without the bridge bit
        return;
      }
      this.addressIndex++;
      // the next address at once; after a whole round, back off
      const roundDone = this.addressIndex % this.options.addresses.length === 0;
      this.scheduleReconnect(roundDone ? this.nextDelay() : 0);
    });
    client.connect();
  }

  /** Decorrelated jitter (Mosquitto's restart_timeout base cap): min(cap, random(base, previous * 3)). */
  private nextDelay(): number {
    const { baseMs, capMs } = this.options.reconnect;
    const previous = Math.max(baseMs, this.delay);
    this.delay = Math.min(capMs, baseMs + Math.random() * (previous * 3 - baseMs));
    return Math.round(this.delay);
  }

  private scheduleReconnect(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connectRemote(), ms);
    this.timer.unref();
  }

  private onRemoteConnected(client: MqttClient): void {
    const o = this.options;
    const v5 = o.protocolVersion === 5;
    const subs = remoteSubscriptions(o.topics);
    if (subs.size > 0) {
      const map: Record<string, { qos: QoS; nl?: boolean; rap?: boolean; rh?: number }> = {};
      for (const [filter, qos] of subs) map[filter] = v5 ? { qos, nl: true, rap: true, rh: 0 } : { qos };
      client.subscribe(map, (err, granted) => {
        if (err) this.log.warn({ err: err.message }, 'bridge_remote_subscribe_failed');
        for (const g of granted ?? []) {
          if (g.qos === 128 || g.qos > 2) this.log.warn({ filter: g.topic }, 'bridge_remote_subscribe_refused');
        }
      });
    }
    if (o.notifications && !o.notificationsLocalOnly) client.publish(o.notificationTopic, '1', { qos: 1, retain: true });
    void this.publishLocalState(true);
    this.pump();
  }

  /** A remote message for this broker (in/both rules); resolves once the local broker accepted it. */
  private async fromRemote(packet: IPublishPacket): Promise<void> {
    const topic = toLocalTopic(this.options.topics, packet.topic);
    const local = this.local;
    if (topic === undefined) {
      this.stats.dropped++;
      return;
    }
    if (local === undefined || !local.open) throw new Error('the local bridge connection is down');
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const properties = carriedProperties(packet.properties);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        local.publish(topic, payload, packet.qos, packet.retain, properties),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('the local broker did not accept the message in time')), LOCAL_PUBLISH_TIMEOUT_MS);
        }),
      ]);
      this.stats.messagesIn++;
    } catch (err) {
      if (!(err instanceof LocalPublishRefusedError)) throw err;
      // refused for good (not authorized, too large): acknowledged and dropped, as Mosquitto does
      this.stats.dropped++;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The retained local state message ($SYS/broker/connection/<name>/state: 1 or 0). */
  private async publishLocalState(up: boolean): Promise<void> {
    if (!this.options.notifications) return;
    const now = Date.now();
    try {
      await this.broker.publish({
        id: this.broker.newMessageId(),
        topic: this.options.notificationTopic,
        payload: Buffer.from(up ? '1' : '0'),
        qos: 1,
        retain: true,
        createdAt: now,
      });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'bridge_notification_failed');
    }
  }
}
