import type { IPublishPacket, Packet } from 'mqtt-packet';
import type { ProtocolVersion, QoS } from '@fleetmq/protocol';
import type { Broker, Channel, ChannelSink, ConnectionInfo, MessageProperties } from '@fleetmq/broker';

export interface LocalConnectOptions {
  readonly clientId: string;
  readonly cleanStart: boolean;
  /** Seconds the local session outlives the connection (0: it ends with it). */
  readonly sessionExpiryInterval: number;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
}

export interface LocalSubscription {
  readonly filter: string;
  readonly qos: QoS;
}

export interface LocalClientHandlers {
  /** A message the local broker delivers to the bridge; it is acknowledged when this returns. */
  onMessage(packet: IPublishPacket): void;
  /** The local broker closed the connection (takeover, drain, refusal), or `disconnect` did. */
  onClosed(reason: string): void;
}

/** The local broker refused the bridge's CONNECT. */
export class LocalConnectError extends Error {
  override readonly name = 'LocalConnectError';
  constructor(readonly reasonCode: number) {
    super(`the local broker refused the bridge connection (reason code 0x${reasonCode.toString(16)})`);
  }
}

/** A local publish the broker refused (MQTT 5 PUBACK/PUBREC reason code >= 0x80). */
export class LocalPublishRefusedError extends Error {
  override readonly name = 'LocalPublishRefusedError';
  constructor(readonly reasonCode: number) {
    super(`the local broker refused the message (reason code 0x${reasonCode.toString(16)})`);
  }
}

interface Pending {
  resolve(value: number[]): void;
  reject(err: Error): void;
}

const NOT_CONNECTED = (): Error => new Error('the local bridge connection is closed');

/**
 * The bridge's in-process MQTT 5 client of the local broker: a ChannelSink that hands the
 * channel's packets to the bridge instead of a socket, so the bridge is an ordinary client
 * with a session, QoS flows, queueing and retained messages, as Mosquitto's bridge is a
 * client context of its broker. Packets go into the channel one at a time and in order, as
 * a Connection feeds them (a promise from `handleIn` means: wait).
 */
export class LocalClient implements ChannelSink {
  readonly congested = false;
  private readonly channel: Channel;
  private readonly input: Packet[] = [];
  private feeding = false;
  private closed = false;
  private connecting: { resolve(present: boolean): void; reject(err: Error): void } | undefined;
  /** SUBSCRIBE, and QoS 1/2 PUBLISH waiting for their acknowledgement, by packet ID. */
  private readonly pending = new Map<number, Pending>();
  private nextPacketId = 1;

  constructor(
    private readonly broker: Broker,
    info: ConnectionInfo,
    private readonly handlers: LocalClientHandlers,
  ) {
    this.channel = broker.createChannel(this, info);
  }

  get open(): boolean {
    return !this.closed;
  }

