import net from 'node:net';
import type { Duplex } from 'node:stream';
import mqtt, { type Packet } from 'mqtt-packet';
import type { MqttVersion } from './packets.js';

/** A received packet reduced to what tests compare: its command and its codes. */
export type PacketSummary =
  | { cmd: 'connack'; code: number }
  | { cmd: 'disconnect'; reasonCode: number }
  | { cmd: 'suback' | 'unsuback'; codes: number[] }
  | { cmd: Exclude<Packet['cmd'], 'connack' | 'disconnect' | 'suback' | 'unsuback'> };

export function summarizePacket(p: Packet): PacketSummary {
  switch (p.cmd) {
    case 'connack':
      return { cmd: 'connack', code: p.reasonCode ?? p.returnCode ?? -1 };
    case 'disconnect':
      return { cmd: 'disconnect', reasonCode: p.reasonCode ?? 0 };
    case 'suback':
      return { cmd: 'suback', codes: [...p.granted] as number[] };
    case 'unsuback':
      return { cmd: 'unsuback', codes: [...((p.granted as number[] | undefined) ?? [])] };
    default:
      return { cmd: p.cmd };
  }
}

/**
 * A raw MQTT client for tests: bytes out as given, packets in parsed by mqtt-packet in
 * one protocol version, and the moment the server ends the stream. No protocol logic, so
 * it can send what no real client would.
 */
export class RawMqttClient {
  readonly packets: Packet[] = [];
  /** Errors of the parser: the server sent bytes that are not valid packets. */
  readonly parseErrors: string[] = [];
  /** The server ended or closed the stream. */
  closed = false;
  /** Milliseconds since construction when `closed` became true. */
  closedAfter: number | undefined;
  private readonly started = Date.now();
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly stream: Duplex,
    version: MqttVersion,
  ) {
    const parser = mqtt.parser({ protocolVersion: version });
    parser.on('packet', (p: Packet) => {
      this.packets.push(p);
      this.wake();
    });
    parser.on('error', (err: Error) => {
      this.parseErrors.push(err.message);
      this.wake();
    });
    stream.on('data', (chunk: Buffer) => parser.parse(chunk));
    stream.on('error', () => undefined); // a reset after the server closed
    const onClosed = (): void => {
      if (this.closed) return;
      this.closed = true;
      this.closedAfter = Date.now() - this.started;
      this.wake();
    };
    stream.on('end', onClosed);
    stream.on('close', onClosed);
  }

  /** Connects over TCP to 127.0.0.1:port. */
  static tcp(port: number, version: MqttVersion): Promise<RawMqttClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => {
        socket.off('error', reject);
        resolve(new RawMqttClient(socket, version));
      });
      socket.once('error', reject);
    });
  }

  write(bytes: Buffer): void {
    this.stream.write(bytes);
  }

  /** Resolves true once `done()` holds, false when `ms` have passed first. */
  async until(done: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const finish = (): void => {
          clearTimeout(timer);
          this.waiters.delete(finish);
          resolve();
        };
        const timer = setTimeout(finish, left);
        this.waiters.add(finish);
      });
    }
    return true;
  }

  /** Waits up to `ms` for `count` packets (or the close). */
  packetsOrClose(count: number, ms: number): Promise<boolean> {
    return this.until(() => this.packets.length >= count || this.closed, ms);
  }

  /** The packets received so far, summarized, and forgotten. */
  take(): PacketSummary[] {
    return this.packets.splice(0).map(summarizePacket);
  }

  destroy(): void {
    this.stream.destroy();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
