import { createConnection, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

/**
 * A TCP forwarder on a fixed 127.0.0.1 port, for outage tests that need exact timing: while
 * it is not listening, connections to its port are refused; `cut()` drops every live
 * connection at once. It forwards to a real server; it is not one.
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly port: number,
    private readonly targetPort: number,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  listen(): Promise<void> {
    const server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
      this.sockets.add(client);
      this.sockets.add(upstream);
      const close = (): void => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
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

  /** Drops every forwarded connection (both ends). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  async close(): Promise<void> {
    this.cut();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
