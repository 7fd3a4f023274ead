/**
 * A real Mosquitto broker for interop tests: Debian's `mosquitto` binary (or FLEETMQ_MOSQUITTO)
 * with a config file generated in its own temp directory, listening on a free 127.0.0.1 port.
 * Stopped by its PID; restartable on the same port (for reconnect tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './servers.js';

export interface MosquittoOptions {
  /** Extra mosquitto.conf lines after the listener (bridges, TLS, …); `%dir%` is the temp directory. */
  readonly config?: readonly string[];
  /** The port to listen on (default a free one). */
  readonly port?: number;
  /** Listener lines instead of the default `listener <port> 127.0.0.1` + `allow_anonymous true`. */
  readonly listener?: (port: number) => readonly string[];
}

export interface MosquittoFixture {
  readonly port: number;
  readonly dir: string;
  /** The PID of the running process (changes on restart). */
  readonly pid: number;
  /** Everything it logged (stdout and stderr) since it was first started. */
  output(): string;
  /** Resolves once the output matches `pattern` `count` times; rejects after `timeoutMs`. */
  waitForOutput(pattern: RegExp, count?: number, timeoutMs?: number): Promise<void>;
  /** Stops it (SIGTERM by PID) and starts it again on the same port with the same config. */
  restart(): Promise<void>;
  /** Stops it (SIGTERM by PID, SIGKILL after 5 s) and waits for the exit. */
  kill(): Promise<void>;
  /** Stops it and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

const BINARY = process.env['FLEETMQ_MOSQUITTO'] ?? 'mosquitto';

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts Mosquitto and resolves once it accepts connections. */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'fleetmq-mosquitto-'));
  const port = options.port ?? (await freePort());
  const listener = options.listener?.(port) ?? [`listener ${port} 127.0.0.1`, 'allow_anonymous true'];
  const lines = [
    // as root, mosquitto would switch to the mosquitto user, which cannot read the temp files
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    ...listener,
    'log_dest stderr',
    'log_type all',
    'persistence false',
    ...(options.config ?? []),
  ].map((l) => l.replaceAll('%dir%', dir));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);
  let output = '';
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const waiters = new Set<() => void>();

  const launch = async (): Promise<void> => {
    const proc = spawn(BINARY, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const onData = (d: Buffer): void => {
      output += d.toString();
      for (const w of [...waiters]) w();
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + 5_000;
    while (!(await accepts(port))) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`mosquitto did not start on port ${port}:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  let stopped = false;
  return {
    port,
    dir,
    get pid() {
      return child?.pid ?? -1;
    },
    output: () => output,
    waitForOutput: (pattern, count = 1, timeoutMs = 5_000) =>
      new Promise<void>((resolve, reject) => {
        const global = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`);
        const check = (): void => {
          if ((output.match(global)?.length ?? 0) < count) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`mosquitto output did not match ${pattern} ${count} times within ${timeoutMs} ms:\n${output.slice(-4_000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    restart: async () => {
      await kill();
      await launch();
    },
    kill,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
