/**
 * A raw MQTT 3.1.1 client for the load runner: one TCP socket (Nagle off), pre-built packets,
 * and a frame reader that decodes only what the runner needs. A subscriber acknowledges QoS 1
 * deliveries itself, all PUBACKs of one read in one write.
 */
import net from 'node:net';
import {
  FrameReader,
  PacketType,
  DISCONNECT,
  connectPacket,
  readPublish,
  subscribePacket,
  type ConnectOptions,
  type PublishView,
} from './wire.js';

export const HOST = '127.0.0.1';

export interface ClientEvents {
  /** Every benchmark PUBLISH received (the view is reused: copy what you keep). */
  onPublish?: (view: PublishView) => void;
  /** A PUBACK for a packet this client published. */
  onPuback?: (packetId: number) => void;
  /** Called after each chunk read from the socket was processed (batch hook). */
  onChunk?: () => void;
}

/**
 * Every socket of the runner reads into this one buffer (net's `onread`): no Buffer and no
 * stream 'data' event per read. Safe because each read is fully handled before the next.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

/** A socket to host:port (Nagle off) whose reads go to `deliver`. */
function openSocket(port: number, host: string, deliver: (chunk: Buffer) => void, localAddress?: string): net.Socket {
  return net.connect({
    host,
    port,
    noDelay: true,
    ...(localAddress !== undefined ? { localAddress } : {}),
    onread: {
      buffer: READ_BUFFER,
      callback: (bytes: number, buf: Uint8Array): boolean => {
        deliver(Buffer.from(buf.buffer, buf.byteOffset, bytes));
        return true;
      },
    },
  });
}

export class ClientError extends Error {
  override readonly name = 'ClientError';
}

export class RawClient {
  readonly socket: net.Socket;
  private readonly reader: FrameReader;
  private readonly view: PublishView = { qos: 0, dup: false, packetId: 0, stream: 0, seq: 0, sentAt: 0 };
  private acks: number[] = [];
  private connack: ((ok: boolean, code: number, sessionPresent: boolean) => void) | undefined;
  private readonly subacks = new Map<number, (granted: number) => void>();
  private nextSubscribeId = 1;
  events: ClientEvents = {};
  /** Acknowledge QoS 1 deliveries (a subscriber). */
  autoAck = true;
  /** Publishes that were not benchmark payloads (foreign traffic, e.g. $SYS). */
  foreign = 0;
  closed = false;

  private constructor(port: number, host: string, localAddress?: string) {
    this.reader = new FrameReader((header, buf, start, end) => this.frame(header, buf, start, end));
    const socket = openSocket(
      port,
      host,
      (chunk) => {
        this.reader.push(chunk);
        if (this.acks.length > 0) this.flushAcks();
        this.events.onChunk?.();
      },
      localAddress,
    );
    this.socket = socket;
    socket.on('close', () => {
      this.closed = true;
      this.connack?.(false, -1, false);
      this.connack = undefined;
      for (const [, resolve] of this.subacks) resolve(0x80);
      this.subacks.clear();
    });
    socket.on('error', () => undefined); // 'close' follows
  }

  /** Opens a socket, sends CONNECT and resolves on CONNACK 0 (rejects on refusal, close or timeout). */
  static async connect(port: number, options: ConnectOptions & { timeoutMs?: number; host?: string }): Promise<RawClient> {
    const client = new RawClient(port, options.host ?? HOST);
    await client.handshake(connectPacket(options), options.timeoutMs ?? 10_000);
    return client;
  }

  /**
   * Opens a socket (from `localAddress` when given, any 127.x.y.z) and sends a pre-built
   * CONNECT; resolves with the client and session present.
   */
  static async open(port: number, connect: Buffer, timeoutMs = 10_000, localAddress?: string): Promise<{ client: RawClient; sessionPresent: boolean }> {
    const client = new RawClient(port, HOST, localAddress);
    const sessionPresent = await client.handshake(connect, timeoutMs);
    return { client, sessionPresent };
  }

  /** Sends a pre-built CONNECT once the socket is open; resolves with session present. */
  handshake(connect: Buffer, timeoutMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.connack = undefined;
        this.socket.destroy();
        reject(new ClientError(`no CONNACK within ${timeoutMs} ms`));
      }, timeoutMs);
      this.connack = (ok, code, sessionPresent) => {
        clearTimeout(timer);
        this.connack = undefined;
        if (ok) resolve(sessionPresent);
        else {
          this.socket.destroy();
          reject(new ClientError(code < 0 ? 'connection closed before CONNACK' : `CONNACK refused with return code ${code}`));
        }
      };
      if (this.socket.connecting) this.socket.once('connect', () => this.socket.write(connect));
      else this.socket.write(connect);
    });
  }

  async subscribe(topicFilter: string, qos: 0 | 1, timeoutMs = 10_000): Promise<void> {
    const packetId = this.nextSubscribeId++;
    const granted = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.subacks.delete(packetId);
        reject(new ClientError(`no SUBACK for ${topicFilter} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.subacks.set(packetId, (g) => {
        clearTimeout(timer);
        resolve(g);
      });
      this.socket.write(subscribePacket(packetId, topicFilter, qos));
    });
    if (granted === 0x80) throw new ClientError(`subscription to ${topicFilter} refused`);
  }

  write(bytes: Buffer): boolean {
    return this.socket.write(bytes);
  }

  /** True while the socket's buffer is below its high-water mark. */
  get writable(): boolean {
    return !this.socket.writableNeedDrain && !this.closed;
  }

  /**
   * DISCONNECT, then waits for the broker to close (destroys after `timeoutMs`). The broker
   * closes first, so TIME_WAIT stays on its side and the runner's ephemeral ports are free
   * again for the next run.
   */
  async disconnect(timeoutMs = 3_000): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.write(DISCONNECT);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private frame(header: number, buf: Buffer, start: number, end: number): void {
    switch (header >> 4) {
      case PacketType.PUBLISH: {
        const view = this.view;
        if (!readPublish(header, buf, start, end, view)) {
          this.foreign++;
          if (view.qos === 1 && this.autoAck) this.acks.push(view.packetId);
          return;
        }
        if (view.qos === 1 && this.autoAck) this.acks.push(view.packetId);
        this.events.onPublish?.(view);
        return;
      }
      case PacketType.PUBACK:
        this.events.onPuback?.(buf.readUInt16BE(start));
        return;
      case PacketType.CONNACK: {
        const code = buf[start + 1]!;
        this.connack?.(code === 0, code, (buf[start]! & 1) === 1);
        return;
      }
      case PacketType.SUBACK: {
        const packetId = buf.readUInt16BE(start);
        const resolve = this.subacks.get(packetId);
        this.subacks.delete(packetId);
        resolve?.(buf[start + 2] ?? 0x80);
        return;
      }
      default:
        return;
    }
  }

  private flushAcks(): void {
    const acks = this.acks;
    const out = Buffer.allocUnsafe(acks.length * 4);
    for (let i = 0; i < acks.length; i++) {
      const at = i * 4;
      out[at] = 0x40;
      out[at + 1] = 0x02;
      out.writeUInt16BE(acks[i]!, at + 2);
    }
    this.acks = [];
    this.socket.write(out);
  }
}

/** Opens `count` clients with at most `concurrency` handshakes in flight (in index order). */
export async function connectMany<T>(count: number, concurrency: number, open: (index: number) => Promise<T>): Promise<T[]> {
  const clients: T[] = new Array<T>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      clients[i] = await open(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return clients;
}
