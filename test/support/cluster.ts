import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startDynamo, startNatsServer, startRedisServer, type DynamoFixture, type NatsFixture, type RedisFixture } from '@fleetmq/testkit';

/**
 * A FleetMQ cluster of real edge-node processes (`node services/edge/dist/cli.js start`, the
 * build `npm test` makes), joined through one NATS server and one DynamoDB endpoint, and
 * optionally one Redis (client-ID ownership, node registry). Each node has its own node ID (its
 * NATS connection name) and a free 127.0.0.1 TCP port. Nodes are stopped by their PID: SIGTERM,
 * then SIGKILL after a timeout (`terminate` reports how a drained node exited); a process exit
 * hook kills any that a test run left behind.
 */

const CLI = fileURLToPath(new URL('../../services/edge/dist/cli.js', import.meta.url));
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

export interface LogEvent {
  msg: string;
  level?: number;
  [key: string]: unknown;
}

export interface ClusterNode {
  /** FLEETMQ_NODE_ID, also the name of its NATS connection (nats-server /connz). */
  readonly id: string;
  readonly pid: number;
  /** MQTT over TCP on 127.0.0.1. */
  readonly port: number;
  /** `mqtt://127.0.0.1:PORT` */
  readonly url: string;
  /** Every JSON log line the node wrote so far. */
  readonly events: LogEvent[];
  /** Its stderr (non-JSON output, crashes). */
  stderr(): string;
  /** Resolves once `count` log events satisfy `pred` (counted from the start); rejects after `timeoutMs`. */
  waitForEvent(pred: (e: LogEvent) => boolean, count?: number, timeoutMs?: number): Promise<LogEvent[]>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM by PID, SIGKILL if it has not exited after a timeout. Idempotent. */
  stop(): Promise<void>;
  /**
   * SIGTERM by PID (a drain) and waits for the exit: resolves with the exit status and the
   * milliseconds from the signal to the exit. A node still running after `timeoutMs` is
   * killed (SIGKILL) and reported with `killed: true`.
   */
  terminate(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; killed: boolean }>;
}

export interface Cluster {
  readonly nodes: readonly ClusterNode[];
  stop(): Promise<void>;
}

export interface ClusterOptions {
  readonly nodes: number;
  readonly nats: NatsFixture;
  readonly dynamo: DynamoFixture;
  /** Node IDs are `<idPrefix>-1`…; default a random prefix so IDs are unique per cluster. */
  readonly idPrefix?: string;
  /** Table prefix (default unique per cluster, so test files never share retained messages). */
  readonly tablePrefix?: string;
  /**
   * Client-ID ownership and the node registry in this Redis (`cluster.redis.url`); then
   * startCluster also waits until every node is registered (`node_registered`).
   */
  readonly redis?: RedisFixture;
  /** Extra environment for every node (FLEETMQ_… overrides). */
  readonly env?: Readonly<Record<string, string>>;
}

