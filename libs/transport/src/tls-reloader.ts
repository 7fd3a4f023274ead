import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { BrokerLog } from '@fleetmq/broker';
import { ConfigError } from '@fleetmq/protocol';
import { fileSignature } from './file-watcher.js';
import { secureContextOptions, type TlsFiles, type TlsOptions } from './tls-options.js';

/** A TLS server whose context can be swapped: tls.Server and https.Server. */
export interface SecureContextTarget {
  setSecureContext(options: tls.SecureContextOptions): void;
}

const DEFAULT_DEBOUNCE = 500;
const DEFAULT_CHECK_INTERVAL = 30_000;

type FileField = 'certFile' | 'keyFile' | 'caFile' | 'crlFile';

interface Loaded {
  readonly digest: string;
  readonly fingerprint256: string;
}

/**
 * A listener's certificate, key, CA and CRL files, kept in force without a restart
 * (rotation by cert-manager, ACM exports, certbot): a change in the files' directories
 * (debounced) or in their stat (checked periodically, for file systems without events)
 * makes it read them again. New contents that are valid, the key matching the certificate,
 * go into the server with `setSecureContext`, so new handshakes use them while open
 * connections keep theirs; invalid ones leave the old context in place and are logged.
 */
export class TlsReloader {
  /** New contexts put into force since start. */
  reloads = 0;
  /** Changed files that could not be used (unreadable, invalid, key not matching). */
  reloadFailures = 0;
  private loaded: Loaded | undefined;
  private statSignature = '';
  /** The contents (or read error) that last failed: logged once, not at every check. */
  private failedDigest: string | undefined;
  private target: SecureContextTarget | undefined;
  private watchers: fs.FSWatcher[] = [];
  private debounceTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private checking: Promise<boolean> = Promise.resolve(false);

  constructor(
    private readonly listener: string,
    private readonly options: TlsOptions,
    private readonly log: BrokerLog,
  ) {}

  /** SHA-256 fingerprint of the server certificate in force (colon-separated hex). */
  get fingerprint256(): string {
    return this.loaded?.fingerprint256 ?? '';
  }

  /** Reads and validates the files for the first context; throws ConfigError. */
  async load(): Promise<tls.SecureContextOptions> {
    this.statSignature = await this.statFiles();
    let files: TlsFiles;
    try {
      files = await this.readFiles();
    } catch (err) {
      const { field, cause } = err as FileReadError;
      throw new ConfigError(`listeners.${this.listener}.tls.${field}`, `cannot read ${this.options[field]}: ${cause.message}`, 'a readable PEM file', { cause });
    }
    try {
      const { context, fingerprint256 } = this.validate(files);
      this.loaded = { digest: digest(files), fingerprint256 };
      return context;
    } catch (err) {
      throw new ConfigError(`listeners.${this.listener}.tls`, (err as Error).message, 'PEM files whose key matches the certificate', { cause: err });
    }
  }

  /** Watches the files until stop(), putting changed ones into `target`. */
  start(target: SecureContextTarget): void {
    this.target = target;
    const dirs = new Set(this.paths().map(([, file]) => path.dirname(path.resolve(file))));
    for (const dir of dirs) {
      try {
        // the directory, not the file: renames over the file (atomic writes, Kubernetes'
        // ..data symlink swap) end a watch on the file itself
        const watcher = fs.watch(dir, { persistent: false }, () => this.schedule());
        watcher.on('error', (err) => {
          this.log.warn({ listener: this.listener, dir, err: err.message }, 'tls_certificate_watch_failed');
          watcher.close();
        });
        this.watchers.push(watcher);
      } catch (err) {
        this.log.warn({ listener: this.listener, dir, err: (err as Error).message }, 'tls_certificate_watch_failed');
      }
    }
    const interval = this.options.reloadCheckInterval ?? DEFAULT_CHECK_INTERVAL;
    this.checkTimer = setInterval(() => void this.checkStat(), interval);
    this.checkTimer.unref();
  }

  /** Reads the files now; resolves true when a new context went into force. */
  check(): Promise<boolean> {
    this.checking = this.checking.then(() => this.reloadIfChanged());
    return this.checking;
  }

  stop(): void {
    for (const watcher of this.watchers.splice(0)) watcher.close();
    clearTimeout(this.debounceTimer);
    clearInterval(this.checkTimer);
    this.debounceTimer = undefined;
    this.checkTimer = undefined;
    this.target = undefined;
  }

