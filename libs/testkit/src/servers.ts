/**
 * Real-server fixtures for adapter and integration tests, in the manner of nats.js' `nst`
 * test-server package: each starts a server on a free 127.0.0.1 port, waits until it answers,
 * and stops only what it started.
 *
 * Two back ends, one returned shape, so test code is the same either way:
 * - local: `nats-server` and `redis-server` child processes (killed by PID), dynalite in-process;
 * - containers (testcontainers): `nats:2`, `redis:7`, `amazon/dynamodb-local`, used when a Docker
 *   engine answers. Env `FLEETMQ_TEST_CONTAINERS=1` forces containers, `=0` forces local.
 * Env `FLEETMQ_NATS_SERVER` / `FLEETMQ_REDIS_SERVER` name the binaries when not on PATH.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { request } from 'node:http';
import type { Server } from 'node:http';
import { createConnection, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { StartedTestContainer } from 'testcontainers';

/** How a fixture runs its server. */
export type FixtureKind = 'process' | 'container' | 'in-process';

export interface ServerFixture {
  readonly port: number;
  readonly kind: FixtureKind;
  /** Stops the server and waits until it is gone (its port is free). Idempotent. */
  stop(): Promise<void>;
}

export interface RestartableFixture extends ServerFixture {
  readonly url: string;
  /** Stops the server and starts it again on the same port (for reconnect tests). */
  restart(): Promise<void>;
}

/** A running `nats-server`: `url` is `nats://127.0.0.1:PORT`. */
export type NatsFixture = RestartableFixture;

/** A running `redis-server`: `url` is `redis://127.0.0.1:PORT`. */
export type RedisFixture = RestartableFixture;

/** A DynamoDB endpoint: dynalite in-process, or DynamoDB Local in a container. */
export interface DynamoFixture extends ServerFixture {
  /** `http://127.0.0.1:PORT` */
  readonly endpoint: string;
  readonly region: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
}

export interface NatsServerOptions {
  /** Extra `nats-server` arguments (e.g. `['-js']`). With `-js` and no store dir, a fresh one is made. */
  readonly args?: readonly string[];
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// Choosing local processes or containers

let containersDecision: Promise<boolean> | undefined;

/**
 * Whether fixtures use testcontainers: `FLEETMQ_TEST_CONTAINERS` when set, otherwise whether a
 * Docker engine answers within a short timeout (checked once per process).
 */
export function useContainers(): Promise<boolean> {
  const forced = process.env['FLEETMQ_TEST_CONTAINERS'];
  if (forced === '1' || forced === 'true') return Promise.resolve(true);
  if (forced === '0' || forced === 'false') return Promise.resolve(false);
  containersDecision ??= detectDockerEngine();
  return containersDecision;
}

async function detectDockerEngine(): Promise<boolean> {
  // Cheap check first, so machines without Docker never load testcontainers.
  const sockets = ['/var/run/docker.sock', join(homedir(), '.docker/run/docker.sock')];
  const runtimeDir = process.env['XDG_RUNTIME_DIR'];
  if (runtimeDir) sockets.push(join(runtimeDir, 'docker.sock'));
  const hinted =
    Boolean(process.env['DOCKER_HOST']) ||
    existsSync(join(homedir(), '.testcontainers.properties')) ||
    sockets.some((socket) => existsSync(socket));
  if (!hinted) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('docker engine did not answer')), 3_000);
      timer.unref();
    });
    try {
      await Promise.race([getContainerRuntimeClient(), timeout]);
    } finally {
      clearTimeout(timer);
    }
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Ports, probes and binaries

/** A port that was free on 127.0.0.1 a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Connects to 127.0.0.1:port, optionally writes `send`, and resolves true once the bytes read so
 * far contain `expect` (false on refusal, close or after `timeoutMs`).
 */
function probeTcp(port: number, expect: string | undefined, send?: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    let received = '';
    let settled = false;
    const done = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => {
      if (expect === undefined) return done(true);
      if (send !== undefined) socket.write(send);
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (expect !== undefined && received.includes(expect)) done(true);
    });
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

/** True when nothing accepts connections on 127.0.0.1:port. */
export async function portIsClosed(port: number): Promise<boolean> {
  return !(await probeTcp(port, undefined));
}

const probeNats = (port: number): Promise<boolean> => probeTcp(port, 'INFO ');
const probeRedis = (port: number): Promise<boolean> => probeTcp(port, '+PONG', 'PING\r\n');

