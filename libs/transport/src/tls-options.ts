import tls from 'node:tls';
import { ConfigError } from '@fleetmq/protocol';

export type TlsVersion = tls.SecureVersion;

/**
 * Mutual TLS per listener: 'none' asks no certificate; 'optional' asks one and refuses
 * one that does not verify (wrong CA, expired, revoked) but lets a client without one in;
 * 'required' also refuses a client without one. Refused clients are closed right after the
 * handshake, before any MQTT byte is read.
 */
export type ClientCertificateMode = 'none' | 'optional' | 'required';

/** TLS settings shared by TlsListener and WssListener. Files are PEM. */
export interface TlsOptions {
  /** Server certificate, the leaf first, then intermediates. */
  readonly certFile: string;
  /** Private key of the certificate (unencrypted). */
  readonly keyFile: string;
  /** CA bundle client certificates must chain to (required for mutual TLS). */
  readonly caFile?: string;
  /**
   * Certificate revocation lists of the client CAs. With it every client certificate is
   * checked, so it must hold a current CRL of each CA that issues them.
   */
  readonly crlFile?: string;
  /** Default 'TLSv1.2'. 'TLSv1' and 'TLSv1.1' also lower OpenSSL's security level to 0. */
  readonly minVersion?: TlsVersion;
  /** Default 'TLSv1.3'. */
  readonly maxVersion?: TlsVersion;
  /** OpenSSL cipher list (TLS 1.3 suites by their TLS_* names may be included); Node's default otherwise. */
  readonly ciphers?: string;
  /** ALPN protocols offered, e.g. ['mqtt']; none by default. A client offering others is refused. */
  readonly alpnProtocols?: readonly string[];
  /** Default 'none'. */
  readonly clientCertificate?: ClientCertificateMode;
  /** Milliseconds a client has to finish the handshake (default 10000). */
  readonly handshakeTimeout?: number;
  /** Milliseconds between a change seen in the files' directories and the reload (default 500). */
  readonly reloadDebounce?: number;
  /** Milliseconds between checks of the files' stat, for where file events miss (default 30000). */
  readonly reloadCheckInterval?: number;
}

/** The files' contents, as read at one moment. */
export interface TlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
  readonly crl?: Buffer;
}

const VERSION_ORDER: readonly TlsVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
const DEFAULT_MIN_VERSION: TlsVersion = 'TLSv1.2';
const DEFAULT_MAX_VERSION: TlsVersion = 'TLSv1.3';
const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

/** The option key in error messages: `listeners.<name>.tls.<field>`. */
const key = (listener: string, field: string): string => `listeners.${listener}.tls.${field}`;

/** Checks what can be checked before reading files; throws ConfigError. */
export function validateTlsOptions(listener: string, options: TlsOptions): void {
  const min = options.minVersion ?? DEFAULT_MIN_VERSION;
  const max = options.maxVersion ?? DEFAULT_MAX_VERSION;
  for (const [field, version] of [['minVersion', min], ['maxVersion', max]] as const) {
    if (!VERSION_ORDER.includes(version)) throw new ConfigError(key(listener, field), `unknown TLS version ${String(version)}`, `one of ${VERSION_ORDER.join(', ')}`);
  }
  if (VERSION_ORDER.indexOf(min) > VERSION_ORDER.indexOf(max)) {
    throw new ConfigError(key(listener, 'minVersion'), `${min} is above maxVersion ${max}`, 'lower minVersion or raise maxVersion');
  }
  const mode = options.clientCertificate ?? 'none';
  if (!['none', 'optional', 'required'].includes(mode)) {
    throw new ConfigError(key(listener, 'clientCertificate'), `unknown mode ${String(mode)}`, "one of 'none', 'optional', 'required'");
  }
  if (mode !== 'none' && options.caFile === undefined) {
    throw new ConfigError(key(listener, 'caFile'), `clientCertificate '${mode}' needs the CA that client certificates chain to`, 'set caFile');
  }
  if (options.crlFile !== undefined && mode === 'none') {
    throw new ConfigError(key(listener, 'crlFile'), 'a CRL is only used to check client certificates', "set clientCertificate to 'optional' or 'required', or drop crlFile");
  }
  if (options.alpnProtocols !== undefined && options.alpnProtocols.some((p) => p.length === 0 || p.length > 255)) {
    throw new ConfigError(key(listener, 'alpnProtocols'), 'an ALPN protocol name is 1 to 255 bytes', "e.g. ['mqtt']");
  }
}

/** True when the configuration allows a version below TLS 1.2. */
export function allowsLegacyVersions(options: TlsOptions): boolean {
  return VERSION_ORDER.indexOf(options.minVersion ?? DEFAULT_MIN_VERSION) < VERSION_ORDER.indexOf('TLSv1.2');
}

/** What goes into tls.createSecureContext / server.setSecureContext. */
export function secureContextOptions(options: TlsOptions, files: TlsFiles): tls.SecureContextOptions {
  let ciphers = options.ciphers;
  // OpenSSL 3 allows TLS 1.0/1.1 only at security level 0: configuring them must mean it
  if (allowsLegacyVersions(options) && !(ciphers ?? '').includes('@SECLEVEL')) ciphers = `${ciphers ?? tls.DEFAULT_CIPHERS}:@SECLEVEL=0`;
  return {
    cert: files.cert,
    key: files.key,
    ...(files.ca !== undefined && { ca: files.ca }),
    ...(files.crl !== undefined && { crl: files.crl }),
    minVersion: options.minVersion ?? DEFAULT_MIN_VERSION,
    maxVersion: options.maxVersion ?? DEFAULT_MAX_VERSION,
    ...(ciphers !== undefined && { ciphers }),
  };
}

/** The server settings that are not part of the secure context (they cannot be reloaded). */
export function tlsServerOptions(options: TlsOptions): tls.TlsOptions {
  const mode = options.clientCertificate ?? 'none';
  return {
    requestCert: mode !== 'none',
    // the listeners refuse unverified certificates themselves (clientCertificateRefusal)
    rejectUnauthorized: false,
    handshakeTimeout: options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
    ...(options.alpnProtocols !== undefined && { ALPNProtocols: [...options.alpnProtocols] }),
  };
}
