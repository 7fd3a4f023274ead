import https from 'node:https';
import type tls from 'node:tls';
import type { WebSocketServer } from 'ws';
import { silentLog, type BrokerLog } from '@fleetmq/broker';
import { clientCertificateOf, clientCertificateRefusal } from './client-certificate.js';
import type { AcceptHandler, Listener, ListenerOptions } from './listener.js';
import { boundAddress, listenOn } from './tcp-listener.js';
import { allowsLegacyVersions, tlsServerOptions, validateTlsOptions, type TlsOptions } from './tls-options.js';
import { TlsReloader } from './tls-reloader.js';
import { closeHttpServer, serveMqttUpgrades, upgradeRequired, type MqttUpgradeOptions } from './ws-upgrade.js';

export interface WssListenerOptions extends ListenerOptions, MqttUpgradeOptions, TlsOptions {}

/**
 * MQTT over secure WebSocket (8084): WsListener's path and subprotocol rules on an HTTPS
 * server with TlsListener's TLS options, mutual TLS and certificate reload.
 */
export class WssListener implements Listener {
  readonly transport = 'wss';
  /** Handshakes that failed (protocol version, no or invalid client certificate, timeout). */
  handshakeFailures = 0;
  private readonly reloader: TlsReloader;
  private server: https.Server | undefined;
  private wss: WebSocketServer | undefined;

  constructor(
    private readonly options: WssListenerOptions,
    private readonly log: BrokerLog = silentLog,
  ) {
    validateTlsOptions(options.name, options);
    this.reloader = new TlsReloader(options.name, options, log);
  }

  get name(): string {
    return this.options.name;
  }

  get reloads(): number {
    return this.reloader.reloads;
  }

  get reloadFailures(): number {
    return this.reloader.reloadFailures;
  }

  get certificateFingerprint256(): string {
    return this.reloader.fingerprint256;
  }

  reloadCertificates(): Promise<boolean> {
    return this.reloader.check();
  }

  async listen(accept: AcceptHandler): Promise<void> {
    const context = await this.reloader.load();
    if (allowsLegacyVersions(this.options)) this.log.warn({ listener: this.options.name, minVersion: this.options.minVersion }, 'tls_legacy_versions_enabled');
    const mode = this.options.clientCertificate ?? 'none';
    const server = https.createServer({ ...context, ...tlsServerOptions(this.options) }, upgradeRequired);
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      const refusal = clientCertificateRefusal(socket, mode);
      if (refusal === undefined) return;
      this.handshakeFailures++;
      this.log.debug({ listener: this.options.name, remoteAddress: socket.remoteAddress, reason: refusal }, 'tls_handshake_failed');
      socket.destroy();
    });
    // with a listener here, Node leaves closing the socket to it (a handshake timeout included)
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      this.handshakeFailures++;
      socket.destroy();
      if (this.log.isLevelEnabled('debug')) {
        this.log.debug({ listener: this.options.name, remoteAddress: socket.remoteAddress, reason: err.code ?? err.message }, 'tls_handshake_failed');
      }
    });
    this.wss = serveMqttUpgrades(server, this.options, (stream, req) => {
      const socket = req.socket as tls.TLSSocket;
      // refused at 'secureConnection' already; checked again as nothing else guards the broker
      if (clientCertificateRefusal(socket, mode) !== undefined) {
        stream.destroy();
        return;
      }
      const certificate = clientCertificateOf(socket);
      accept(stream, {
        transport: this.transport,
        listener: this.options.name,
        remoteAddress: socket.remoteAddress ?? '',
        remotePort: socket.remotePort ?? 0,
        ...(certificate !== undefined && { clientCertificate: certificate }),
      });
    });
    this.server = server;
    await listenOn(server, this.options);
    this.reloader.start(server);
  }

  address(): { host: string; port: number } {
    return boundAddress(this.server, this.options);
  }

  close(): Promise<void> {
    this.reloader.stop();
    return closeHttpServer(this.server, this.wss);
  }
}
