/**
 * The brokers under test, each started by the benchmark on free 127.0.0.1 ports and stopped by
 * PID: one FleetMQ edge node (`services/edge/dist/cli.js start`), Mosquitto (Debian's binary,
 * with a generated config), Aedes (`bench/peers/aedes-server.mjs`), and a FleetMQ cluster of
 * three edge nodes joined by one nats-server (and one redis-server for client-ID ownership).
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RawClient } from './client.js';
import { ManagedProcess, freePort, onExit, tcpOpen, waitUntil } from './processes.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EDGE_CLI = join(ROOT, 'services/edge/dist/cli.js');
const AEDES_SERVER = join(ROOT, 'bench/peers/aedes-server.mjs');

export type BrokerName = 'fleetmq' | 'mosquitto' | 'aedes';
export const BROKERS: readonly BrokerName[] = ['fleetmq', 'mosquitto', 'aedes'];
export const CLUSTER = 'fleetmq-cluster';
export type TargetName = BrokerName | typeof CLUSTER;

/** A running broker (or cluster) the scenarios drive. */
export interface Target {
  readonly name: TargetName;
  /** MQTT over TCP on 127.0.0.1, one port per node. */
  readonly ports: readonly number[];
  /** The broker processes (one per node): RSS and CPU are read from these. */
  readonly pids: readonly number[];
  /** Processes that serve the brokers (nats-server, redis-server), counted in broker CPU. */
  readonly supportPids: readonly number[];
  /** FleetMQ node IDs (cluster), as nats-server's /connz names their connections. */
  readonly nodeIds?: readonly string[];
  /** nats-server's monitoring port (cluster). */
  readonly natsMonitorPort?: number;
  /** Settings that differ from the broker's defaults, for the report. */
  readonly settings: readonly string[];
  stop(): Promise<void>;
}

function findBinary(name: string, envVar: string, extra: readonly string[] = []): string | undefined {
  const override = process.env[envVar];
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', ...extra];
  for (const candidate of override ? [override] : dirs.filter(Boolean).map((d) => join(d, name))) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

export const binaries = {
  mosquitto: () => findBinary('mosquitto', 'BENCH_MOSQUITTO'),
  natsServer: () => findBinary('nats-server', 'FLEETMQ_NATS_SERVER'),
  redisServer: () => findBinary('redis-server', 'FLEETMQ_REDIS_SERVER'),
};

/** Why a broker cannot run here (a missing binary or build), or undefined. */
export function unavailable(name: TargetName): string | undefined {
  const edge = (): string | undefined => {
    try {
      accessSync(EDGE_CLI, constants.R_OK);
      return undefined;
    } catch {
      return `${EDGE_CLI} is missing: run \`npm run build\` first`;
    }
  };
  switch (name) {
    case 'fleetmq':
      return edge();
    case 'mosquitto':
      return binaries.mosquitto() ? undefined : 'mosquitto not found (apt-get install -y mosquitto, or set BENCH_MOSQUITTO)';
    case 'aedes':
      return undefined;
    case CLUSTER:
      return (
        edge() ??
        (binaries.natsServer() ? undefined : 'nats-server not found (apt-get install -y nats-server)') ??
        (binaries.redisServer() ? undefined : 'redis-server not found (apt-get install -y redis-server)')
      );
  }
}

/** Versions of what is measured, for the report. */
export function versions(): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'services/edge/package.json'), 'utf8')) as { version: string };
    let commit = 'unknown';
    try {
      commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
      const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim();
      if (dirty) commit += '+dirty';
    } catch {
      // not a git checkout
    }
    out['fleetmq'] = `${pkg.version} (${commit})`;
  } catch {
    out['fleetmq'] = 'unknown';
  }
  const mosquitto = binaries.mosquitto();
  if (mosquitto) {
    try {
      execFileSync(mosquitto, ['-h'], { encoding: 'utf8' });
    } catch (err) {
      // `mosquitto -h` exits 3 after printing its usage
      const text = String((err as { stdout?: string }).stdout ?? '');
      out['mosquitto'] = /mosquitto version (\S+)/.exec(text)?.[1] ?? 'unknown';
    }
    out['mosquitto'] ??= 'unknown';
  }
  try {
    const aedes = JSON.parse(readFileSync(join(ROOT, 'node_modules/aedes/package.json'), 'utf8')) as { version: string };
    out['aedes'] = aedes.version;
  } catch {
    out['aedes'] = 'unknown';
  }
  const nats = binaries.natsServer();
  if (nats) {
    try {
      out['nats-server'] = execFileSync(nats, ['--version'], { encoding: 'utf8' }).trim().replace(/^nats-server:\s*/, '');
    } catch {
      out['nats-server'] = 'unknown';
    }
  }
  return out;
}

