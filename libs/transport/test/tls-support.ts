/**
 * TLS test support: a throwaway PKI made with the system's openssl in os.tmpdir() (never
 * committed), a log that records, MQTT over a TLS client socket, and a TLS listener wired
 * to a Broker as services/edge wires one.
 */
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { silentLog, type Broker, type BrokerLog, type ConnectionInfo } from '@fleetmq/broker';
import { RawMqttClient, connectBytes } from '@fleetmq/testkit';
import { Connection } from '../src/connection.js';
import { TlsListener, type TlsListenerOptions } from '../src/tls-listener.js';
import { defaultConnectionOptions, makeBroker } from './support.js';

export const OPENSSL = '/usr/bin/openssl';

export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

export interface TestPki {
  readonly dir: string;
  /** The CA of the server and of the good client certificates ("Test CA"). */
  readonly ca: string;
  /** localhost / 127.0.0.1, by the CA. */
  readonly server: KeyPair;
  /** The same names with a new key: the rotated certificate. */
  readonly server2: KeyPair;
  /** CN=device-1, O=Fleet, OU=a, OU=b. */
  readonly client: KeyPair;
  /** Valid 2020-01-01 to 2020-01-02. */
  readonly expired: KeyPair;
  /** Revoked in `crl`. */
  readonly revoked: KeyPair;
  /** The CA's CRL, listing `revoked`. */
  readonly crl: string;
  /** Another CA ("Other CA") and a client certificate by it. */
  readonly otherCa: string;
  readonly wrongCa: KeyPair;
  /** SHA-256 fingerprint of a PEM certificate file, as Node prints it. */
  fingerprint(certFile: string): string;
  cleanup(): void;
}

