/**
 * Test harness for the broker core: a Broker wired to the in-process adapters (as
 * services/edge embeddedPorts does), and clients that drive a Channel directly with
 * mqtt-packet objects through a RecordingSink. No sockets, no parser: what a test sends
 * is what the channel gets, and what the channel sends is recorded as it was sent.
 *
 * Every packet the channel sends is also encoded with mqtt-packet's `generate`, as the
 * real Connection does: a packet that cannot be encoded is recorded in `encodeErrors`,
 * and `Harness.assertClean()` fails the test on it.
 */
import { afterEach } from 'vitest';
import mqtt, {
  type IConnackPacket,
  type IConnectPacket,
  type IDisconnectPacket,
  type IPublishPacket,
  type ISubackPacket,
  type ISubscribePacket,
  type ISubscription,
  type IUnsubackPacket,
  type Packet,
} from 'mqtt-packet';
import type { ProtocolVersion, QoS } from '@fleetmq/protocol';
import {
  MemoryMessageBus,
  type MemoryNodeLinkHub,
  MemoryOfflineQueue,
  MemoryRetainedStore,
  MemorySessionOwnership,
  MemorySessionStore,
} from '@fleetmq/adapter-memory';
import { Broker } from '../../src/broker.js';
import type { Channel, ChannelSink, ConnectionInfo } from '../../src/channel.js';
import type { Authenticator, Authorizer } from '../../src/auth.js';
import type { ClientLimits, LimitPolicy, ListenerLimits } from '../../src/client-limits.js';
import { defaultBrokerOptions, type BrokerOptions } from '../../src/options.js';

/** The real setImmediate, captured before any test installs fake timers. */
const realSetImmediate = globalThis.setImmediate;

/** Lets pending promise chains and scheduled callbacks run (works under fake timers too). */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => realSetImmediate(resolve));
}

type Cmd = Packet['cmd'];
export type PacketOf<C extends Cmd> = Extract<Packet, { cmd: C }>;

/** A ChannelSink that records what the channel asks of its connection. */
export class RecordingSink implements ChannelSink {
  /** Set by a test to play a client that does not read. */
  congested = false;
  /** Every packet sent (encodable and within the client's maximum), in order. */
  readonly sent: Packet[] = [];
  /** Packets refused because they exceed the client's Maximum Packet Size. */
  readonly tooLarge: Packet[] = [];
  /** Packets the channel tried to send after it closed the connection. */
  readonly sentAfterClose: Packet[] = [];
  readonly encodeErrors: { packet: Packet; error: string }[] = [];
  /** Reasons of every close call, in order (more than one is not an error, but is recorded). */
  readonly closeCalls: string[] = [];
  keepAlive: number | undefined;
  protocolVersion: ProtocolVersion | undefined;
  maxOutgoingPacketSize = Number.POSITIVE_INFINITY;
  /** What the channel told the connection to accept at most (a policy's maxPacketSize). */
  maxIncomingPacketSize: number | undefined;
  /** Called once, after the first close, as the transport's close event would be. */
  onClosed: ((reason: string) => void) | undefined;

  get closed(): boolean {
    return this.closeCalls.length > 0;
  }

  get closeReason(): string | undefined {
    return this.closeCalls[0];
  }

  send(packet: Packet): boolean {
    if (this.closed) {
      this.sentAfterClose.push(packet);
      return false;
    }
    let size: number;
    try {
      size = mqtt.generate(packet, { protocolVersion: this.protocolVersion ?? 4 }).length;
    } catch (err) {
      this.encodeErrors.push({ packet, error: err instanceof Error ? err.message : String(err) });
      return false;
    }
    if (size > this.maxOutgoingPacketSize) {
      this.tooLarge.push(packet);
      return false;
    }
    this.sent.push(packet);
    return true;
  }

  close(reason: string): void {
    this.closeCalls.push(reason);
    if (this.closeCalls.length === 1 && this.onClosed !== undefined) {
      const onClosed = this.onClosed;
      realSetImmediate(() => onClosed(reason));
    }
  }

  setKeepAlive(seconds: number): void {
    this.keepAlive = seconds;
  }

  setProtocolVersion(version: ProtocolVersion): void {
    this.protocolVersion = version;
  }

