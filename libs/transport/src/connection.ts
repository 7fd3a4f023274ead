import type { Duplex } from 'node:stream';
import mqtt, { type Packet } from 'mqtt-packet';
import { ReasonCode, type ProtocolVersion } from '@fleetmq/protocol';
import type { Broker, BrokerLog, Channel, ChannelSink, ConnectionInfo } from '@fleetmq/broker';
import { decodeFast, encodeConnack3, encodePublish, isFastCandidate, encodeShortAck, parseFrames, readFixedHeader, settingsOf, wholeSize, type FrameSink } from './frame.js';
import { keepAliveWheel, type KeepAliveWatched } from './keep-alive-wheel.js';
import { checkPacket } from './packet-rules.js';

export interface ConnectionOptions {
  /** Largest packet accepted from the client, bytes (whole packet, fixed header included). */
  readonly maxPacketSize: number;
  /**
   * Bytes the client may leave unread. Above it the client is congested: it loses QoS 0
   * messages, and is disconnected when it stays above for `slowConsumerTimeout` ms or
   * reaches four times the limit.
   */
  readonly outputBufferLimit: number;
  /** Milliseconds a client may stay congested before it is disconnected (default 30 s). */
  readonly slowConsumerTimeout?: number;
  /** Milliseconds to wait for CONNECT. */
  readonly connectTimeout: number;
}

/** Unread output beyond this many times outputBufferLimit closes the connection at once. */
const HARD_LIMIT_FACTOR = 4;
const DEFAULT_SLOW_CONSUMER_TIMEOUT = 30_000;

/** Packets parsed while the channel is busy; past this many the socket stops being read. */
const PENDING_HIGH_WATER = 64;

/** mqtt-packet's encoder options, one object per protocol version. */
/** The Connection that owns a stream, for listeners shared by all streams. */
const OWNER = Symbol('fleetmq.connection');
type OwnedStream = Duplex & { [OWNER]: Connection };

function onStreamData(this: OwnedStream, chunk: Buffer): void {
  this[OWNER].onData(chunk);
}

function onStreamError(this: OwnedStream, err: Error): void {
  this[OWNER].onError(err);
}

function onStreamClose(this: OwnedStream): void {
  this[OWNER].onClose();
}

function onConnectTimeout(connection: Connection): void {
  connection.onConnectTimeout();
}

const GENERATE_OPTIONS: Readonly<Record<ProtocolVersion, { protocolVersion: ProtocolVersion }>> = {
  3: { protocolVersion: 3 },
  4: { protocolVersion: 4 },
  5: { protocolVersion: 5 },
};

/**
 * Streams with output written this turn of the event loop: corked at their first write,
 * uncorked together in one nextTick, so that what a turn writes to a client goes out in one
 * system call (writev) and a fan-out schedules one callback, not one per subscriber.
 */
let corked: Connection[] = [];

function uncorkAll(): void {
  const connections = corked;
  corked = [];
  for (const connection of connections) connection.uncork();
}

/**
 * One client connection (after emqx_connection): owns the stream, the mqtt-packet parser
 * and writer, backpressure, size limits, keep alive and the connect timeout. It feeds the
 * channel one packet at a time, in order, waiting when the channel says so.
 */
