import http from 'node:http';
import net from 'node:net';
import type { WebSocketServer } from 'ws';
import { silentLog, type BrokerLog, type ConnectionInfo } from '@fleetmq/broker';
import type { AcceptHandler, Listener, ListenerOptions, ProxyProtocolOptions } from './listener.js';
import type { ProxyHeader } from './proxy-protocol.js';
import { DEFAULT_PROXY_HEADER_TIMEOUT, proxiedInfo, readProxyHeader } from './proxy-header-reader.js';
import { boundAddress, listenOn } from './tcp-listener.js';
import { closeHttpServer, serveMqttUpgrades, upgradeRequired, type MqttUpgradeOptions } from './ws-upgrade.js';

export interface WsListenerOptions extends ListenerOptions, MqttUpgradeOptions, ProxyProtocolOptions {}

/**
 * MQTT over WebSocket: binary frames carry the MQTT byte stream. With `proxyProtocol` (a load
 * balancer that terminates TLS on 443 and forwards plain WebSocket, as an AWS NLB does) the
 * PROXY header is read off each TCP connection before the HTTP server sees it, and the
 * client's address reaches logs, ACLs and limits.
 */
export class WsListener implements Listener {
  readonly transport = 'ws';
  /** Connections closed for a missing or invalid PROXY header. */
  proxyHeaderRejections = 0;
  private server: http.Server | undefined;
  /** With PROXY protocol: the TCP server in front of the HTTP server (which then listens nowhere). */
  private front: net.Server | undefined;
  private wss: WebSocketServer | undefined;
  private readonly headers = new WeakMap<net.Socket, ProxyHeader>();

  constructor(
    private readonly options: WsListenerOptions,
    private readonly log: BrokerLog = silentLog,
  ) {}

  get name(): string {
    return this.options.name;
  }

  listen(accept: AcceptHandler): Promise<void> {
    const server = http.createServer(upgradeRequired);
    this.wss = serveMqttUpgrades(server, this.options, (stream, req) => {
      const raw = req.socket as net.Socket;
      const info: ConnectionInfo = {
        transport: this.transport,
        listener: this.options.name,
        remoteAddress: raw.remoteAddress ?? '',
        remotePort: raw.remotePort ?? 0,
      };
      const header = this.headers.get(raw);
      accept(stream, header === undefined ? info : proxiedInfo(info, header));
    });
    this.server = server;
    if (this.options.proxyProtocol !== true) return listenOn(server, this.options);
    const timeout = this.options.proxyHeaderTimeout ?? DEFAULT_PROXY_HEADER_TIMEOUT;
    const front = net.createServer({ noDelay: true }, (socket) => {
      void readProxyHeader(socket, timeout).then((read) => {
        if (read.ok) {
          this.headers.set(socket, read.header);
          server.emit('connection', socket);
          return;
        }
        this.proxyHeaderRejections++;
        this.log.debug({ listener: this.options.name, remoteAddress: socket.remoteAddress, reason: read.reason }, 'proxy_header_rejected');
      });
    });
    this.front = front;
    return listenOn(front, this.options);
  }

  address(): { host: string; port: number } {
    return boundAddress(this.front ?? this.server, this.options);
  }

  close(): Promise<void> {
    return closeHttpServer(this.server, this.wss, this.front);
  }
}
