/**
 * TLS test support: a throwaway PKI made with the system's openssl in os.tmpdir() (never
 * committed), a log that records, MQTT over a TLS client socket, and a TLS listener wired
 * to a Broker as services/edge wires one.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import tls from 'node:tls';
import { silentLog, type Broker, type BrokerLog, type ConnectionInfo } from '@fleetmq/broker';
import { RawMqttClient, connectBytes } from '@fleetmq/testkit';
import { Connection } from '../src/connection.js';
import { TlsListener, type TlsListenerOptions } from '../src/tls-listener.js';
import { defaultConnectionOptions, makeBroker } from './support.js';

export { OPENSSL, makePki, type KeyPair, type TestPki } from '@fleetmq/testkit';

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