export class Connection implements ChannelSink, FrameSink, KeepAliveWatched {
  readonly channel: Channel;
  /** mqtt-packet's settings for this connection (the CONNECT, once parsed), lent to the shared parser. */
  parserSettings: object = {};
  /** The chunks of a packet that has not fully arrived, their length, and the length it needs. */
  private partial: Buffer[] | undefined;
  private partialLength = 0;
  private partialNeeded = 0;
  /** Packets parsed while the channel was busy (created on first need). */
  private pending: Packet[] | undefined;
  private busy = false;
  private paused = false;
  private closed = false;
  private corked = false;
  private protocolVersion: ProtocolVersion = 4;
  private maxOutgoing = Number.POSITIVE_INFINITY;
  /** Largest packet accepted: the node's maximum, or the client's policy once CONNECT set it. */
  private maxIncoming: number;
  private keepAliveMs = 0;
  private lastActivity = Date.now();
  /** Until CONNECT: the connect timeout. After it, keep-alive is watched by keepAliveWheel. */
  private timer: NodeJS.Timeout | undefined;
  /** @internal */
  keepAliveSlot: Set<KeepAliveWatched> | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private closeReason = 'client_closed';
  private readonly log: BrokerLog;
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    private readonly stream: Duplex,
    readonly info: ConnectionInfo,
    private readonly broker: Broker,
    private readonly options: ConnectionOptions,
    log: BrokerLog,
  ) {
    this.log = log;
    this.maxIncoming = options.maxPacketSize;
    this.channel = broker.createChannel(this, info);
    // one set of listeners for every stream, not three closures per connection
    (stream as OwnedStream)[OWNER] = this;
    stream.on('data', onStreamData);
    stream.on('error', onStreamError);
    stream.on('close', onStreamClose);
    this.timer = setTimeout(onConnectTimeout, options.connectTimeout, this);
    this.timer.unref();
  }

  /** @internal A stream error: the close that follows says why. */
  onError(err: Error): void {
    this.closeReason = 'socket_error';
    this.log.debug({ err: err.message, remoteAddress: this.info.remoteAddress }, 'socket_error');
  }

  // ------------------------------------------------------------------ input

  /** @internal */
  onData(chunk: Buffer): void {
    if (this.closed) return;
    this.bytesIn += chunk.length;
    this.broker.stats.bytesIn += chunk.length;
    this.lastActivity = Date.now();
    let buf = chunk;
    if (this.partial !== undefined) {
      // a large packet is joined once, when all of it is here
      this.partial.push(chunk);
      this.partialLength += chunk.length;
      if (this.partialLength < this.partialNeeded) return;
      buf = Buffer.concat(this.partial, this.partialLength);
      this.partial = undefined;
    }
    // whole packets: PUBLISH and acknowledgements decoded here, runs of the others parsed by
    // mqtt-packet together; the start of the next one waits for the rest
    let end = 0;
    let slow = 0;
    let needed = 0;
    while (end < buf.length && !this.closed) {
      const header = readFixedHeader(buf, end);
      if (header === undefined) break;
      if (header === -1) {
        // a fifth length byte: the packets before it go on, then mqtt-packet says why
        parseFrames(this, buf.subarray(slow));
        if (!this.closed) this.refuse(ReasonCode.MalformedPacket, 'malformed packet: invalid remaining length', undefined);
        return;
      }
      // a packet still arriving is refused as soon as its header says it is too large
      if (wholeSize(header.remaining) > this.maxIncoming) {
        if (end > slow) parseFrames(this, buf.subarray(slow, end));
        if (!this.closed) this.tooLarge(header.remaining);
        return;
      }
      const next = end + header.headerSize + header.remaining;
      if (next > buf.length) {
        needed = next - end;
        break;
      }
      if (isFastCandidate(buf[end]!)) {
        // what came before goes first (a CONNECT sets the protocol version the next is read in)
        if (end > slow) {
          parseFrames(this, buf.subarray(slow, end));
          slow = end;
          if (this.closed) return;
        }
        const packet = decodeFast(buf, end, header.headerSize, header.remaining, this.protocolVersion);
        if (packet !== undefined) {
          // the packets after a CONNECT are read in its protocol version, as mqtt-packet would
          if (packet.cmd === 'connect') this.parserSettings = settingsOf(packet);
          this.onFramePacket(packet);
          slow = next;
        }
      }
      end = next;
    }
    if (this.closed) return;
    if (end < buf.length) {
      // copied: a view would keep the whole chunk alive
      this.partial = [Buffer.from(buf.subarray(end))];
      this.partialLength = buf.length - end;
      this.partialNeeded = needed;
    }
    if (end > slow) parseFrames(this, slow === 0 && end === buf.length ? buf : buf.subarray(slow, end));
  }

  /** @internal The shared parser read a packet of this connection. */
  onFramePacket(packet: Packet): void {
    if (this.closed) return;
    // a policy limit CONNECT set applies from the next packet on
    const length = packet.length ?? 0;
    if (wholeSize(length) > this.maxIncoming) return this.tooLarge(length);
    if (this.busy) {
      const pending = (this.pending ??= []);
      pending.push(packet);
      if (pending.length >= PENDING_HIGH_WATER && !this.paused) {
        this.paused = true;
        this.stream.pause();
      }
      return;
    }
    this.process(packet);
  }

  private process(packet: Packet): void {
    const version = packet.cmd === 'connect' ? ((packet.protocolVersion ?? 4) as ProtocolVersion) : this.protocolVersion;
    const violation = checkPacket(packet, version);
    if (violation !== undefined) return this.refuse(violation.reasonCode, violation.reason, packet.cmd === 'connect' ? version : undefined);
    let result: void | Promise<void>;
    try {
      result = this.channel.handleIn(packet);
    } catch (err) {
      return this.internalError(err);
    }
    if (result !== undefined) {
      this.busy = true;
      result.then(
        () => this.resume(),
        (err: unknown) => this.internalError(err),
      );
    }
  }

  private resume(): void {
    this.busy = false;
    const pending = this.pending;
    while (!this.busy && !this.closed && pending !== undefined && pending.length > 0) this.process(pending.shift()!);
    if (!this.busy && this.paused && !this.closed) {
      this.paused = false;
      this.stream.resume();
    }
  }

  /** @internal The shared parser refused a packet of this connection. */
  onFrameError(err: Error, partial: Partial<Packet> & { length: number; protocolVersion?: number }): void {
    if (this.closed) return;
    if (this.channel.state === 'connecting' && err.message === 'Invalid protocol version') {
      // [MQTT-3.1.2-2] an unsupported level gets CONNACK 0x01, in the 3.1.1 format every client reads
      this.log.info({ remoteAddress: this.info.remoteAddress }, 'connect_refused_protocol_version');
      this.writeRaw(Buffer.from([0x20, 0x02, 0x00, 0x01]));
      return this.close('unsupported_protocol_version');
    }
    const connectVersion = partial.cmd === 'connect' ? partial.protocolVersion : undefined;
    this.refuse(parseErrorReasonCode(err, partial, this.protocolVersion), `malformed packet: ${err.message}`, connectVersion);
  }

  /**
   * A packet that may not go on: MQTT 5 gets DISCONNECT with the reason code once
   * connected, and a CONNECT of level 5 gets CONNACK with it (3.1.4, 4.13); 3.x is closed
   * without a word, CONNECT included [MQTT-3.1.4-1, MQTT-4.8.0-1].
   */
  private refuse(reasonCode: number, reason: string, connectVersion: number | undefined): void {
    if (this.closed) return;
    if (this.channel.state === 'connecting' && connectVersion === 5) {
      this.writeRaw(mqtt.generate({ cmd: 'connack', sessionPresent: false, reasonCode }, { protocolVersion: 5 }));
    }
    // the channel writes the one log line (client_closed, with the reason)
    this.channel.disconnect(reasonCode, reason);
    this.close(reasonCode === ReasonCode.MalformedPacket ? 'malformed_packet' : 'protocol_error');
  }

  private tooLarge(remainingLength: number): void {
    // [MQTT-3.1.2-24 / 4.13] a packet above Maximum Packet Size: DISCONNECT 0x95 on MQTT 5
    const size = wholeSize(remainingLength);
    this.broker.stats.limits.packetSize++;
    this.channel.disconnect(ReasonCode.PacketTooLarge, `packet of ${size} bytes exceeds ${this.maxIncoming}`);
    this.close('packet_too_large');
  }

  private internalError(err: unknown): void {
    // a throw is a bug: this one client goes, the process stays
    this.log.error({ err, clientId: this.channel.clientId }, 'channel_error');
    this.channel.disconnect(ReasonCode.UnspecifiedError, 'internal error');
    this.close('internal_error');
  }

  // ----------------------------------------------------------------- output

  send(packet: Packet): boolean {
    if (this.closed) return false;
    let buf: Buffer;
    try {
      // MQTT 5 (3.4.2.1): with reason code 0 and no properties an acknowledgement is its
      // packet ID alone (some clients, paho-mqtt 1.6, cannot read a long PUBREL)
      buf =
        packet.cmd === 'publish'
          ? encodePublish(packet, this.protocolVersion, GENERATE_OPTIONS[this.protocolVersion])
          : (encodeShortAck(packet) ?? encodeConnack3(packet, this.protocolVersion) ?? mqtt.generate(packet, GENERATE_OPTIONS[this.protocolVersion]));
    } catch (err) {
      this.log.error({ err, cmd: packet.cmd }, 'packet_encode_failed');
      return false;
    }
    if (buf.length > this.maxOutgoing) return false;
    this.writeRaw(buf);
    return true;
  }

  private writeRaw(buf: Buffer): void {
    if (!this.corked) {
      // batch what one turn of the event loop writes into one system call
      this.corked = true;
      this.stream.cork();
      if (corked.push(this) === 1) process.nextTick(uncorkAll);
    }
    this.bytesOut += buf.length;
    this.broker.stats.bytesOut += buf.length;
    this.stream.write(buf);
    const buffered = this.stream.writableLength;
    if (buffered <= this.options.outputBufferLimit) return;
    if (buffered > HARD_LIMIT_FACTOR * this.options.outputBufferLimit) {
      // memory per connection is bounded, whatever the client does
      this.dropSlowConsumer(buffered);
    } else if (this.stallTimer === undefined) {
      // a burst (retained messages, a drained queue) is fine if the client reads it in time
      this.stallTimer = setTimeout(() => {
        this.stallTimer = undefined;
        if (this.congested) this.dropSlowConsumer(this.stream.writableLength);
      }, this.options.slowConsumerTimeout ?? DEFAULT_SLOW_CONSUMER_TIMEOUT);
      this.stallTimer.unref();
      this.stream.once('drain', () => {
        clearTimeout(this.stallTimer);
        this.stallTimer = undefined;
      });
    }
  }

  get congested(): boolean {
    return this.stream.writableLength > this.options.outputBufferLimit;
  }

  private dropSlowConsumer(buffered: number): void {
    if (this.closed) return;
    this.log.info({ clientId: this.channel.clientId, buffered }, 'output_buffer_limit_exceeded');
    this.closeReason = 'output_buffer_limit';
    this.closed = true;
    this.stream.destroy();
  }

  /** @internal Writes what this turn corked. */
  uncork(): void {
    this.corked = false;
    this.stream.uncork();
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.partial = undefined;
    this.stream.end();
    // a peer that never reads its end cannot hold the socket open
    setTimeout(() => this.stream.destroy(), 2000).unref();
  }

  setKeepAlive(seconds: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.keepAliveMs = seconds * 1000;
    // counted from the CONNACK: opening the session may have taken a while (a takeover)
    this.lastActivity = Date.now();
    if (seconds > 0 && !this.closed) keepAliveWheel.watch(this);
    else keepAliveWheel.unwatch(this);
  }

  setProtocolVersion(version: ProtocolVersion): void {
    this.protocolVersion = version;
  }

  setMaxOutgoingPacketSize(bytes: number): void {
    this.maxOutgoing = bytes;
  }

  setMaxIncomingPacketSize(bytes: number): void {
    this.maxIncoming = Math.min(this.options.maxPacketSize, bytes);
  }

  // ----------------------------------------------------------------- timers

  /** @internal One and a half keep-alive periods after the last packet [MQTT-3.1.2-24]. */
  keepAliveDeadline(): number {
    return this.lastActivity + this.keepAliveMs * 1.5;
  }

  /** @internal */
  keepAliveExpired(): void {
    if (this.closed) return;
    this.channel.disconnect(ReasonCode.KeepAliveTimeout, 'keep alive timeout');
    this.close('keep_alive_timeout');
  }

  /** @internal */
  onConnectTimeout(): void {
    this.timer = undefined;
    if (this.channel.state !== 'connecting' || this.closed) return;
    this.log.info({ remoteAddress: this.info.remoteAddress }, 'connect_timeout');
    this.close('connect_timeout');
    this.stream.destroy();
  }

  /** @internal */
  onClose(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer);
    this.timer = undefined;
    keepAliveWheel.unwatch(this);
    this.channel.handleClosed(this.closeReason);
    this.broker.releaseChannel(this.channel);
  }

  get version(): ProtocolVersion {
    return this.protocolVersion;
  }
}

/**
 * The reason code for what mqtt-packet's parser refused: Malformed Packet, except where
 * the spec calls it a Protocol Error (3.8.3.1: Maximum QoS 3, Retain Handling 3), and an
 * AUTH of Remaining Length 0, which mqtt-packet cannot read but is well formed (3.15.2.1):
 * it carries no Authentication Method, and none was agreed [MQTT-4.12.0-7].
 */
function parseErrorReasonCode(err: Error, partial: { cmd?: string; length: number }, version: ProtocolVersion): number {
  if (err.message === 'Invalid subscribe QoS, must be <= 2' || err.message === 'Invalid retain handling, must be <= 2') {
    return ReasonCode.ProtocolError;
  }
  if (version === 5 && partial.cmd === 'auth' && partial.length === 0) return ReasonCode.ProtocolError;
  return ReasonCode.MalformedPacket;
}
