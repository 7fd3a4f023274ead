import net from 'node:net';
import { silentLog, type BrokerLog, type ConnectionInfo } from '@fleetmq/broker';
import type { AcceptHandler, Listener, ListenerOptions, ProxyProtocolOptions } from './listener.js';
import { DEFAULT_PROXY_HEADER_TIMEOUT, proxiedInfo, readProxyHeader } from './proxy-header-reader.js';

export interface TcpListenerOptions extends ListenerOptions, ProxyProtocolOptions {}

/** MQTT over plain TCP. */
export class TcpListener implements Listener {
  readonly transport = 'tcp';
  /** Connections closed for a missing or invalid PROXY header. */
  proxyHeaderRejections = 0;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly options: TcpListenerOptions,
    private readonly log: BrokerLog = silentLog,
  ) {}

  get name(): string {
    return this.options.name;
  }

  listen(accept: AcceptHandler): Promise<void> {
    const sockets = this.sockets;
    // one listener for every socket (a closure and a once-wrapper each would cost memory per connection)
    const forget = function (this: net.Socket): void {
      sockets.delete(this);
    };
    const server = net.createServer({ noDelay: true }, (socket) => {
      this.sockets.add(socket);
      socket.on('close', forget);
      const info: ConnectionInfo = {
        transport: this.transport,
        listener: this.options.name,
        remoteAddress: socket.remoteAddress ?? '',
        remotePort: socket.remotePort ?? 0,
      };
      if (this.options.proxyProtocol !== true) {
        accept(socket, info);
        return;
      }
      void readProxyHeader(socket, this.options.proxyHeaderTimeout ?? DEFAULT_PROXY_HEADER_TIMEOUT).then((read) => {
        if (read.ok) return accept(socket, proxiedInfo(info, read.header));
        this.proxyHeaderRejections++;
        this.log.debug({ listener: info.listener, remoteAddress: info.remoteAddress, reason: read.reason }, 'proxy_header_rejected');
      });
    });
    this.server = server;
    return listenOn(server, this.options);
  }

  address(): { host: string; port: number } {
    return boundAddress(this.server, this.options);
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === undefined || !server.listening) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // whatever the broker did not close in time goes now
      setTimeout(() => {
        for (const socket of this.sockets) socket.destroy();
      }, 2000).unref();
    });
  }
}

/** Starts `server` on host:port, rejecting with a message that names the listener. */
export function listenOn(server: net.Server, options: ListenerOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new Error(`listener ${options.name} cannot listen on ${options.host}:${options.port}: ${err.code ?? err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

export function boundAddress(server: net.Server | undefined, options: ListenerOptions): { host: string; port: number } {
  const address = server?.address();
  if (address !== null && typeof address === 'object') return { host: address.address, port: address.port };
  return { host: options.host, port: options.port };
}
