import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import { ReasonCode, reasonName, type Backend } from '@fleetmq/protocol';
import type { Broker, BrokerPorts } from '@fleetmq/broker';
import type { Listener } from '@fleetmq/transport';
import type { BridgeStats } from '@fleetmq/bridge';
import { bridgeMetricSamples } from '@fleetmq/bridge/bridge-metrics';
import { LATENCY_BUCKETS, type BackendTimings } from './backend-timings.js';

/** Which backend serves each port (absent: the in-process adapter, which has no metrics). */
export interface PortBackends {
  readonly bus?: Backend;
  readonly ownership?: Backend;
  readonly stores?: Backend;
}

/** What the metrics read, each time Prometheus scrapes. */
export interface MetricsSource {
  readonly broker: Broker;
  readonly listeners: readonly Listener[];
  readonly ports: BrokerPorts;
  readonly backends: PortBackends;
  readonly timings: BackendTimings;
  /** Connections each listener accepted (`fleetmq_connections_accepted_total`). */
  readonly accepted: ReadonlyMap<string, { count: number }>;
  ready(): boolean;
  draining(): boolean;
  /** The bridges this node knows (running here or on standby); absent when none are configured. */
  bridges?(): readonly BridgeStats[];
  /** Reloads of the password file and acl_file; absent when there are none. */
  readonly authReloads?: { readonly reloads: number; readonly reloadFailures: number };
}

type Labels = Record<string, string | number>;
/** One value, or labelled values. */
type Values = number | readonly (readonly [Labels, number])[];

const PROTOCOLS: ReadonlyMap<number, string> = new Map([
  [3, '3.1'],
  [4, '3.1.1'],
  [5, '5.0'],
]);

/** Counters other parts of the broker may not have (read as 0 where they do not). */
type Counts<K extends string> = Partial<Record<K, number>>;

/**
 * The node's Prometheus registry (the metric names are the contract in README "Operations").
 * Every value is read from the broker's plain counters when scraped: nothing here runs per
 * message.
 */