/** Sends an (unsigned; local servers do not check signatures) DynamoDB ListTables request. */
function probeDynamo(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const body = '{}';
    const req = request(
      {
        host: HOST,
        port,
        method: 'POST',
        path: '/',
        timeout: timeoutMs,
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'content-length': Buffer.byteLength(body),
          'x-amz-target': 'DynamoDB_20120810.ListTables',
          'x-amz-date': '20240101T000000Z',
          authorization:
            'AWS4-HMAC-SHA256 Credential=fleetmq/20240101/local/dynamodb/aws4_request, ' +
            'SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=00',
        },
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode === 200));
        res.once('error', () => resolve(false));
      },
    );
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
    req.end(body);
  });
}

async function waitUntilReady(
  what: string,
  probe: () => Promise<boolean>,
  failed: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const failure = failed();
    if (failure !== undefined) throw new Error(`${what} did not start: ${failure}`);
    if (await probe()) return;
    if (Date.now() >= deadline) throw new Error(`${what} did not answer within ${READY_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function findBinary(name: string, envVar: string, installHint: string): string {
  const override = process.env[envVar];
  const candidates = override
    ? [override]
    : [...(process.env['PATH'] ?? '').split(delimiter), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin']
        .filter(Boolean)
        .map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new Error(
    `${name} not found (${override ? `${envVar}=${override} is not executable` : 'not on PATH'}): ` +
      `${installHint}, or set ${envVar} to its path, or run with FLEETMQ_TEST_CONTAINERS=1 where Docker is available`,
  );
}

// ---------------------------------------------------------------------------------------------
// Child processes

/** Children still running, killed if the test process exits without stopping them. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of liveChildren) {
      if (c.pid !== undefined) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
}

interface RunningProcess {
  readonly child: ChildProcess;
  /** The child's last output lines, for error messages. */
  log(): string;
  /** Set once the child has exited or failed to spawn. */
  exitReason(): string | undefined;
  exited: Promise<void>;
}

function spawnServer(binary: string, args: readonly string[], cwd: string): RunningProcess {
  const child = spawn(binary, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  let reason: string | undefined;
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-4_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    child.once('error', (err) => {
      reason ??= `spawn ${binary} failed: ${err.message}`;
      resolve();
    });
    child.once('exit', (code, signal) => {
      reason ??= `exited with ${signal ?? `code ${code}`}; output:\n${tail}`;
      resolve();
    });
  });
  trackChild(child);
  return { child, log: () => tail, exitReason: () => reason, exited };
}

/** Kills exactly this child by its PID (SIGTERM, then SIGKILL) and waits until it has exited. */
async function killProcess(running: RunningProcess): Promise<void> {
  const { child } = running;
  if (running.exitReason() !== undefined || child.pid === undefined) return;
  const pid = child.pid;
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
  });
  const late = await Promise.race([running.exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (late) {
    signal('SIGKILL');
    await running.exited;
  }
}

interface ProcessServerSpec {
  readonly what: string;
  readonly scheme: string;
  readonly binary: string;
  readonly args: (port: number) => string[];
  readonly probe: (port: number) => Promise<boolean>;
  readonly cwd: string;
  readonly cleanup?: () => void;
}

async function startProcessServer(spec: ProcessServerSpec): Promise<RestartableFixture> {
  const launch = async (port: number): Promise<RunningProcess> => {
    const running = spawnServer(spec.binary, spec.args(port), spec.cwd);
    try {
      await waitUntilReady(`${spec.what} on port ${port}`, () => spec.probe(port), running.exitReason);
    } catch (err) {
      await killProcess(running);
      throw err;
    }
    return running;
  };

  // The free port may be taken between the check and the bind: try a few.
  let port = 0;
  let running: RunningProcess | undefined;
  let lastError: unknown;
  for (let attempt = 0; attempt < 3 && running === undefined; attempt++) {
    port = await freePort();
    try {
      running = await launch(port);
    } catch (err) {
      lastError = err;
    }
  }
  if (running === undefined) {
    spec.cleanup?.();
    throw lastError;
  }

  let current: RunningProcess | undefined = running;
  let stopped = false;
  return {
    url: `${spec.scheme}://${HOST}:${port}`,
    port,
    kind: 'process',
    async stop() {
      if (stopped) return;
      stopped = true;
      if (current) await killProcess(current);
      current = undefined;
      spec.cleanup?.();
    },
    async restart() {
      if (stopped) throw new Error(`${spec.what} fixture was stopped`);
      if (current) await killProcess(current);
      current = undefined;
      current = await launch(port);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Containers

async function startContainerServer(
  image: string,
  containerPort: number,
  command: readonly string[] | undefined,
  probe: (port: number) => Promise<boolean>,
): Promise<{ port: number; container: StartedTestContainer }> {
  const { GenericContainer } = await import('testcontainers');
  // A fixed host binding, so a restarted container keeps its port.
  const port = await freePort();
  let definition = new GenericContainer(image).withExposedPorts({ container: containerPort, host: port });
  if (command) definition = definition.withCommand([...command]);
  const container = await definition.start();
  try {
    await waitUntilReady(`${image} container on port ${port}`, () => probe(port));
  } catch (err) {
    await container.stop();
    throw err;
  }
  return { port, container };
}

function containerFixture(
  scheme: string,
  started: { port: number; container: StartedTestContainer },
  probe: (port: number) => Promise<boolean>,
): RestartableFixture {
  const { port, container } = started;
  let stopped = false;
  return {
    url: `${scheme}://${HOST}:${port}`,
    port,
    kind: 'container',
    async stop() {
      if (stopped) return;
      stopped = true;
      await container.stop();
    },
    async restart() {
      if (stopped) throw new Error(`${scheme} container fixture was stopped`);
      await container.restart();
      await waitUntilReady(`${scheme} container on port ${port}`, () => probe(port));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The fixtures

/** Starts a `nats-server` on a free 127.0.0.1 port (or a `nats:2` container). */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsFixture> {
  const extra = [...(options.args ?? [])];
  const jetstream = extra.some((a) => a === '-js' || a === '--jetstream');
  const hasStoreDir = extra.some((a) => a === '-sd' || a === '--store_dir' || a.startsWith('--store_dir='));
  if (await useContainers()) {
    const args = ['-p', '4222', ...extra];
    if (jetstream && !hasStoreDir) args.push('-sd', '/tmp/nats');
    return containerFixture('nats', await startContainerServer('nats:2', 4222, args, probeNats), probeNats);
  }
  const binary = findBinary('nats-server', 'FLEETMQ_NATS_SERVER', 'install nats-server: apt-get install -y nats-server');
  // A JetStream server gets its own store, kept across restart() and removed by stop().
  const storeDir = jetstream && !hasStoreDir ? mkdtempSync(join(tmpdir(), 'fleetmq-nats-')) : undefined;
  return startProcessServer({
    what: 'nats-server',
    scheme: 'nats',
    binary,
    cwd: tmpdir(),
    args: (port) => ['-a', HOST, '-p', String(port), ...(storeDir ? ['-sd', storeDir] : []), ...extra],
    probe: probeNats,
    ...(storeDir ? { cleanup: () => rmSync(storeDir, { recursive: true, force: true }) } : {}),
  });
}

/** Starts a `redis-server` (no persistence) on a free 127.0.0.1 port (or a `redis:7` container). */
export async function startRedisServer(): Promise<RedisFixture> {
  if (await useContainers()) {
    const command = ['redis-server', '--save', '', '--appendonly', 'no'];
    return containerFixture('redis', await startContainerServer('redis:7', 6379, command, probeRedis), probeRedis);
  }
  const binary = findBinary('redis-server', 'FLEETMQ_REDIS_SERVER', 'install redis-server: apt-get install -y redis-server');
  return startProcessServer({
    what: 'redis-server',
    scheme: 'redis',
    binary,
    cwd: tmpdir(),
    args: (port) => ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'],
    probe: probeRedis,
  });
}

type DynaliteFactory = (options: Record<string, unknown>) => Server;

const DYNAMO_CREDENTIALS = { accessKeyId: 'fleetmq', secretAccessKey: 'fleetmq' } as const;

/**
 * Starts a DynamoDB endpoint on a free 127.0.0.1 port: dynalite in this process (tables become
 * ACTIVE at once), or `amazon/dynamodb-local` in a container. Region `local`, fixed credentials.
 */
export async function startDynamo(): Promise<DynamoFixture> {
  if (await useContainers()) {
    const command = ['-jar', 'DynamoDBLocal.jar', '-inMemory', '-sharedDb'];
    const { port, container } = await startContainerServer('amazon/dynamodb-local', 8000, command, probeDynamo);
    let stopped = false;
    return {
      endpoint: `http://${HOST}:${port}`,
      region: 'local',
      credentials: DYNAMO_CREDENTIALS,
      port,
      kind: 'container',
      async stop() {
        if (stopped) return;
        stopped = true;
        await container.stop();
      },
    };
  }
  const require = createRequire(import.meta.url);
  const dynalite = require('dynalite') as DynaliteFactory;
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  await waitUntilReady(`dynalite on port ${port}`, () => probeDynamo(port));
  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://${HOST}:${port}`,
    region: 'local',
    credentials: DYNAMO_CREDENTIALS,
    port,
    kind: 'in-process',
    stop() {
      stopping ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Keep-alive clients would otherwise hold the close open.
        server.closeAllConnections();
      });
      return stopping;
    },
  };
}