/** CONNECT/CONNACK, then DISCONNECT: the broker answers MQTT, not only TCP. */
async function mqttReady(port: number): Promise<boolean> {
  if (!(await tcpOpen(port))) return false;
  try {
    const client = await RawClient.connect(port, { clientId: `bench-probe-${port}`, timeoutMs: 1_000 });
    await client.disconnect(1_000);
    return true;
  } catch {
    return false;
  }
}

/** Starts a process listening on a free port; tries another port if the first was taken meanwhile. */
async function startOnFreePort(what: string, launch: (port: number) => ManagedProcess, ready: (port: number) => Promise<boolean>): Promise<{ port: number; proc: ManagedProcess }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = launch(port);
    try {
      await waitUntil(`${what} on port ${port}`, () => ready(port), proc);
      return { port, proc };
    } catch (err) {
      lastError = err;
      await proc.stop();
    }
  }
  throw lastError;
}

/** FleetMQ settings the benchmark sets for every node (everything else is the default). */
export const FLEETMQ_ENV: Readonly<Record<string, string>> = {
  FLEETMQ_LOG_LEVEL: 'warn',
  FLEETMQ_MQTT__MAX_QUEUED_MESSAGES: '100000',
  // several nodes on one machine: each ops server on a free port, not all on 8081
  FLEETMQ_OPS__PORT: '0',
};

function startEdge(nodeId: string, port: number, extraEnv: Record<string, string> = {}): ManagedProcess {
  return new ManagedProcess(nodeId, process.execPath, [EDGE_CLI, 'start'], {
    cwd: ROOT,
    env: { ...process.env, ...FLEETMQ_ENV, FLEETMQ_NODE_ID: nodeId, FLEETMQ_LISTENERS: `tcp://127.0.0.1:${port}`, ...extraEnv },
  });
}

export async function startFleetmq(): Promise<Target> {
  const { port, proc } = await startOnFreePort('FleetMQ', (p) => startEdge('bench-edge', p), mqttReady);
  return {
    name: 'fleetmq',
    ports: [port],
    pids: [proc.pid],
    supportPids: [],
    settings: ['log.level warn', 'mqtt.maxQueuedMessages 100000'],
    stop: () => proc.stop(),
  };
}

export const MOSQUITTO_SETTINGS = [
  'allow_anonymous true',
  'max_queued_messages 100000',
  'max_inflight_messages 32',
  ...(process.env['BENCH_PEER_NODELAY'] === '1' ? ['set_tcp_nodelay true'] : []),
  'persistence false',
];

export async function startMosquitto(): Promise<Target> {
  const binary = binaries.mosquitto();
  if (!binary) throw new Error(unavailable('mosquitto'));
  const dir = mkdtempSync(join(tmpdir(), 'fleetmq-bench-mosquitto-'));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  onExit(cleanup);
  try {
    const { port, proc } = await startOnFreePort(
      'mosquitto',
      (p) => {
        const conf = join(dir, `mosquitto-${p}.conf`);
        writeFileSync(
          conf,
          [
            `listener ${p} 127.0.0.1`,
            ...MOSQUITTO_SETTINGS,
            'log_dest stderr',
            'log_type error',
            'log_type warning',
            '',
          ].join('\n'),
        );
        return new ManagedProcess('mosquitto', binary, ['-c', conf], { cwd: dir });
      },
      mqttReady,
    );
    return {
      name: 'mosquitto',
      ports: [port],
      pids: [proc.pid],
      supportPids: [],
      settings: MOSQUITTO_SETTINGS,
      stop: async () => {
        await proc.stop();
        cleanup();
      },
    };
  } catch (err) {
    cleanup();
    throw err;
  }
}

export async function startAedes(): Promise<Target> {
  const noDelay = process.env['BENCH_PEER_NODELAY'] === '1';
  const { port, proc } = await startOnFreePort(
    'aedes',
    (p) => new ManagedProcess('aedes', process.execPath, [AEDES_SERVER, '--port', String(p), ...(noDelay ? ['--no-delay'] : [])], { cwd: ROOT }),
    mqttReady,
  );
  return {
    name: 'aedes',
    ports: [port],
    pids: [proc.pid],
    supportPids: [],
    settings: ['Aedes.createBroker() defaults (in-memory persistence)', `net.createServer ${noDelay ? 'noDelay true' : 'defaults (Nagle on)'}`],
    stop: () => proc.stop(),
  };
}