/** Every node started here and not yet exited, killed by PID if the test process exits first. */
const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of live) {
      try {
        if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

function startNode(id: string, env: Record<string, string>): ClusterNode {
  const child = spawn(process.execPath, [CLI, 'start'], {
    env: { ...process.env, ...env, FLEETMQ_NODE_ID: id },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  const events: LogEvent[] = [];
  let stderr = '';
  const waiters = new Set<() => void>();
  const notify = (): void => {
    for (const w of [...waiters]) w();
  };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      events.push(JSON.parse(line) as LogEvent);
    } catch {
      stderr += `${line}\n`;
    }
    notify();
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8_000);
  });
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (err) => {
      stderr += `spawn failed: ${err.message}\n`;
      done = true;
      notify();
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      done = true;
      notify();
      resolve({ code, signal });
    });
  });

  const waitForEvent = (pred: (e: LogEvent) => boolean, count = 1, timeoutMs = 5_000): Promise<LogEvent[]> =>
    new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      const check = (): void => {
        const found = events.filter(pred);
        if (found.length >= count) {
          finish();
          resolve(found.slice(0, count));
        } else if (done) {
          finish();
          reject(new Error(`node ${id} exited before the awaited log event; stderr:\n${stderr}\nlog:\n${events.map((e) => e.msg).join(' ')}`));
        }
      };
      timer = setTimeout(() => {
        finish();
        reject(new Error(`node ${id}: timed out waiting for a log event; log:\n${events.map((e) => e.msg).join(' ')}\nstderr:\n${stderr}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });

  let stopping: Promise<void> | undefined;
  let terminating: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; killed: boolean }> | undefined;
  const terminate = (timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; killed: boolean }> => {
    terminating ??= (async () => {
      const since = Date.now();
      if (!done && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      const ms = Date.now() - since;
      if (late && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      return { ...(await exited), ms, killed: late };
    })();
    stopping ??= terminating.then(() => undefined);
    return terminating;
  };
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (done || child.pid === undefined) return;
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
      const late = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (late) {
        signal('SIGKILL');
        await exited;
      }
    })();
    return stopping;
  };

  return {
    id,
    pid: child.pid ?? -1,
    port: -1, // replaced once listener_started is seen
    url: '',
    events,
    stderr: () => stderr,
    waitForEvent,
    exited,
    stop,
    terminate,
  };
}

/**
 * Starts `nodes` edge-node processes on one NATS server and one DynamoDB endpoint and waits
 * until each one listens and is connected to NATS (`bus_connected`). On any failure, stops
 * what it started and rethrows.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const prefix = options.idPrefix ?? `edge-${randomBytes(3).toString('hex')}`;
  const tablePrefix = options.tablePrefix ?? `${prefix}-`;
  const { nats, dynamo } = options;
  const env: Record<string, string> = {
    FLEETMQ_LISTENERS: 'tcp://127.0.0.1:0',
    // each node's ops server on a free port (the log event ops_server_started says which)
    FLEETMQ_OPS__PORT: '0',
    FLEETMQ_LOG_LEVEL: 'info',
    FLEETMQ_CLUSTER__NATS__SERVERS: nats.url,
    FLEETMQ_DYNAMODB__ENDPOINT: dynamo.endpoint,
    FLEETMQ_DYNAMODB__REGION: dynamo.region,
    FLEETMQ_DYNAMODB__TABLE_PREFIX: tablePrefix,
    FLEETMQ_DYNAMODB__CREATE_TABLES: 'true',
    // a cluster refuses to start open to anonymous clients unless told so
    FLEETMQ_AUTH__ALLOW_ANONYMOUS: 'true',
    AWS_ACCESS_KEY_ID: dynamo.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: dynamo.credentials.secretAccessKey,
    ...(options.redis !== undefined ? { FLEETMQ_CLUSTER__REDIS__URL: options.redis.url } : {}),
    ...options.env,
  };
  const started: ClusterNode[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(started.map((n) => n.stop()));
  };
  try {
    for (let i = 1; i <= options.nodes; i++) started.push(startNode(`${prefix}-${i}`, env));
    const nodes = await Promise.all(
      started.map(async (node) => {
        const [listening] = await node.waitForEvent((e) => e.msg === 'listener_started', 1, START_TIMEOUT_MS);
        await node.waitForEvent((e) => e.msg === 'bus_connected', 1, START_TIMEOUT_MS);
        if (options.redis !== undefined) await node.waitForEvent((e) => e.msg === 'node_registered', 1, START_TIMEOUT_MS);
        const port = listening!.port as number;
        return { ...node, port, url: `mqtt://127.0.0.1:${port}` } satisfies ClusterNode;
      }),
    );
    return { nodes, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * A cluster with every backend of its own: nats-server, redis-server and dynalite are started
 * first, and `stop` stops the nodes, then the backends.
 */
export async function startClusterWithBackends(
  options: Omit<ClusterOptions, 'nats' | 'dynamo' | 'redis'>,
): Promise<Cluster & { readonly nats: NatsFixture; readonly redis: RedisFixture; readonly dynamo: DynamoFixture }> {
  const backends = await Promise.allSettled([startNatsServer(), startRedisServer(), startDynamo()] as const);
  const stopBackends = (): Promise<unknown> =>
    Promise.allSettled(backends.map((b) => (b.status === 'fulfilled' ? b.value.stop() : undefined)));
  const [nats, redis, dynamo] = backends;
  if (nats.status !== 'fulfilled' || redis.status !== 'fulfilled' || dynamo.status !== 'fulfilled') {
    await stopBackends();
    throw [nats, redis, dynamo].map((b) => (b.status === 'rejected' ? (b.reason as Error) : undefined)).find((e) => e !== undefined);
  }
  let cluster: Cluster;
  try {
    cluster = await startCluster({ ...options, nats: nats.value, redis: redis.value, dynamo: dynamo.value });
  } catch (err) {
    await stopBackends();
    throw err;
  }
  return {
    nodes: cluster.nodes,
    nats: nats.value,
    redis: redis.value,
    dynamo: dynamo.value,
    async stop() {
      await cluster.stop();
      await stopBackends();
    },
  };
}

// ------------------------------------------------------------------ NATS monitoring

/** One client connection as nats-server's `/connz?subs=1` reports it. */
export interface NatsConnz {
  cid: number;
  name?: string;
  in_msgs: number;
  out_msgs: number;
  in_bytes: number;
  out_bytes: number;
  subscriptions: number;
  subscriptions_list?: string[];
}

/** The connections nats-server reports on its monitoring port, by connection name. */
export async function natsConnections(monitorPort: number): Promise<Map<string, NatsConnz>> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/connz?subs=1`, { signal: AbortSignal.timeout(2_000) });
  if (!res.ok) throw new Error(`connz answered ${res.status}`);
  const body = (await res.json()) as { connections?: NatsConnz[] };
  const byName = new Map<string, NatsConnz>();
  for (const c of body.connections ?? []) if (c.name !== undefined) byName.set(c.name, c);
  return byName;
}

/**
 * Resolves once every node's node link (its second NATS connection, `<id>/link`) serves its
 * request subject, so that takeover requests between the nodes are answered; rejects after
 * `timeoutMs`. Needs nats-server's monitoring port.
 */
export async function waitForNodeLinks(monitorPort: number, nodes: readonly ClusterNode[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const connz = await natsConnections(monitorPort);
    const missing = nodes.filter((n) => !(connz.get(`${n.id}/link`)?.subscriptions_list ?? []).includes(`fleetmq.node.${n.id.replace(/\./g, '_')}`));
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`node links not serving within ${timeoutMs} ms: ${missing.map((n) => n.id).join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