export function createMetricsRegistry(source: MetricsSource): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const { broker } = source;
  const { stats } = broker;
  const registryStats = broker.registry.stats;

  /** A counter or gauge whose values are read from the broker's counters at each scrape. */
  const collected = (Kind: typeof Counter | typeof Gauge, name: string, help: string, labelNames: readonly string[], read: () => Values): void => {
    const metric: Counter | Gauge = new Kind({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        // a counter is re-set from its source, which only grows: inc from zero, never down
        metric.reset();
        const values = read();
        const put = metric instanceof Gauge ? (l: Labels, v: number) => metric.set(l, v) : (l: Labels, v: number) => (metric as Counter).inc(l, v);
        if (typeof values === 'number') put({}, values);
        else for (const [labels, v] of values) put(labels, v);
      },
    });
  };
  const counter = collected.bind(undefined, Counter);
  const gauge = collected.bind(undefined, Gauge);
  const byQos = (counts: readonly number[]): Values => counts.map((n, qos) => [{ qos }, n] as const);

  gauge('fleetmq_connections', 'Connected MQTT clients by listener and protocol version', ['listener', 'protocol'], () => {
    const counts = new Map<string, number>();
    for (const l of source.listeners) for (const p of PROTOCOLS.values()) counts.set(`${l.name}\u0000${p}`, 0);
    for (const channel of broker.connections()) {
      if (channel.state !== 'connected') continue;
      const key = `${channel.info.listener}\u0000${PROTOCOLS.get(channel.protocolVersion) ?? String(channel.protocolVersion)}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return [...counts].map(([key, n]) => {
      const [listener, protocol] = key.split('\u0000') as [string, string];
      return [{ listener, protocol }, n] as const;
    });
  });
  counter('fleetmq_connections_accepted_total', 'Connections each listener accepted (TCP, TLS or WebSocket)', ['listener'], () =>
    [...source.accepted].map(([listener, c]) => [{ listener }, c.count] as const),
  );
  counter('fleetmq_connections_refused_total', 'CONNECTs refused with a CONNACK, by listener and reason (connections, connection_rate, not_authorized, …)', ['listener', 'reason'], () => {
    const values: (readonly [Labels, number])[] = [];
    for (const l of source.listeners) {
      const byCode = stats.connectsRefused.get(l.name);
      // the listener limits' reasons always exist, so that rate() sees their first refusal
      for (const code of [ReasonCode.QuotaExceeded, ReasonCode.ConnectionRateExceeded]) values.push([{ listener: l.name, reason: refusalReason(code) }, byCode?.[code] ?? 0]);
      byCode?.forEach((n, code) => {
        if (n > 0 && code !== ReasonCode.QuotaExceeded && code !== ReasonCode.ConnectionRateExceeded) values.push([{ listener: l.name, reason: refusalReason(code) }, n]);
      });
    }
    return values;
  });
  gauge('fleetmq_sessions', 'Sessions this node holds: connected, or detached (persistent, client offline)', ['state'], () => [
    [{ state: 'connected' }, broker.registry.connectedCount],
    [{ state: 'detached' }, broker.registry.detachedCount],
  ]);
  counter('fleetmq_messages_received_total', 'PUBLISH packets received from clients, by QoS', ['qos'], () => byQos(stats.messagesIn));
  counter('fleetmq_messages_sent_total', 'PUBLISH packets sent to clients, by QoS', ['qos'], () => byQos(stats.messagesOut));
  counter('fleetmq_bytes_received_total', 'Bytes read from client connections', [], () => stats.bytesIn);
  counter('fleetmq_bytes_sent_total', 'Bytes written to client connections', [], () => stats.bytesOut);
  counter('fleetmq_messages_dropped_total', 'Messages dropped, by reason', ['reason'], () => {
    const d = stats.dropped;
    return [
      [{ reason: 'queue_full' }, d.queueFull],
      [{ reason: 'expired' }, d.expired],
      [{ reason: 'too_large' }, d.tooLarge],
      [{ reason: 'publish_failed' }, d.publishFailed],
      [{ reason: 'slow_consumer' }, d.slowConsumer],
      [{ reason: 'offline_queue_full' }, registryStats.offlineQueueFull],
      [{ reason: 'handover_buffer_full' }, registryStats.handoverDropped],
    ];
  });
  gauge('fleetmq_queued_messages', 'Messages waiting in the queues of the connected sessions on this node', [], () => {
    let n = 0;
    for (const channel of broker.connections()) n += channel.session?.queue.length ?? 0;
    return n;
  });
  gauge('fleetmq_inflight_messages', 'QoS 1/2 messages sent to clients on this node and not yet acknowledged', [], () => {
    let n = 0;
    for (const channel of broker.connections()) n += channel.session?.inflight.size ?? 0;
    return n;
  });
  counter('fleetmq_offline_queued_total', 'Messages appended to offline queues for detached sessions', [], () => registryStats.offlineQueued);
  counter('fleetmq_takeovers_total', 'Sessions taken over from another connection (here or on another node)', [], () => registryStats.takeovers);
  counter('fleetmq_sessions_expired_total', 'Detached sessions ended by their expiry interval', [], () => registryStats.sessionsExpired);
  counter('fleetmq_wills_published_total', 'Will messages published', [], () => registryStats.willsPublished);
  counter('fleetmq_sessions_adopted_total', 'Sessions (or wills) this node took over from a node that died', [], () => registryStats.sessionsAdopted);
  counter('fleetmq_sessions_lost_total', 'Clients and detached sessions this node let go because live nodes adopted them while its heartbeat had lapsed', [], () => registryStats.sessionsLost);
  counter('fleetmq_auth_expired_total', 'Clients disconnected when their token expired (5.0: DISCONNECT 0xA0)', [], () => stats.auth.expired);
  const { authReloads } = source;
  if (authReloads !== undefined) {
    counter('fleetmq_auth_reloads_total', 'Password file and acl_file reloads, by result', ['result'], () => [
      [{ result: 'success' }, authReloads.reloads],
      [{ result: 'failure' }, authReloads.reloadFailures],
    ]);
  }
  const { bridges } = source;
  if (bridges !== undefined) {
    const samples = (name: string): Values =>
      bridgeMetricSamples(bridges.call(source))
        .filter((s) => s.name === name)
        .map((s) => [s.labels, s.value] as const);
    gauge('fleetmq_bridge_state', 'Bridges: 1 while connected to the remote broker from this node', ['bridge'], () => samples('fleetmq_bridge_state'));
    counter('fleetmq_bridge_messages_total', 'Messages a bridge carried, by direction (in: from the remote)', ['bridge', 'direction'], () => samples('fleetmq_bridge_messages_total'));
    gauge('fleetmq_bridge_queue_length', 'QoS 1/2 messages a bridge holds for a remote that is down', ['bridge'], () => samples('fleetmq_bridge_queue_length'));
    counter('fleetmq_bridge_dropped_total', "Messages a bridge dropped (its queue's limit)", ['bridge'], () => samples('fleetmq_bridge_dropped_total'));
  }
  counter('fleetmq_auth_attempts_total', 'CONNECT authentication outcomes: accepted, refused, throttled (source failed too often)', ['result'], () => {
    // the provider chain counts its throttled refusals; the channel counts them with the others
    const throttled = (broker.authenticator as { stats?: { throttled?: number } }).stats?.throttled ?? 0;
    return [
      [{ result: 'accepted' }, stats.auth.accepted],
      [{ result: 'refused' }, Math.max(0, stats.auth.refused - throttled)],
      [{ result: 'throttled' }, throttled],
    ];
  });
  counter('fleetmq_authz_denied_total', 'Authorization refusals, by action', ['action'], () => {
    const a = stats.authz;
    return [
      [{ action: 'publish' }, a.publishDenied],
      [{ action: 'subscribe' }, a.subscribeDenied],
      [{ action: 'read' }, a.readDenied],
      [{ action: 'will' }, a.willDenied],
    ];
  });
  counter('fleetmq_limit_hits_total', 'Policy limits hit, by limit', ['limit'], () => {
    const l = stats.limits as Counts<keyof typeof stats.limits | 'packetSize' | 'inflight' | 'queueLength' | 'connections' | 'connectionRate'>;
    return [
      [{ limit: 'publish_rate' }, l.publishRate ?? 0],
      [{ limit: 'max_qos' }, l.maxQoS ?? 0],
      [{ limit: 'retain' }, l.retain ?? 0],
      [{ limit: 'payload_size' }, l.payloadSize ?? 0],
      [{ limit: 'packet_size' }, l.packetSize ?? 0],
      [{ limit: 'connections' }, l.connections ?? 0],
      [{ limit: 'connection_rate' }, l.connectionRate ?? 0],
      [{ limit: 'inflight' }, l.inflight ?? 0],
      [{ limit: 'queue' }, (l.queueLength ?? 0) + registryStats.offlineQueueFull],
    ];
  });
  counter('fleetmq_protocol_errors_total', 'Connections closed or refused for a protocol violation or a refused CONNECT', [], () => stats.protocolErrors);
  counter('fleetmq_bus_messages_received_total', 'Messages this node received from the message bus (every copy)', [], () => broker.router.stats.busMessages);
  counter('fleetmq_bus_messages_published_total', 'Messages this node handed to the message bus', [], () => broker.busPublished);

  registry.registerMetric(backendLatency(source.timings) as unknown as Metric);
  counter('fleetmq_backend_errors_total', 'Backend requests that failed, by backend and operation', ['backend', 'operation'], () =>
    [...source.timings.all()].map((t) => [{ backend: t.backend, operation: t.operation }, t.errors] as const),
  );
  gauge('fleetmq_backend_up', 'Configured backend reachable (1) or not (0)', ['backend'], () => backendsUp(source));
  gauge('fleetmq_ready', 'The node is ready: listeners open, every backend reachable, not draining', [], () => (source.ready() ? 1 : 0));
  gauge('fleetmq_draining', 'The node is draining (SIGTERM or POST /api/v1/node/drain)', [], () => (source.draining() ? 1 : 0));
  counter('fleetmq_tls_certificate_reloads_total', 'TLS certificate reloads of tls and wss listeners, by result', ['listener', 'result'], () =>
    source.listeners.flatMap((l) => {
      const { reloads, reloadFailures } = l as { reloads?: unknown; reloadFailures?: unknown };
      if (typeof reloads !== 'number' || typeof reloadFailures !== 'number') return [];
      return [[{ listener: l.name, result: 'success' }, reloads] as const, [{ listener: l.name, result: 'failure' }, reloadFailures] as const];
    }),
  );
  return registry;
}

/**
 * A CONNACK reason code as a label: 0x97 (the listener's connection limit) `connections`, 0x9F
 * (connection rate, or a throttled source) `connection_rate`, others their name in snake case.
 */
function refusalReason(code: number): string {
  if (code === ReasonCode.QuotaExceeded) return 'connections';
  if (code === ReasonCode.ConnectionRateExceeded) return 'connection_rate';
  return reasonName(code).replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/[()]/g, '').toLowerCase();
}

/** 1/0 per configured backend: its adapter's `ready` where it has one, else its last request's outcome. */
function backendsUp(source: MetricsSource): Values {
  const { ports, backends, timings } = source;
  const up = new Map<Backend, boolean>();
  const note = (backend: Backend | undefined, port: object): void => {
    if (backend === undefined) return;
    const ready = (port as { readonly ready?: unknown }).ready;
    const ok = typeof ready === 'boolean' ? ready : (timings.lastSucceeded(backend) ?? true);
    up.set(backend, (up.get(backend) ?? true) && ok);
  };
  note(backends.bus, ports.bus);
  note(backends.ownership, ports.ownership);
  for (const port of [ports.sessions, ports.offlineQueue, ports.retained]) note(backends.stores, port);
  return [...up].map(([backend, ok]) => [{ backend }, ok ? 1 : 0] as const);
}

/**
 * `fleetmq_backend_request_duration_seconds` as prom-client formats a histogram, read from
 * BackendTimings' plain counters (prom-client's own Histogram hashes its labels on every
 * observation, which the bus would pay per message).
 */
function backendLatency(timings: BackendTimings) {
  const name = 'fleetmq_backend_request_duration_seconds';
  const help = 'Backend request duration, by backend and operation (method of the port)';
  const get = () => {
    const values: { metricName: string; labels: Labels; value: number }[] = [];
    for (const t of timings.all()) {
      const labels = { backend: t.backend, operation: t.operation };
      let cumulative = 0;
      LATENCY_BUCKETS.forEach((le, i) => {
        cumulative += t.counts[i]!;
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
      });
      values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: t.count });
      values.push({ metricName: `${name}_sum`, labels, value: t.sum });
      values.push({ metricName: `${name}_count`, labels, value: t.count });
    }
    return Promise.resolve({ name, help, type: 'histogram', values, aggregator: 'sum' });
  };
  return { name, help, type: 'histogram', aggregator: 'sum', get, reset: () => undefined };
}
