import http from 'node:http';
import type net from 'node:net';
import type { WebSocketServer } from 'ws';
import type { AcceptHandler, Listener, ListenerOptions } from './listener.js';
import { boundAddress, listenOn } from './tcp-listener.js';
import { closeHttpServer, serveMqttUpgrades, upgradeRequired, type MqttUpgradeOptions } from './ws-upgrade.js';

export interface WsListenerOptions extends ListenerOptions, MqttUpgradeOptions {}

/** MQTT over WebSocket: binary frames carry the MQTT byte stream. */
export class WsListener implements Listener {
  readonly transport = 'ws';
  private server: http.Server | undefined;
  private wss: WebSocketServer | undefined;

  constructor(private readonly options: WsListenerOptions) {}

  get name(): string {
    return this.options.name;
  }

  listen(accept: AcceptHandler): Promise<void> {
    const server = http.createServer(upgradeRequired);
    this.wss = serveMqttUpgrades(server, this.options, (stream, req) => {
      const raw = req.socket as net.Socket;
      accept(stream, {
        transport: this.transport,
        listener: this.options.name,
        remoteAddress: raw.remoteAddress ?? '',
        remotePort: raw.remotePort ?? 0,
      });
    });
    this.server = server;
    return listenOn(server, this.options);
  }

  address(): { host: string; port: number } {
    return boundAddress(this.server, this.options);
  }

  close(): Promise<void> {
    return closeHttpServer(this.server, this.wss);
  }
}
