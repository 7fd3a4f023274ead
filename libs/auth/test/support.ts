import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrokerLog, ClientInfo } from '@fleetmq/broker';

/** A CONNECT as the broker hands it to the authenticator. */
export function clientInfo(over: Partial<Omit<ClientInfo, 'password'>> & { password?: string | Buffer | undefined } = {}): ClientInfo {
  const { password, ...rest } = over;
  return {
    clientId: 'dev-1',
    username: undefined,
    protocolVersion: 5,
    transport: 'tcp',
    listener: 'default',
    remoteAddress: '192.0.2.10',
    ...rest,
    password: typeof password === 'string' ? Buffer.from(password, 'utf8') : password,
  };
}

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** A BrokerLog that keeps every line, with its child bindings merged in. */
export function captureLog(level: 'debug' | 'info' = 'debug'): { log: BrokerLog; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const make = (bindings: Record<string, unknown>): BrokerLog => {
    const write = (lvl: string) => (fields: object, msg: string) => {
      lines.push({ level: lvl, msg, fields: { ...bindings, ...(fields as Record<string, unknown>) } });
    };
    return {
      error: write('error'),
      warn: write('warn'),
      info: write('info'),
      debug: write('debug'),
      isLevelEnabled: (l) => l !== 'debug' || level === 'debug',
      child: (b) => make({ ...bindings, ...b }),
    };
  };
  return { log: make({}), lines };
}

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetmq-auth-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not open port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface MosquittoBroker {
  readonly port: number;
  readonly output: () => string;
  stop(): Promise<void>;
}

/**
 * Debian's real mosquitto 2.0 on a free 127.0.0.1 port with the given files, no anonymous
 * access. `user root` keeps it from dropping to the mosquitto user (which could not read
 * the 0600 test files when the tests run as root).
 */
export async function startMosquitto(dir: string, files: { passwordFile?: string; aclFile?: string }): Promise<MosquittoBroker> {
  const port = await freePort();
  const conf = join(dir, `mosquitto-${port}.conf`);
  const lines = [
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    `listener ${port} 127.0.0.1`,
    'allow_anonymous false',
    ...(files.passwordFile !== undefined ? [`password_file ${files.passwordFile}`] : []),
    ...(files.aclFile !== undefined ? [`acl_file ${files.aclFile}`] : []),
    'log_type all',
  ];
  await writeFile(conf, `${lines.join('\n')}\n`);
  const child: ChildProcess = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitForPort(port, 5000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${output}`);
  }
  return {
    port,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs mosquitto_pub once; resolves with its exit code and output. */
export function mosquittoPub(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('mosquitto_pub', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}