  setMaxOutgoingPacketSize(bytes: number): void {
    this.maxOutgoingPacketSize = bytes;
  }

  setMaxIncomingPacketSize(bytes: number): void {
    this.maxIncomingPacketSize = bytes;
  }
}

export interface ConnectOptions {
  clientId?: string;
  protocolVersion?: ProtocolVersion;
  clean?: boolean;
  keepalive?: number;
  username?: string;
  password?: Buffer;
  will?: IConnectPacket['will'];
  properties?: IConnectPacket['properties'];
}

export function connectPacket(o: ConnectOptions = {}): IConnectPacket {
  const version = o.protocolVersion ?? 5;
  const packet: IConnectPacket = {
    cmd: 'connect',
    protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: version,
    clientId: o.clientId ?? 'client',
    clean: o.clean ?? true,
    keepalive: o.keepalive ?? 60,
  };
  if (o.username !== undefined) packet.username = o.username;
  if (o.password !== undefined) packet.password = o.password;
  if (o.will !== undefined) packet.will = o.will;
  if (o.properties !== undefined) packet.properties = o.properties;
  return packet;
}

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
  dup?: boolean;
  messageId?: number;
  properties?: IPublishPacket['properties'];
}

export type SubscribeArg = string | ISubscription | (string | ISubscription)[];

let nextConnectionPort = 40000;

/** One client connection: a RecordingSink, its Channel, and an inbox of what was received. */
export class TestClient {
  readonly sink = new RecordingSink();
  readonly channel: Channel;
  /** Packets received and not yet taken by the test, in order. */
  readonly inbox: Packet[] = [];
  private seen = 0;
  private nextId = 1;

  constructor(readonly harness: Harness, info: ConnectionInfo) {
    this.channel = harness.broker.createChannel(this.sink, info);
    this.sink.onClosed = (reason) => {
      // what a Connection does once its stream has closed
      this.channel.handleClosed(reason);
      harness.broker.releaseChannel(this.channel);
    };
  }

  get closed(): boolean {
    return this.sink.closed;
  }

  /** Hands one packet to the channel and waits for it, as a Connection does. */
  async send(packet: Packet): Promise<void> {
    const result = this.channel.handleIn(packet);
    if (result !== undefined) await result;
  }

  /** Sends CONNECT and returns the CONNACK (whatever its code). */
  async connect(o: ConnectOptions = {}): Promise<IConnackPacket> {
    await this.send(connectPacket(o));
    return this.take('connack');
  }

  private pull(): void {
    while (this.seen < this.sink.sent.length) this.inbox.push(this.sink.sent[this.seen++]!);
  }

  /** Every received packet not taken yet (and takes them). */
  drain(): Packet[] {
    this.pull();
    return this.inbox.splice(0);
  }

  /** Received packets not taken yet, without taking them. */
  peek(): readonly Packet[] {
    this.pull();
    return this.inbox;
  }

  /** Takes the first received packet of this kind; fails if there is none. */
  take<C extends Cmd>(cmd: C): PacketOf<C> {
    this.pull();
    const i = this.inbox.findIndex((p) => p.cmd === cmd);
    if (i < 0) {
      throw new Error(`no ${cmd} received; inbox: ${JSON.stringify(this.inbox.map((p) => p.cmd))}, closed: ${String(this.sink.closeReason)}`);
    }
    return this.inbox.splice(i, 1)[0] as PacketOf<C>;
  }

  /** Takes the next received packet, which must be of this kind. */
  next<C extends Cmd>(cmd: C): PacketOf<C> {
    this.pull();
    const p = this.inbox.shift();
    if (p === undefined) throw new Error(`expected ${cmd}, nothing received; closed: ${String(this.sink.closeReason)}`);
    if (p.cmd !== cmd) throw new Error(`expected ${cmd}, received ${p.cmd}: ${JSON.stringify(p)}`);
    return p as PacketOf<C>;
  }

  /** Lets pending work run, then takes the first packet of this kind. */
  async nextPacket<C extends Cmd>(cmd: C): Promise<PacketOf<C>> {
    await settle();
    return this.take(cmd);
  }

