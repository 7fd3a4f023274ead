import type { Duplex } from 'node:stream';
import type { ConnectionInfo } from '@fleetmq/broker';

/** Called once per accepted client stream. */
export type AcceptHandler = (stream: Duplex, info: ConnectionInfo) => void;

/**
 * A network endpoint that turns accepted sockets into byte streams. It knows nothing of
 * MQTT: the Connection on top parses packets.
 */
export interface Listener {
  readonly name: string;
  readonly transport: string;
  listen(accept: AcceptHandler): Promise<void>;
  /** Where it listens (the real port when 0 was asked for). */
  address(): { host: string; port: number };
  /** Stops accepting; open connections are closed by the broker's shutdown. */
  close(): Promise<void>;
}

export interface ListenerOptions {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}
