import http from 'node:http';
import type net from 'node:net';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { AcceptHandler, Listener, ListenerOptions } from './listener.js';
import { boundAddress, listenOn } from './tcp-listener.js';

export interface WsListenerOptions extends ListenerOptions {
  /** HTTP path of the MQTT endpoint, `/mqtt` by convention. */
  readonly path: string;
  /** Largest WebSocket message accepted, bytes. */
  readonly maxPayload: number;
}

/** The subprotocols MQTT clients ask for (MQTT 3.1.1 / 5.0 section 6). */
const SUBPROTOCOLS = ['mqtt', 'mqttv3.1'];

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
    const server = http.createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: upgrade required\n');
    });
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.options.maxPayload,
      perMessageDeflate: false,
      // called only when the client offers subprotocols; those offering none still get MQTT
      handleProtocols: (protocols) => SUBPROTOCOLS.find((p) => protocols.has(p)) ?? false,
    });
    server.on('upgrade', (req, socket, head) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== this.options.path) {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
        return;
      }
      const offered = req.headers['sec-websocket-protocol'];
      if (offered !== undefined && !offered.split(',').some((p) => SUBPROTOCOLS.includes(p.trim()))) {
        socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\nunsupported subprotocol\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        const raw = req.socket as net.Socket;
        raw.setNoDelay(true);
        const stream = createWebSocketStream(ws);
        // When the WebSocket closes (a close frame, or a TCP connection that died) the stream
        // only ends its readable side and never emits 'close' unless our side had finished
        // first. MQTT has no half-close: end it all, so the session ends and the will is due.
        stream.once('end', () => stream.destroy());
        accept(stream, {
          transport: this.transport,
          listener: this.options.name,
          remoteAddress: raw.remoteAddress ?? '',
          remotePort: raw.remotePort ?? 0,
        });
      });
    });
    this.server = server;
    this.wss = wss;
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
      setTimeout(() => {
        for (const client of this.wss?.clients ?? []) client.terminate();
        server.closeAllConnections();
      }, 2000).unref();
    });
  }
}
