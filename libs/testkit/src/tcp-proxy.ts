import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
}

/**
 * A TCP forwarder on a fixed 127.0.0.1 port in front of a real server (nats-server,
 * redis-server), for outage tests that need exact timing: `cut()` drops the live connections
 * and keeps listening; `stop()` also refuses new ones (the server down); `listen()` again
 * brings it back on the same port; `freeze()` keeps the connections open but holds every byte
 * in both directions (a server that accepts and never answers) until `thaw()` lets them
 * through, in order.
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<Pair>();
  private frozen = false;

  constructor(
    readonly port: number,
    private readonly targetPort: number,
    /** URL scheme of `url`: `nats`, `redis`… */
    private readonly scheme: string,
  ) {}

  get url(): string {
    return `${this.scheme}://127.0.0.1:${this.port}`;
  }

  listen(): Promise<void> {
    const server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
      const pair: Pair = { client, upstream };
      this.pairs.add(pair);
      if (this.frozen) this.hold(pair);
      const close = (): void => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  /** Holds every byte in both directions; the connections stay open. */
  freeze(): void {
    this.frozen = true;
    for (const pair of this.pairs) this.hold(pair);
  }

  /** Lets the held bytes through, in order. */
  thaw(): void {
    this.frozen = false;
    for (const { client, upstream } of this.pairs) {
      client.resume();
      upstream.resume();
    }
  }

  /** Drops every forwarded connection (both ends); new ones are still accepted. */
  cut(): void {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Refuses new connections and drops the live ones (both ends). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.cut();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private hold({ client, upstream }: Pair): void {
    client.pause();
    upstream.pause();
  }
}
