import net from 'node:net';
import tls from 'node:tls';
import { silentLog, type BrokerLog, type ConnectionInfo } from '@fleetmq/broker';
import { clientCertificateOf, clientCertificateRefusal } from './client-certificate.js';
import type { AcceptHandler, Listener, ListenerOptions, ProxyProtocolOptions } from './listener.js';
import { DEFAULT_PROXY_HEADER_TIMEOUT, proxiedInfo, readProxyHeader } from './proxy-header-reader.js';
import { boundAddress, listenOn } from './tcp-listener.js';
import { allowsLegacyVersions, tlsServerOptions, validateTlsOptions, type TlsOptions } from './tls-options.js';
import { TlsReloader } from './tls-reloader.js';

export interface TlsListenerOptions extends ListenerOptions, TlsOptions, ProxyProtocolOptions {}

/** Sockets still open after close() waits this long are destroyed. */
const CLOSE_GRACE = 2000;

/**
 * MQTT over TLS (8883): TLS 1.2 and 1.3 unless configured otherwise, mutual TLS per
 * `clientCertificate`, certificates reloaded when their files change, and optionally a
 * PROXY protocol header before the handshake (a TCP load balancer in front).
 */
export class TlsListener implements Listener {
  readonly transport = 'tls';
  /** Handshakes that failed (protocol version, no or invalid client certificate, timeout). */
  handshakeFailures = 0;
  /** Connections closed for a missing or invalid PROXY header. */
  proxyHeaderRejections = 0;
  private readonly reloader: TlsReloader;
  private server: tls.Server | undefined;
  /** What listens: the TLS server, or a plain one reading PROXY headers in front of it. */
  private front: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** PROXY results waiting for their handshake, by the proxy side's address:port. */
  private readonly proxied = new Map<string, ConnectionInfo>();

  constructor(
    private readonly options: TlsListenerOptions,
    private readonly log: BrokerLog = silentLog,
  ) {
    validateTlsOptions(options.name, options);
    this.reloader = new TlsReloader(options.name, options, log);
  }

  get name(): string {
    return this.options.name;
  }

  /** Certificate contexts put into force by reloads. */
  get reloads(): number {
    return this.reloader.reloads;
  }

  /** Changed certificate files that could not be used (the old context stayed). */
  get reloadFailures(): number {
    return this.reloader.reloadFailures;
  }

  /** SHA-256 fingerprint of the server certificate new handshakes get. */
  get certificateFingerprint256(): string {
    return this.reloader.fingerprint256;
  }

  /** Reads the files now (a SIGHUP, say); true when a new context went into force. */
  reloadCertificates(): Promise<boolean> {
    return this.reloader.check();
  }

  async listen(accept: AcceptHandler): Promise<void> {
    const context = await this.reloader.load();
    if (allowsLegacyVersions(this.options)) this.log.warn({ listener: this.options.name, minVersion: this.options.minVersion }, 'tls_legacy_versions_enabled');
    const mode = this.options.clientCertificate ?? 'none';
    const server = tls.createServer({ ...context, ...tlsServerOptions(this.options) });
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      this.track(socket);
      socket.setNoDelay(true);
      const key = `${socket.remoteAddress}:${socket.remotePort}`;
      const base = this.proxied.get(key) ?? this.connectionInfo(socket);
      this.proxied.delete(key);
      const refusal = clientCertificateRefusal(socket, mode);
      if (refusal !== undefined) {
        this.handshakeFailures++;
        this.log.debug({ listener: base.listener, remoteAddress: base.remoteAddress, reason: refusal }, 'tls_handshake_failed');
        socket.destroy();
        return;
      }
      const certificate = clientCertificateOf(socket);
      accept(socket, certificate === undefined ? base : { ...base, clientCertificate: certificate });
    });
    // with a listener here, Node leaves closing the socket to it (a handshake timeout included)
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      this.handshakeFailures++;
      socket.destroy();
      if (this.log.isLevelEnabled('debug')) {
        this.log.debug({ listener: this.options.name, remoteAddress: socket.remoteAddress, reason: err.code ?? err.message }, 'tls_handshake_failed');
      }
    });
    this.server = server;
    if (this.options.proxyProtocol === true) {
      const front = net.createServer({ noDelay: true }, (raw) => this.readProxy(raw, server));
      this.front = front;
      await listenOn(front, this.options);
    } else {
      server.on('connection', (raw: net.Socket) => this.track(raw));
      await listenOn(server, this.options);
    }
    this.reloader.start(server);
  }

  address(): { host: string; port: number } {
    return boundAddress(this.front ?? this.server, this.options);
  }

  async close(): Promise<void> {
    this.reloader.stop();
    const listening = this.front ?? this.server;
    if (listening === undefined || !listening.listening) return;
    await new Promise<void>((resolve) => {
      listening.close(() => resolve());
      setTimeout(() => {
        for (const socket of this.sockets) socket.destroy();
      }, CLOSE_GRACE).unref();
    });
  }

  /** PROXY header first, then the raw socket goes to the TLS server as if it had accepted it. */
  private readProxy(raw: net.Socket, server: tls.Server): void {
    this.track(raw);
    const info = this.connectionInfo(raw);
    const key = `${info.remoteAddress}:${info.remotePort}`;
    void readProxyHeader(raw, this.options.proxyHeaderTimeout ?? DEFAULT_PROXY_HEADER_TIMEOUT).then((read) => {
      if (!read.ok) {
        this.proxyHeaderRejections++;
        this.log.debug({ listener: info.listener, remoteAddress: info.remoteAddress, reason: read.reason }, 'proxy_header_rejected');
        return;
      }
      this.proxied.set(key, proxiedInfo(info, read.header));
      raw.once('close', () => this.proxied.delete(key));
      server.emit('connection', raw);
    });
  }

  private connectionInfo(socket: net.Socket): ConnectionInfo {
    return {
      transport: this.transport,
      listener: this.options.name,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
    };
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }
}