function openssl(cwd: string, args: string[]): void {
  execFileSync(OPENSSL, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

const CA_CONFIG = `
[ ca ]
default_ca = testca
[ testca ]
database = db/index.txt
new_certs_dir = db
certificate = ca.pem
private_key = ca.key
crlnumber = db/crlnumber
default_md = sha256
default_crl_days = 30
policy = anything
unique_subject = no
rand_serial = yes
preserve = yes
copy_extensions = none
[ anything ]
commonName = supplied
organizationName = optional
organizationalUnitName = optional
[ server_ext ]
basicConstraints = CA:FALSE
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
[ client_ext ]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
`;

/** Makes the CAs, certificates and CRL the TLS tests use (EC P-256, a few tens of ms). */
export function makePki(): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetmq-pki-'));
  const file = (name: string): string => path.join(dir, name);
  fs.mkdirSync(file('db'));
  fs.writeFileSync(file('db/index.txt'), '');
  fs.writeFileSync(file('db/crlnumber'), '1000\n');
  fs.writeFileSync(file('ca.cnf'), CA_CONFIG);
  openssl(dir, ['req', '-x509', ...EC_KEY, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=Test CA']);
  openssl(dir, ['req', '-x509', ...EC_KEY, '-keyout', 'other-ca.key', '-out', 'other-ca.pem', '-days', '30', '-subj', '/CN=Other CA']);

  const issue = (name: string, subject: string, ext: string, dates: string[] = ['-days', '30'], config = 'ca.cnf'): KeyPair => {
    openssl(dir, ['req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    openssl(dir, ['ca', '-batch', '-config', config, '-extensions', ext, '-in', `${name}.csr`, '-out', `${name}.pem`, '-notext', ...dates]);
    return { cert: file(`${name}.pem`), key: file(`${name}.key`) };
  };
  const server = issue('server', '/CN=localhost', 'server_ext');
  const server2 = issue('server2', '/CN=localhost', 'server_ext');
  const client = issue('client', '/CN=device-1/O=Fleet/OU=a/OU=b', 'client_ext');
  const expired = issue('expired', '/CN=expired-device', 'client_ext', ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z']);
  const revoked = issue('revoked', '/CN=revoked-device', 'client_ext');
  openssl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-revoke', 'revoked.pem']);
  openssl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem']);

  // the other CA signs with its own config and database
  fs.mkdirSync(file('db-other'));
  fs.writeFileSync(file('db-other/index.txt'), '');
  fs.writeFileSync(
    file('other-ca.cnf'),
    CA_CONFIG.replace(/db\//g, 'db-other/').replace('new_certs_dir = db', 'new_certs_dir = db-other').replace('ca.pem', 'other-ca.pem').replace('ca.key', 'other-ca.key'),
  );
  const wrongCa = issue('wrong-ca', '/CN=device-1', 'client_ext', ['-days', '30'], 'other-ca.cnf');

  return {
    dir,
    ca: file('ca.pem'),
    server,
    server2,
    client,
    expired,
    revoked,
    crl: file('crl.pem'),
    otherCa: file('other-ca.pem'),
    wrongCa,
    fingerprint: (certFile) => new X509Certificate(fs.readFileSync(certFile)).fingerprint256,
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export interface LogEntry {
  readonly level: 'error' | 'warn' | 'info' | 'debug';
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** A BrokerLog that keeps what is written to it. */
export function recordingLog(): BrokerLog & { readonly entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at =
    (level: LogEntry['level']) =>
    (fields: object, msg: string): void => {
      entries.push({ level, msg, fields: { ...fields } });
    };
  const log = {
    entries,
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    isLevelEnabled: () => true,
    child: () => log,
  };
  return log;
}

export type TlsOutcome =
  /** The handshake finished and the broker answered CONNECT. */
  | { readonly kind: 'connack'; readonly code: number; readonly client: RawMqttClient; readonly socket: tls.TLSSocket }
  /** The TLS layer failed (during the handshake, or at the first read in TLS 1.3). */
  | { readonly kind: 'error'; readonly code: string }
  /** The server closed (FIN, or RST after the client wrote) without answering. */
  | { readonly kind: 'closed' };

/** A TCP close reported as an error: whether RST or FIN comes first is a race. */
const CLOSE_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE']);

/**
 * Connects with `options`, sends CONNECT once the handshake is done, and says what came
 * back first: CONNACK, a TLS error, or a close. A refused client certificate shows in
 * TLS 1.3 only after the client's side of the handshake, so the CONNECT is what reveals it.
 */
export function mqttOverTls(port: number, options: tls.ConnectionOptions, clientId: string, cleanup: { destroy(): void }[] = []): Promise<TlsOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: TlsOutcome): void => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...options });
    cleanup.push(socket);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? err.message;
      settle(CLOSE_CODES.has(code) ? { kind: 'closed' } : { kind: 'error', code });
    });
    socket.once('secureConnect', () => {
      const client = new RawMqttClient(socket, 4);
      client.write(connectBytes(4, { clientId }));
      void client.packetsOrClose(1, 3000).then(() => {
        // an alert after the handshake arrives as an 'error' just before the close
        setImmediate(() => {
          const [first] = client.take();
          if (first?.cmd === 'connack') settle({ kind: 'connack', code: first.code, client, socket });
          else settle({ kind: 'closed' });
        });
      });
    });
  });
}

export interface TlsMqttServer {
  readonly listener: TlsListener;
  readonly broker: Broker;
  readonly port: number;
  /** ConnectionInfo of every stream handed to the broker. */
  readonly accepted: ConnectionInfo[];
  /** The TLS version each of them negotiated, in the same order. */
  readonly protocols: (string | null)[];
  close(): Promise<void>;
}

/** A TlsListener on a free 127.0.0.1 port whose streams get a Connection to a Broker. */
export async function startTlsServer(options: Omit<TlsListenerOptions, 'host' | 'port' | 'name'> & { name?: string }, log: BrokerLog = silentLog): Promise<TlsMqttServer> {
  const broker = makeBroker();
  const listener = new TlsListener({ name: 'tls', host: '127.0.0.1', port: 0, ...options }, log);
  const accepted: ConnectionInfo[] = [];
  const protocols: (string | null)[] = [];
  await listener.listen((stream, info) => {
    accepted.push(info);
    protocols.push((stream as tls.TLSSocket).getProtocol());
    new Connection(stream, info, broker, defaultConnectionOptions, silentLog);
  });
  return {
    listener,
    broker,
    port: listener.address().port,
    accepted,
    protocols,
    async close() {
      broker.shutdown(0x8b);
      await listener.close();
    },
  };
}

export interface ProcessResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a client program to its end, killed (by its own PID, via execFile) after `timeoutMs`. */
export function run(command: string, args: string[], timeoutMs: number): Promise<ProcessResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as NodeJS.ErrnoException).code === 'number' ? ((err as unknown as { code: number }).code) : null;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Replaces `target` with `source`'s bytes the way rotation tools do: a new file renamed over it. */
export function replaceFile(source: string, target: string): void {
  const tmp = `${target}.tmp-${process.pid}`;
  fs.copyFileSync(source, tmp);
  fs.renameSync(tmp, target);
}
