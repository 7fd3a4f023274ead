import { Broker, OrphanWatcher, type BrokerLog, type NodeRegistry } from '@fleetmq/broker';
import { ReasonCode } from '@fleetmq/protocol';
import { Connection, TcpListener, TlsListener, WsListener, WssListener, type Listener, type TlsOptions } from '@fleetmq/transport';
import { closePorts, openNodeRegistry, openPorts, portsReady } from './backends.js';
import { openBridges, type NodeBridges } from './bridges.js';
import type { EdgeConfig } from './config.js';
import type { Logger } from './logger.js';
import { NodeOps } from './ops/node-ops.js';
import { brokerSecurity, type AuthReloadStats } from './security.js';

export interface RunningNode {
  readonly broker: Broker;
  readonly listeners: readonly Listener[];
  /** Bridges to other brokers: `stats()` per bridge, `running()` here; undefined with none configured. */
  readonly bridges: NodeBridges['manager'] | undefined;
  /** Listeners open and every backend reachable (the readiness probe of the ops milestone). */
  ready(): boolean;
  /** Where each listener ended up (port 0 picks a free port). */
  addresses(): { name: string; host: string; port: number }[];
  /** Where the ops HTTP server listens (/healthz, /readyz, /metrics, admin API); undefined when ops.enabled is false. */
  opsAddress(): { host: string; port: number } | undefined;
  /** stop() has begun (SIGTERM, or POST /api/v1/node/drain). */
  draining(): boolean;
  /** Resolves once stop() has finished, whoever called it. */
  stopped(): Promise<void>;
  /** Re-reads the password file and acl_file now (SIGHUP); false when one could not be used. */
  reloadAuth(): Promise<boolean>;
  /** Auth file reloads done and failed (they also happen when the files change). */
  readonly authReloads: AuthReloadStats;
  stop(): Promise<void>;
}

/** Until the node's first registration succeeds (Redis is still connecting at start), it is retried this often. */
const REGISTER_RETRY_MS = 200;

/**
 * Registers the node and keeps it live (every third of the TTL); registers again if it expired.
 * The first registration is retried quickly: until it succeeds, a draining node does not see
 * this one and hands it nothing. Returns the function that stops it.
 */
function startHeartbeat(registry: NodeRegistry, nodeId: string, log: Logger, onExpired: () => Promise<unknown>): () => void {
  const info = { startedAt: Date.now() };
  let registered = false;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  let retries = 0;
  const beat = async (): Promise<void> => {
    if (stopped) return;
    try {
      if (!registered || !(await registry.heartbeat(nodeId))) {
        await registry.register(nodeId, info);
        if (registered) {
          log.warn({ nodeId }, 'node_registration_expired');
          // live nodes may have adopted some of its clients meanwhile: those are let go here, and
          // once more a TTL later for adoptions that were already under way
          const reconcile = (): void =>
            void onExpired().catch((err: unknown) => log.warn({ nodeId, err: (err as Error).message }, 'session_reconcile_failed'));
          reconcile();
          setTimeout(() => {
            if (!stopped) reconcile();
          }, registry.ttlMs).unref();
        } else log.info({ nodeId, ttlMs: registry.ttlMs }, 'node_registered');
        registered = true;
      }
    } catch (err) {
      // the quick retries of the first registration log once a second, not each time
      if (registered || retries % Math.ceil(1000 / REGISTER_RETRY_MS) === 0) {
        log.warn({ nodeId, err: (err as Error).message }, 'node_heartbeat_failed');
      }
      if (!registered && !stopped && retry === undefined) {
        retries++;
        retry = setTimeout(() => {
          retry = undefined;
          void beat();
        }, REGISTER_RETRY_MS);
        retry.unref();
      }
    }
  };
  void beat();
  const timer = setInterval(() => void beat(), Math.max(100, Math.floor(registry.ttlMs / 3)));
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
    clearTimeout(retry);
  };
}