  /** Takes every received PUBLISH (other packets stay in the inbox). */
  publishes(): IPublishPacket[] {
    this.pull();
    const out: IPublishPacket[] = [];
    for (let i = 0; i < this.inbox.length; ) {
      const p = this.inbox[i]!;
      if (p.cmd === 'publish') {
        out.push(p);
        this.inbox.splice(i, 1);
      } else i++;
    }
    return out;
  }

  /** A packet identifier for the next QoS > 0 PUBLISH or SUBSCRIBE this client sends. */
  packetId(): number {
    const id = this.nextId;
    this.nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  /** Sends a PUBLISH; returns its packet identifier (0 for QoS 0). */
  async publish(topic: string, payload: string | Buffer, o: PublishOptions = {}): Promise<number> {
    const qos = o.qos ?? 0;
    const packet: IPublishPacket = {
      cmd: 'publish',
      topic,
      payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
      qos,
      retain: o.retain ?? false,
      dup: o.dup ?? false,
    };
    const messageId = qos > 0 ? (o.messageId ?? this.packetId()) : 0;
    if (qos > 0) packet.messageId = messageId;
    if (o.properties !== undefined) packet.properties = o.properties;
    await this.send(packet);
    // a QoS 1 PUBLISH is pipelined (the channel does not hold up the next packet): wait for
    // the bus to take it, as its PUBACK does
    if (qos === 1) await settle(1);
    return messageId;
  }

  /** Sends SUBSCRIBE and returns the SUBACK. */
  async subscribe(arg: SubscribeArg, o: { qos?: QoS; properties?: ISubscribePacket['properties'] } = {}): Promise<ISubackPacket> {
    const list = Array.isArray(arg) ? arg : [arg];
    const subscriptions = list.map((s) => (typeof s === 'string' ? { topic: s, qos: o.qos ?? 1 } : s));
    const packet: ISubscribePacket = { cmd: 'subscribe', messageId: this.packetId(), subscriptions };
    if (o.properties !== undefined) packet.properties = o.properties;
    await this.send(packet);
    return this.take('suback');
  }

  async unsubscribe(filters: string | string[]): Promise<IUnsubackPacket> {
    await this.send({ cmd: 'unsubscribe', messageId: this.packetId(), unsubscriptions: Array.isArray(filters) ? filters : [filters] });
    return this.take('unsuback');
  }

  async disconnect(reasonCode?: number, properties?: IDisconnectPacket['properties']): Promise<void> {
    const packet: IDisconnectPacket = { cmd: 'disconnect' };
    if (reasonCode !== undefined) packet.reasonCode = reasonCode;
    if (properties !== undefined) packet.properties = properties;
    await this.send(packet);
    await settle();
  }

  /** The network connection is lost (no DISCONNECT), as a Connection reports a socket close. */
  async drop(): Promise<void> {
    this.sink.closeCalls.push('network_lost');
    this.channel.handleClosed('socket_error');
    this.harness.broker.releaseChannel(this.channel);
    await settle();
  }

  /** Acknowledges a received QoS 1/2 PUBLISH completely (PUBACK, or PUBREC then PUBREL). */
  async ack(p: IPublishPacket): Promise<void> {
    if (p.qos === 1) await this.send({ cmd: 'puback', messageId: p.messageId! });
    else if (p.qos === 2) {
      await this.send({ cmd: 'pubrec', messageId: p.messageId! });
      this.take('pubrel');
      await this.send({ cmd: 'pubcomp', messageId: p.messageId! });
    }
  }
}

export interface HarnessOptions {
  readonly options?: Partial<BrokerOptions>;
  readonly authenticator?: Authenticator;
  readonly authorizer?: Authorizer;
  readonly limits?: Partial<ClientLimits>;
  readonly policy?: LimitPolicy;
  readonly listenerLimits?: Readonly<Record<string, ListenerLimits>>;
  readonly usernameFromCertificate?: string;
  readonly nodeId?: string;
  /** Ports shared with another harness: two nodes of one cluster. */
  readonly ports?: MemoryPorts;
  /** Takeover between harnesses on one hub (call `await harness.broker.start()` to serve). */
  readonly linkHub?: MemoryNodeLinkHub;
}

export interface MemoryPorts {
  readonly bus: MemoryMessageBus;
  readonly ownership: MemorySessionOwnership;
  readonly sessions: MemorySessionStore;
  readonly offlineQueue: MemoryOfflineQueue;
  readonly retained: MemoryRetainedStore;
}

/** A Broker on the in-process adapters, and the clients connected to it. */
export class Harness {
  readonly broker: Broker;
  readonly ports: MemoryPorts;
  readonly clients: TestClient[] = [];
  private readonly ownsPorts: boolean;

