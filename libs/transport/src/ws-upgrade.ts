import type http from 'node:http';
import type https from 'node:https';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream } from 'ws';

/** Where MQTT over WebSocket is served, and how large a message may be. */
export interface MqttUpgradeOptions {
  /** HTTP path of the MQTT endpoint, `/mqtt` by convention. */
  readonly path: string;
  /** Largest WebSocket message accepted, bytes. */
  readonly maxPayload: number;
}

/** The subprotocols MQTT clients ask for (MQTT 3.1.1 / 5.0 section 6). */
const SUBPROTOCOLS = ['mqtt', 'mqttv3.1'];

/** Sockets still open after close() waits this long are ended. */
const CLOSE_GRACE = 2000;

/** The answer to a plain HTTP request on an MQTT WebSocket endpoint. */
export function upgradeRequired(_req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: upgrade required\n');
}

/**
 * Serves MQTT over WebSocket on an HTTP or HTTPS server: upgrades on `options.path` with
 * an MQTT subprotocol (or none) become binary streams handed to `onStream` with their
 * request; other paths get 404, other subprotocols 400. Shared by WsListener and WssListener.
 */
export function serveMqttUpgrades(
  server: http.Server | https.Server,
  options: MqttUpgradeOptions,
  onStream: (stream: Duplex, req: http.IncomingMessage) => void,
): WebSocketServer {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayload,
    perMessageDeflate: false,
    // called only when the client offers subprotocols; those offering none still get MQTT
    handleProtocols: (protocols) => SUBPROTOCOLS.find((p) => protocols.has(p)) ?? false,
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== options.path) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
      return;
    }
    const offered = req.headers['sec-websocket-protocol'];
    if (offered !== undefined && !offered.split(',').some((p) => SUBPROTOCOLS.includes(p.trim()))) {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\nunsupported subprotocol\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      (req.socket as net.Socket).setNoDelay(true);
      const stream = createWebSocketStream(ws);
      // When the WebSocket closes (a close frame, or a TCP connection that died) the stream
      // only ends its readable side and never emits 'close' unless our side had finished
      // first. MQTT has no half-close: end it all, so the session ends and the will is due.
      stream.once('end', () => stream.destroy());
      onStream(stream, req);
    });
  });
  return wss;
}

/**
 * Stops accepting; after a grace period ends the WebSockets and connections still open.
 * `front`: the TCP server that accepts for `server` (PROXY protocol), which then listens nowhere.
 */
export async function closeHttpServer(
  server: http.Server | https.Server | undefined,
  wss: WebSocketServer | undefined,
  front?: net.Server,
): Promise<void> {
  const accepting = front ?? server;
  if (server === undefined || accepting === undefined || !accepting.listening) return;
  await new Promise<void>((resolve) => {
    accepting.close(() => resolve());
    setTimeout(() => {
      for (const client of wss?.clients ?? []) client.terminate();
      server.closeAllConnections();
    }, CLOSE_GRACE).unref();
  });
}