function makeListener(spec: EdgeConfig['listeners'][number], maxPacketSize: number, log: BrokerLog): Listener {
  const base = { name: spec.name, host: spec.host, port: spec.port };
  const listenerLog = log.child({ listener: spec.name });
  switch (spec.type) {
    case 'tcp':
      return new TcpListener({ ...base, proxyProtocol: spec.proxyProtocol }, listenerLog);
    case 'ws':
      return new WsListener({ ...base, path: spec.path, maxPayload: maxPacketSize, proxyProtocol: spec.proxyProtocol }, listenerLog);
    case 'tls':
      return new TlsListener({ ...base, ...tlsOptions(spec), proxyProtocol: spec.proxyProtocol }, listenerLog);
    case 'wss':
      return new WssListener({ ...base, ...tlsOptions(spec), path: spec.path, maxPayload: maxPacketSize }, listenerLog);
  }
}

/** The listener's tls section as the transport takes it (the schema guarantees it is there). */
function tlsOptions(spec: EdgeConfig['listeners'][number]): TlsOptions {
  const { tls } = spec;
  if (tls === undefined) throw new Error(`listener ${spec.name}: tls settings missing`);
  return {
    certFile: tls.certFile,
    keyFile: tls.keyFile,
    minVersion: tls.minVersion,
    maxVersion: tls.maxVersion,
    clientCertificate: tls.clientCertificate,
    ...(tls.caFile !== undefined ? { caFile: tls.caFile } : {}),
    ...(tls.crlFile !== undefined ? { crlFile: tls.crlFile } : {}),
    ...(tls.ciphers !== undefined ? { ciphers: tls.ciphers } : {}),
    ...(tls.alpnProtocols !== undefined ? { alpnProtocols: tls.alpnProtocols } : {}),
  };
}

/**
 * Wires config to ports, broker and listeners, and starts them. No logic lives here.
 */