  constructor(o: HarnessOptions = {}) {
    const options = { ...defaultBrokerOptions, ...o.options };
    this.ownsPorts = o.ports === undefined;
    this.ports = o.ports ?? {
      bus: new MemoryMessageBus(),
      ownership: new MemorySessionOwnership(),
      sessions: new MemorySessionStore(),
      offlineQueue: new MemoryOfflineQueue({ maxLength: options.maxQueuedMessages, dropPolicy: options.queueDropPolicy }),
      retained: new MemoryRetainedStore(),
    };
    this.broker = new Broker({
      nodeId: o.nodeId ?? 'test',
      ports: o.linkHub !== undefined ? { ...this.ports, link: o.linkHub.link() } : this.ports,
      options,
      ...(o.authenticator !== undefined ? { authenticator: o.authenticator } : {}),
      ...(o.authorizer !== undefined ? { authorizer: o.authorizer } : {}),
      ...(o.limits !== undefined ? { limits: o.limits } : {}),
      ...(o.policy !== undefined ? { policy: o.policy } : {}),
      ...(o.listenerLimits !== undefined ? { listenerLimits: o.listenerLimits } : {}),
      ...(o.usernameFromCertificate !== undefined ? { usernameFromCertificate: o.usernameFromCertificate } : {}),
    });
  }

  /** A new connection (not connected yet); `info` overrides what the transport reports (a client certificate). */
  client(info: Partial<ConnectionInfo> = {}): TestClient {
    const c = new TestClient(this, {
      transport: 'test',
      listener: 'test',
      remoteAddress: '127.0.0.1',
      remotePort: nextConnectionPort++,
      ...info,
    });
    this.clients.push(c);
    return c;
  }

  /** A new connection, connected; fails unless the CONNACK is a success. */
  async connect(o: ConnectOptions = {}): Promise<TestClient> {
    const c = this.client();
    const connack = await c.connect(o);
    const code = connack.reasonCode ?? connack.returnCode ?? 0;
    if (code !== 0) throw new Error(`connect ${o.clientId ?? 'client'} refused with 0x${code.toString(16)}`);
    return c;
  }

  /** Fails if any packet the channels sent could not be encoded, or was sent after close. */
  assertClean(): void {
    for (const c of this.clients) {
      if (c.sink.encodeErrors.length > 0) {
        throw new Error(`unencodable packet sent to ${c.channel.clientId}: ${JSON.stringify(c.sink.encodeErrors)}`);
      }
      const late = c.sink.sentAfterClose;
      if (late.length > 0) {
        throw new Error(`packets sent to ${c.channel.clientId} after close: ${JSON.stringify(late.map((p) => p.cmd))}`);
      }
    }
  }

  async close(): Promise<void> {
    this.broker.shutdown(0x8b);
    await settle();
    if (!this.ownsPorts) return;
    await Promise.all([
      this.ports.bus.close(),
      this.ports.ownership.close(),
      this.ports.sessions.close(),
      this.ports.offlineQueue.close(),
      this.ports.retained.close(),
    ]);
  }
}

/** Payloads of PUBLISH packets as strings. */
export function payloads(packets: readonly IPublishPacket[]): string[] {
  return packets.map((p) => Buffer.from(p.payload).toString());
}

/**
 * Registers an afterEach that checks and closes every harness made through the returned
 * function in the test: `const harness = useHarness(); … const h = harness({options});`.
 */
export function useHarness(): (o?: HarnessOptions) => Harness {
  const made: Harness[] = [];
  afterEach(async () => {
    const all = made.splice(0);
    try {
      for (const h of all) h.assertClean();
    } finally {
      for (const h of all) await h.close();
    }
  });
  return (o?: HarnessOptions) => {
    const h = new Harness(o);
    made.push(h);
    return h;
  };
}
