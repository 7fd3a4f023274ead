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

/** For TCP and TLS listeners behind a load balancer (HAProxy `send-proxy[-v2]`, AWS NLB). */
export interface ProxyProtocolOptions {
  /**
   * Every connection starts with a PROXY protocol v1 or v2 header, whose source address
   * becomes ConnectionInfo's remoteAddress/remotePort; a connection without one is closed.
   * Enable only behind a proxy that always sends it: anyone else could claim any address.
   */
  readonly proxyProtocol?: boolean;
  /** Milliseconds to wait for the header (default 5000). */
  readonly proxyHeaderTimeout?: number;
}