// ------------------------------------------------------------------------------------ cluster

/** One connection as nats-server's /connz reports it. */
export interface Connz {
  name?: string;
  in_msgs: number;
  out_msgs: number;
  subscriptions: number;
  subscriptions_list?: string[];
}

export async function natsConnections(monitorPort: number): Promise<Map<string, Connz>> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/connz?subs=1&limit=1024`, { signal: AbortSignal.timeout(2_000) });
  if (!res.ok) throw new Error(`nats-server /connz answered ${res.status}`);
  const body = (await res.json()) as { connections?: Connz[] };
  const byName = new Map<string, Connz>();
  for (const c of body.connections ?? []) if (c.name !== undefined) byName.set(c.name, c);
  return byName;
}

export const CLUSTER_NODES = 3;

/**
 * Three edge nodes on one nats-server (the bus and the node links) and one redis-server
 * (client-ID ownership, so a CONNECT on another node takes the session over). Sessions stay in
 * memory on each node and move with the takeover; DynamoDB is not in the measured path.
 */
export async function startCluster(): Promise<Target> {
  const natsBinary = binaries.natsServer();
  const redisBinary = binaries.redisServer();
  if (!natsBinary || !redisBinary) throw new Error(unavailable(CLUSTER));
  const started: ManagedProcess[] = [];
  const stopAll = async (): Promise<void> => {
    // nodes first (they drain), then the servers they use
    await Promise.all(started.slice(2).map((p) => p.stop(10_000)));
    await Promise.all(started.slice(0, 2).map((p) => p.stop()));
  };
  try {
    const monitorPort = await freePort();
    const nats = await startOnFreePort(
      'nats-server',
      (p) => new ManagedProcess('nats-server', natsBinary, ['-a', '127.0.0.1', '-p', String(p), '-m', String(monitorPort)], { cwd: tmpdir() }),
      tcpOpen,
    );
    started.push(nats.proc);
    const redis = await startOnFreePort(
      'redis-server',
      (p) => new ManagedProcess('redis-server', redisBinary, ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { cwd: tmpdir() }),
      tcpOpen,
    );
    started.push(redis.proc);
    const prefix = `bench-${Math.random().toString(16).slice(2, 8)}`;
    const nodeIds = Array.from({ length: CLUSTER_NODES }, (_, i) => `${prefix}-${i + 1}`);
    const env = {
      FLEETMQ_CLUSTER__NATS__SERVERS: `nats://127.0.0.1:${nats.port}`,
      FLEETMQ_CLUSTER__REDIS__URL: `redis://127.0.0.1:${redis.port}`,
      // a cluster refuses to start open to anonymous clients unless told so
      FLEETMQ_AUTH__ALLOW_ANONYMOUS: 'true',
      // a stopped cluster hands its detached sessions around for at most this long
      FLEETMQ_DRAIN__GRACE_PERIOD: '3000',
    };
    const nodes: { port: number; proc: ManagedProcess }[] = [];
    for (const id of nodeIds) {
      const node = await startOnFreePort(`FleetMQ node ${id}`, (p) => startEdge(id, p, env), mqttReady);
      started.push(node.proc);
      nodes.push(node);
    }
    // every node's bus connection and node link are up
    await waitUntil(
      'cluster bus',
      async () => {
        const connz = await natsConnections(monitorPort).catch(() => new Map<string, Connz>());
        return nodeIds.every((id) => connz.has(id) && (connz.get(`${id}/link`)?.subscriptions ?? 0) > 0);
      },
      undefined,
      15_000,
    );
    return {
      name: CLUSTER,
      ports: nodes.map((n) => n.port),
      pids: nodes.map((n) => n.proc.pid),
      supportPids: [nats.proc.pid, redis.proc.pid],
      nodeIds,
      natsMonitorPort: monitorPort,
      settings: ['3 edge nodes', 'cluster.nats (one nats-server)', 'cluster.redis (ownership)', 'sessions in memory (no DynamoDB)', 'log.level warn', 'mqtt.maxQueuedMessages 100000'],
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

export function startTarget(name: TargetName): Promise<Target> {
  switch (name) {
    case 'fleetmq':
      return startFleetmq();
    case 'mosquitto':
      return startMosquitto();
    case 'aedes':
      return startAedes();
    case CLUSTER:
      return startCluster();
  }
}