  private schedule(): void {
    if (this.debounceTimer !== undefined || this.target === undefined) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.check();
    }, this.options.reloadDebounce ?? DEFAULT_DEBOUNCE);
    this.debounceTimer.unref();
  }

  private async checkStat(): Promise<void> {
    if ((await this.statFiles()) !== this.statSignature) await this.check();
  }

  private async reloadIfChanged(): Promise<boolean> {
    const target = this.target;
    if (target === undefined || this.loaded === undefined) return false;
    // stat before reading: a change after the stat shows at the next check
    const signature = await this.statFiles();
    let files: TlsFiles;
    try {
      files = await this.readFiles();
    } catch (err) {
      const { field, cause } = err as FileReadError;
      this.statSignature = signature;
      this.fail(`unreadable:${field}:${cause.message}`, `cannot read ${field} ${this.options[field]}: ${cause.message}`);
      return false;
    }
    this.statSignature = signature;
    const newDigest = digest(files);
    if (newDigest === this.loaded.digest || newDigest === this.failedDigest) return false;
    try {
      const { context, fingerprint256, subject, validTo } = this.validate(files);
      target.setSecureContext(context);
      this.loaded = { digest: newDigest, fingerprint256 };
      this.failedDigest = undefined;
      this.reloads++;
      this.log.info({ listener: this.listener, fingerprint256, subject, validTo }, 'tls_certificate_reloaded');
      return true;
    } catch (err) {
      this.fail(newDigest, (err as Error).message);
      return false;
    }
  }

  private fail(failedDigest: string, message: string): void {
    if (failedDigest === this.failedDigest) return;
    this.failedDigest = failedDigest;
    this.reloadFailures++;
    this.log.error({ listener: this.listener, err: message, fingerprint256: this.fingerprint256 }, 'tls_certificate_reload_failed');
  }

  /** Throws when the files cannot make a context: bad PEM, key not matching, bad CA or CRL. */
  private validate(files: TlsFiles): { context: tls.SecureContextOptions; fingerprint256: string; subject: string; validTo: string } {
    const cert = new X509Certificate(files.cert);
    const key = createPrivateKey(files.key);
    if (!cert.checkPrivateKey(key)) throw new Error(`the key does not match the certificate (${cert.subject.replace(/\n/g, ', ')})`);
    const context = secureContextOptions(this.options, files);
    tls.createSecureContext(context); // parses the CA, the CRL and the cipher list
    return { context, fingerprint256: cert.fingerprint256, subject: cert.subject.replace(/\n/g, ', '), validTo: cert.validTo };
  }

  private paths(): [FileField, string][] {
    const out: [FileField, string][] = [
      ['certFile', this.options.certFile],
      ['keyFile', this.options.keyFile],
    ];
    if (this.options.caFile !== undefined) out.push(['caFile', this.options.caFile]);
    if (this.options.crlFile !== undefined) out.push(['crlFile', this.options.crlFile]);
    return out;
  }

  private async readFiles(): Promise<TlsFiles> {
    const read = async ([field, file]: [FileField, string]): Promise<Buffer> => {
      try {
        return await fs.promises.readFile(file);
      } catch (err) {
        throw new FileReadError(field, err as Error);
      }
    };
    const [cert, key, ca, crl] = await Promise.all([
      read(['certFile', this.options.certFile]),
      read(['keyFile', this.options.keyFile]),
      this.options.caFile === undefined ? undefined : read(['caFile', this.options.caFile]),
      this.options.crlFile === undefined ? undefined : read(['crlFile', this.options.crlFile]),
    ]);
    return { cert, key, ...(ca !== undefined && { ca }), ...(crl !== undefined && { crl }) };
  }

  private statFiles(): Promise<string> {
    return fileSignature(this.paths().map(([, file]) => file));
  }
}

class FileReadError extends Error {
  constructor(
    readonly field: FileField,
    override readonly cause: Error,
  ) {
    super(cause.message);
  }
}

function digest(files: TlsFiles): string {
  const hash = createHash('sha256');
  for (const part of [files.cert, files.key, files.ca, files.crl]) {
    hash.update(part === undefined ? '-' : part.length.toString());
    hash.update(':');
    if (part !== undefined) hash.update(part);
  }
  return hash.digest('hex');
}
