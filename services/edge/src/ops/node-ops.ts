import { readFileSync } from 'node:fs';
import type { BridgeStats } from '@fleetmq/bridge';
import type { Registry } from 'prom-client';
import { ConfigError } from '@fleetmq/protocol';
import type { Broker, BrokerPorts } from '@fleetmq/broker';
import type { AcceptHandler, Listener } from '@fleetmq/transport';
import type { EdgeConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { AdminApi } from './admin.js';
import { BackendTimings, instrumentPort } from './backend-timings.js';
import { createMetricsRegistry, type PortBackends } from './metrics.js';
import { OpsServer } from './ops-server.js';

/** The node as the ops server sees it. */
export interface OpsNode {
  readonly broker: Broker;
  readonly listeners: readonly Listener[];
  ready(): boolean;
  draining(): boolean;
  /** The drain SIGTERM runs; resolves once the node has stopped. */
  stop(): Promise<void>;
  readonly bridges?: { stats(): BridgeStats[] } | undefined;
  readonly authReloads?: { readonly reloads: number; readonly reloadFailures: number };
}

/**
 * Everything the ops milestone adds to a node: backend timings around the ports, accept
 * counters on the listeners, the metrics registry and the ops HTTP server. startNode calls
 * it in that order; nothing here is on the MQTT path but plain counters.
 */
export class NodeOps {
  readonly timings = new BackendTimings();
  private readonly accepted = new Map<string, { count: number }>();
  private readonly backends: PortBackends;
  private readonly adminToken: string | undefined;
  private server: OpsServer | undefined;
  private registry_: Registry | undefined;

  /** Reads ops.adminTokenFile now: a node that cannot read it fails at start with a ConfigError. */
  constructor(
    private readonly config: EdgeConfig,
    private readonly log: Logger,
  ) {
    this.backends = {
      ...(config.cluster.nats !== undefined ? { bus: 'nats' as const } : {}),
      ...(config.cluster.redis !== undefined ? { ownership: 'redis' as const } : {}),
      ...(config.dynamodb !== undefined ? { stores: 'dynamodb' as const } : {}),
    };
    this.adminToken = adminToken(config.ops);
  }

  /** The ports with every backend request timed (in-process adapters are left as they are). */
  instrument(ports: BrokerPorts): BrokerPorts {
    const { bus, ownership, stores } = this.backends;
    const t = this.timings;
    return {
      ...ports,
      bus: bus === undefined ? ports.bus : instrumentPort(ports.bus, bus, t),
      ownership: ownership === undefined ? ports.ownership : instrumentPort(ports.ownership, ownership, t),
      sessions: stores === undefined ? ports.sessions : instrumentPort(ports.sessions, stores, t),
      offlineQueue: stores === undefined ? ports.offlineQueue : instrumentPort(ports.offlineQueue, stores, t),
      retained: stores === undefined ? ports.retained : instrumentPort(ports.retained, stores, t),
    };
  }

  /** The listener's accept handler, counting what it accepts. */
  countAccepts(listener: string, accept: AcceptHandler): AcceptHandler {
    const counter = { count: 0 };
    this.accepted.set(listener, counter);
    return (stream, info) => {
      counter.count++;
      accept(stream, info);
    };
  }

  /** Creates the metrics and starts the ops server (unless ops.enabled is false). */
  async start(node: OpsNode, ports: BrokerPorts): Promise<void> {
    this.registry_ = createMetricsRegistry({
      broker: node.broker,
      listeners: node.listeners,
      ports,
      backends: this.backends,
      timings: this.timings,
      accepted: this.accepted,
      ready: () => node.ready(),
      draining: () => node.draining(),
      ...(node.bridges !== undefined ? { bridges: () => node.bridges!.stats() } : {}),
      ...(node.authReloads !== undefined ? { authReloads: node.authReloads } : {}),
    });
    const { ops } = this.config;
    if (!ops.enabled) return;
    const admin = new AdminApi({
      broker: node.broker,
      ports,
      drain: () => node.stop(),
      draining: () => node.draining(),
      log: this.log,
      ...(node.bridges !== undefined ? { bridges: () => node.bridges!.stats() } : {}),
    });
    this.server = await OpsServer.start({
      host: ops.host,
      port: ops.port,
      adminToken: this.adminToken,
      registry: this.registry_,
      admin,
      ready: () => node.ready(),
      log: this.log,
    });
  }

  /** The metrics registry (after start). */
  get registry(): Registry | undefined {
    return this.registry_;
  }

  address(): { host: string; port: number } | undefined {
    return this.server?.address();
  }

  async close(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }
}

/** The admin token from ops.adminToken or the first line of ops.adminTokenFile. */
function adminToken(ops: EdgeConfig['ops']): string | undefined {
  if (ops.adminTokenFile === undefined) return ops.adminToken;
  let text: string;
  try {
    text = readFileSync(ops.adminTokenFile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError('ops.adminTokenFile', `cannot read ${ops.adminTokenFile} (${code})`, 'give a readable file whose first line is the admin token', { cause: err });
  }
  const token = text.split(/\r?\n/)[0]!.trim();
  if (token.length < 16) {
    throw new ConfigError('ops.adminTokenFile', `the token in ${ops.adminTokenFile} is shorter than 16 characters`, 'write a random token (openssl rand -hex 32) on its first line');
  }
  return token;
}