export async function startNode(config: EdgeConfig, log: Logger): Promise<RunningNode> {
  const brokerLog = log as unknown as BrokerLog;
  const { mqtt } = config;
  const { authFiles, ...security } = brokerSecurity(config, log); // reads the auth files: fails before any backend is opened
  const ops = new NodeOps(config, log); // reads ops.adminTokenFile: fails before any backend is opened
  const ports = ops.instrument(await openPorts(config, log));
  const broker = new Broker({
    nodeId: config.nodeId,
    ports,
    options: {
      maxPacketSize: mqtt.maxPacketSize,
      receiveMaximum: mqtt.receiveMaximum,
      maxQueuedMessages: mqtt.maxQueuedMessages,
      queueDropPolicy: mqtt.queueDropPolicy,
      topicAliasMaximum: mqtt.topicAliasMaximum,
      maxKeepAlive: mqtt.maxKeepAlive,
      maxSessionExpiryInterval: mqtt.maxSessionExpiryInterval,
      retainAvailable: mqtt.retainAvailable,
      maximumQoS: mqtt.maximumQoS,
      wildcardSubscriptionAvailable: mqtt.wildcardSubscriptionAvailable,
      subscriptionIdentifierAvailable: mqtt.subscriptionIdentifierAvailable,
      sharedSubscriptionAvailable: mqtt.sharedSubscriptionAvailable,
      maxClientIdLength: mqtt.maxClientIdLength,
    },
    log: brokerLog.child({ component: 'broker' }),
    ...security,
  });
  await broker.start();
  const bridges = await openBridges(config, broker, log); // reads the bridges' TLS files
  const connectionOptions = {
    maxPacketSize: mqtt.maxPacketSize,
    outputBufferLimit: mqtt.outputBufferLimit,
    slowConsumerTimeout: mqtt.slowConsumerTimeout,
    connectTimeout: mqtt.connectTimeout,
  };
  const connectionLog = brokerLog.child({ component: 'connection' });
  const listeners = config.listeners.map((spec) => makeListener(spec, mqtt.maxPacketSize, brokerLog));
  const started: Listener[] = [];
  try {
    for (const listener of listeners) {
      await listener.listen(
        ops.countAccepts(listener.name, (stream, meta) => {
          new Connection(stream, meta, broker, connectionOptions, connectionLog);
        }),
      );
      started.push(listener);
      log.info({ listener: listener.name, ...listener.address() }, 'listener_started');
    }
  } catch (err) {
    await Promise.allSettled(started.map((l) => l.close()));
    await closePorts(ports);
    throw err;
  }
  if (config.auth.watchFiles) await authFiles.watch();
  const registry = await openNodeRegistry(config, log);
  const reconcile = async (): Promise<void> => {
    const result = await broker.registry.reconcileOwnership();
    if (result.closed + result.dropped > 0) log.warn({ nodeId: config.nodeId, ...result }, 'sessions_lost_while_expired');
  };
  const stopHeartbeat = registry === undefined ? undefined : startHeartbeat(registry, config.nodeId, log, reconcile);
  // live nodes adopt the sessions of nodes that died (and this node what its last run left)
  const orphans =
    registry === undefined
      ? undefined
      : new OrphanWatcher({ nodeId: config.nodeId, nodes: registry, ownership: ports.ownership, sessions: broker.registry, log: brokerLog.child({ component: 'orphans' }) });
  orphans?.start();
  await bridges?.start();
  log.info({ nodeId: config.nodeId, listeners: started.map((l) => l.name) }, 'node_ready');

  let stopping: Promise<void> | undefined;
  let markStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (markStopped = resolve));
  const node: RunningNode = {
    broker,
    bridges: bridges?.manager,
    opsAddress: () => ops.address(),
    draining: () => stopping !== undefined,
    stopped: () => stopped,
    listeners: started,
    addresses: () => started.map((l) => ({ name: l.name, ...l.address() })),
    reloadAuth: () => authFiles.reload(),
    authReloads: authFiles.stats,
    ready: () => stopping === undefined && portsReady(ports),
    stop() {
      stopping ??= (async () => {
        // drain (DESIGN node lifecycle): stop accepting, report not ready, hand detached
        // sessions to live nodes, disconnect clients, then close; bounded by the grace period
        log.info({ nodeId: config.nodeId }, 'node_stopping');
        authFiles.stop();
        const closingListeners = Promise.allSettled(started.map((l) => l.close()));
        await orphans?.stop();
        let handedAll = false;
        const drained = (async () => {
          await bridges?.stop(); // releases their leases: another node takes each over
          const live = registry === undefined ? [] : await registry.liveNodes().catch(() => []);
          const { serverReference } = config.drain;
          const result = serverReference === undefined
            ? await broker.drain(live, ReasonCode.ServerShuttingDown)
            : await broker.drain(live, ReasonCode.UseAnotherServer, serverReference);
          log.info({ nodeId: config.nodeId, ...result }, 'node_drained');
          handedAll = result.kept === 0;
        })();
        const grace = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), config.drain.gracePeriod).unref());
        if ((await Promise.race([drained, grace])) === 'timeout') {
          log.warn({ nodeId: config.nodeId, gracePeriod: config.drain.gracePeriod }, 'drain_grace_period_exceeded');
          broker.shutdown(ReasonCode.ServerShuttingDown);
        }
        stopHeartbeat?.();
        // a node that kept sessions (no live node took them, or the grace period ran out) is
        // left to expire instead: the live nodes then adopt what it still owns, wills included
        if (handedAll) await registry?.deregister(config.nodeId).catch(() => undefined);
        else log.warn({ nodeId: config.nodeId }, 'node_left_to_expire');
        await closingListeners;
        await closePorts(ports);
        await registry?.close();
        log.info({ nodeId: config.nodeId }, 'node_stopped');
        await ops.close();
        markStopped();
      })();
      return stopping;
    },
  };
  try {
    await ops.start(node, ports);
  } catch (err) {
    await node.stop();
    throw err;
  }
  return node;
}
