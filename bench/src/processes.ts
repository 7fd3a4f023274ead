/**
 * Child processes the benchmark starts (brokers, nats-server, redis-server): spawned, watched,
 * and stopped by their own PID only (SIGTERM, then SIGKILL after a timeout). Every one still
 * running is killed when the runner exits, on Ctrl-C (SIGINT) or SIGTERM.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createServer, createConnection } from 'node:net';
import type { AddressInfo } from 'node:net';

const live = new Set<ManagedProcess>();
const cleanups = new Set<() => void>();
let hooked = false;
let interrupted = false;

/** True once SIGINT or SIGTERM arrived: start nothing new. */
export function isInterrupted(): boolean {
  return interrupted;
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = (): void => {
    for (const p of live) p.kill('SIGKILL');
    for (const c of cleanups) {
      try {
        c();
      } catch {
        // best effort
      }
    }
  };
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      process.stderr.write(`\nbench: ${signal}, stopping ${live.size} child process(es) by PID\n`);
      for (const p of live) p.kill('SIGTERM');
      setTimeout(() => {
        killAll();
        process.exit(130);
      }, 1_500).unref();
    });
  }
}

/** Runs `fn` when the runner exits (temporary files). */
export function onExit(fn: () => void): void {
  hookExit();
  cleanups.add(fn);
}

export class ManagedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  private tail = '';
  private exitReason: string | undefined;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    options: SpawnOptions = {},
  ) {
    hookExit();
    if (interrupted) throw new Error(`interrupted: not starting ${name}`);
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    const keep = (chunk: Buffer): void => {
      this.tail = (this.tail + chunk.toString('utf8')).slice(-4_000);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise<void>((resolve) => {
      this.child.once('error', (err) => {
        this.exitReason ??= `could not start ${command}: ${err.message}`;
        live.delete(this);
        resolve();
      });
      this.child.once('exit', (code, signal) => {
        this.exitReason ??= `exited with ${signal ?? `code ${code}`}`;
        live.delete(this);
        resolve();
      });
    });
    this.pid = this.child.pid ?? -1;
    live.add(this);
  }

  get running(): boolean {
    return this.exitReason === undefined;
  }

  /** Why it is gone (undefined while it runs), with the last lines it wrote. */
  failure(): string | undefined {
    return this.exitReason === undefined ? undefined : `${this.name} ${this.exitReason}${this.tail ? `; output:\n${this.tail}` : ''}`;
  }

  output(): string {
    return this.tail;
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.running || this.pid < 0) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  /** SIGTERM by PID, SIGKILL after `timeoutMs`; resolves once it has exited. */
  async stop(timeoutMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (late) {
      this.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** A port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves true once something accepts TCP connections on 127.0.0.1:port. */
export function tcpOpen(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Polls `probe` until it is true; throws with the process' failure if it exits, or after `timeoutMs`. */
export async function waitUntil(what: string, probe: () => Promise<boolean>, process?: ManagedProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failure = process?.failure();
    if (failure !== undefined) throw new Error(`${what} did not start: ${failure}`);
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs} ms${process ? `; output:\n${process.output()}` : ''}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}