  /** Sends CONNECT; resolves with Session Present, rejects with LocalConnectError when refused. */
  connect(options: LocalConnectOptions): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.connecting = { resolve, reject };
      this.feed({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 5,
        clientId: options.clientId,
        clean: options.cleanStart,
        keepalive: 0,
        properties: { sessionExpiryInterval: options.sessionExpiryInterval },
        ...(options.username !== undefined ? { username: options.username } : {}),
        ...(options.password !== undefined ? { password: Buffer.from(options.password) } : {}),
      });
    });
  }

  /**
   * Subscribes as Mosquitto's bridge does: No Local (what the bridge publishes locally never
   * goes back out) and Retain As Published (retained messages stay retained on the remote).
   * Resolves with the granted QoS or reason code per filter.
   */
  subscribe(subscriptions: readonly LocalSubscription[]): Promise<number[]> {
    return this.request((messageId) => ({
      cmd: 'subscribe',
      messageId,
      subscriptions: subscriptions.map((s) => ({ topic: s.filter, qos: s.qos, nl: true, rap: true, rh: 0 })),
    }));
  }

  /** Publishes into the local broker; resolves once it accepted the message (QoS 0: once handed over). */
  publish(topic: string, payload: Buffer, qos: QoS, retain: boolean, properties: MessageProperties | undefined): Promise<void> {
    if (qos === 0) {
      if (this.closed) return Promise.reject(NOT_CONNECTED());
      this.feed({ cmd: 'publish', topic, payload, qos, retain, dup: false, ...(properties !== undefined ? { properties } : {}) });
      return Promise.resolve();
    }
    return this.request((messageId) => ({
      cmd: 'publish',
      topic,
      payload,
      qos,
      retain,
      dup: false,
      messageId,
      ...(properties !== undefined ? { properties } : {}),
    })).then(() => undefined);
  }

  /** A normal DISCONNECT (the will is not published; a persistent session stays). */
  disconnect(): void {
    if (this.closed) return;
    this.feed({ cmd: 'disconnect', reasonCode: 0 });
  }

  private request(make: (messageId: number) => Packet): Promise<number[]> {
    if (this.closed) return Promise.reject(NOT_CONNECTED());
    const messageId = this.allocatePacketId();
    return new Promise<number[]>((resolve, reject) => {
      this.pending.set(messageId, { resolve, reject });
      this.feed(make(messageId));
    });
  }

  private allocatePacketId(): number {
    // the pending map is bounded by the packet ID space: the bridge awaits each local publish
    for (let i = 0; i < 65535; i++) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
    throw new Error('no free packet identifier on the local bridge connection');
  }

  // ------------------------------------------------------------ into the channel

  private feed(packet: Packet): void {
    this.input.push(packet);
    if (this.feeding) return;
    this.feeding = true;
    // never re-enter the channel from inside its own send
    queueMicrotask(() => void this.drain());
  }

  private async drain(): Promise<void> {
    try {
      while (this.input.length > 0) {
        const packet = this.input.shift()!;
        const result = this.channel.handleIn(packet);
        if (result !== undefined) await result;
      }
    } catch (err) {
      this.close(`bridge_local_error: ${(err as Error).message}`);
    } finally {
      this.feeding = false;
    }
  }

  // ------------------------------------------------------------ ChannelSink

  send(packet: Packet): boolean {
    if (this.closed) return false;
    switch (packet.cmd) {
      case 'connack': {
        const code = packet.reasonCode ?? packet.returnCode ?? 0;
        const waiting = this.connecting;
        this.connecting = undefined;
        if (code === 0) waiting?.resolve(packet.sessionPresent);
        else waiting?.reject(new LocalConnectError(code));
        return true;
      }
      case 'suback':
        this.settle(packet.messageId, (p) => p.resolve(packet.granted as number[]));
        return true;
      case 'puback':
      case 'pubcomp':
        this.settle(packet.messageId, (p) => {
          const code = packet.reasonCode ?? 0;
          if (code >= 0x80) p.reject(new LocalPublishRefusedError(code));
          else p.resolve([]);
        });
        return true;
      case 'pubrec': {
        const code = packet.reasonCode ?? 0;
        if (code >= 0x80) this.settle(packet.messageId, (p) => p.reject(new LocalPublishRefusedError(code)));
        else this.feed({ cmd: 'pubrel', messageId: packet.messageId ?? 0 });
        return true;
      }
      case 'publish':
        this.handlers.onMessage(packet);
        if (packet.qos === 1) this.feed({ cmd: 'puback', messageId: packet.messageId ?? 0 });
        else if (packet.qos === 2) this.feed({ cmd: 'pubrec', messageId: packet.messageId ?? 0 });
        return true;
      case 'pubrel':
        this.feed({ cmd: 'pubcomp', messageId: packet.messageId ?? 0 });
        return true;
      default:
        // pingresp, unsuback, disconnect (followed by close)
        return true;
    }
  }

  private settle(messageId: number | undefined, action: (p: Pending) => void): void {
    if (messageId === undefined) return;
    const pending = this.pending.get(messageId);
    if (pending === undefined) return;
    this.pending.delete(messageId);
    action(pending);
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    const err = NOT_CONNECTED();
    this.connecting?.reject(err);
    this.connecting = undefined;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.input.length = 0;
    // as a Connection does once its stream closed: the channel ends, the broker forgets it
    queueMicrotask(() => {
      this.channel.handleClosed(reason);
      this.broker.releaseChannel(this.channel);
      this.handlers.onClosed(reason);
    });
  }

  setKeepAlive(_seconds: number): void {
    // in process: nothing to time out
  }

  setProtocolVersion(_version: ProtocolVersion): void {
    // packets are not encoded
  }

  setMaxOutgoingPacketSize(_bytes: number): void {
    // packets are not encoded
  }
}
