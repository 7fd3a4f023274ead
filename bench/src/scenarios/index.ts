/**
 * Every scenario `npm run bench` knows, in the order they run. Single-broker scenarios run on
 * FleetMQ, Mosquitto and Aedes; `cluster-*` ones on three FleetMQ nodes and a nats-server.
 */
import { runMemory, runStorm, runTakeover } from './connections.js';
import { runLatency } from './latency.js';
import { runThroughput, type ThroughputSpec } from './throughput.js';
import type { MetricDef, Scenario } from './types.js';

export type { MetricDef, RunContext, RunResult, Scenario } from './types.js';

const THROUGHPUT: MetricDef = { key: 'throughput', label: 'msg/s delivered', unit: 'msg/s', better: 'higher' };
const DELIVERIES: MetricDef = { key: 'throughput', label: 'deliveries/s', unit: 'deliveries/s', better: 'higher' };
const AMPLIFICATION: MetricDef = { key: 'amplification', label: 'bus msgs received per msg needed', unit: '×', better: 'lower' };
const LATENCY: MetricDef[] = [
  { key: 'p50', label: 'latency p50', unit: 'µs', better: 'lower' },
  { key: 'p99', label: 'latency p99', unit: 'µs', better: 'lower' },
  { key: 'p999', label: 'latency p99.9', unit: 'µs', better: 'lower' },
];

/** Deliveries published and not yet delivered, at most (every throughput scenario). */
const MAX_OUTSTANDING = 20_000;
/** QoS 1 inflight window per publisher. */
const QOS1_INFLIGHT = 32;
const LATENCY_RATE = 1_000;

const fanIn = (publishers: number): ThroughputSpec => ({
  publishers,
  subscribers: 1,
  topic: (run, i) => `bench/${run}/fanin/${i}`,
  filter: (run) => `bench/${run}/fanin/#`,
  pubQos: 0,
  subQos: 0,
  inflight: 0,
  maxOutstanding: MAX_OUTSTANDING,
  batch: 64,
  maxMessages: 50_000_000,
});

const qos1: ThroughputSpec = {
  publishers: 1,
  subscribers: 1,
  topic: (run) => `bench/${run}/qos1`,
  filter: (run) => `bench/${run}/qos1`,
  pubQos: 1,
  subQos: 1,
  inflight: QOS1_INFLIGHT,
  maxOutstanding: MAX_OUTSTANDING,
  batch: QOS1_INFLIGHT,
  maxMessages: 50_000_000,
};

const fanOut = (subscribers: number): ThroughputSpec => ({
  publishers: 1,
  subscribers,
  topic: (run) => `bench/${run}/fanout`,
  filter: (run) => `bench/${run}/fanout`,
  pubQos: 0,
  subQos: 0,
  inflight: 0,
  maxOutstanding: MAX_OUTSTANDING,
  batch: 16,
  maxMessages: 50_000_000,
});

function throughputScenario(name: string, title: string, kind: Scenario['kind'], spec: ThroughputSpec, metric: MetricDef): Scenario {
  return {
    name,
    title,
    kind,
    metrics: kind === 'cluster' ? [metric, AMPLIFICATION] : [metric],
    params: () => ({
      publishers: spec.publishers,
      subscribers: spec.subscribers,
      qos: spec.pubQos === spec.subQos ? spec.pubQos : `${spec.pubQos}→${spec.subQos}`,
      payloadBytes: 64,
      ...(spec.pubQos === 1 ? { inflightPerPublisher: spec.inflight } : {}),
      maxOutstandingDeliveries: spec.maxOutstanding,
    }),
    run: (ctx) => runThroughput(ctx, spec),
  };
}

function latencyScenario(name: string, title: string, kind: Scenario['kind']): Scenario {
  const seconds = (quick: boolean): number => (quick ? 1 : 10);
  return {
    name,
    title,
    kind,
    metrics: kind === 'cluster' ? [...LATENCY, AMPLIFICATION] : LATENCY,
    params: (quick) => ({ qos: 1, rate: LATENCY_RATE, seconds: seconds(quick), payloadBytes: 64 }),
    run: (ctx) => runLatency(ctx, { rate: LATENCY_RATE, seconds: seconds(ctx.quick) }),
  };
}

const STORM_CONCURRENCY = 100;

function stormScenario(name: string, title: string, kind: Scenario['kind'], full: number, quick: number): Scenario {
  const count = (q: boolean): number => (q ? quick : full);
  return {
    name,
    title,
    kind,
    metrics: [{ key: 'rate', label: 'CONNACK/s', unit: 'conn/s', better: 'higher' }],
    params: (q) => ({ connections: count(q), concurrentHandshakes: STORM_CONCURRENCY }),
    run: (ctx) => runStorm(ctx, count(ctx.quick), STORM_CONCURRENCY),
  };
}

function memoryScenario(name: string, title: string, full: number, quick: number): Scenario {
  const count = (q: boolean): number => (q ? quick : full);
  const settle = (q: boolean): number => (q ? 500 : 3_000);
  return {
    name,
    title,
    kind: 'single',
    metrics: [{ key: 'perConn', label: 'RSS per idle connection', unit: 'KiB', better: 'lower' }],
    params: (q) => ({ connections: count(q), settleMs: settle(q) }),
    run: (ctx) => runMemory(ctx, count(ctx.quick), STORM_CONCURRENCY, settle(ctx.quick)),
  };
}

export const SCENARIOS: readonly Scenario[] = [
  throughputScenario('qos0-fanin', 'QoS 0 fan-in, 10 publishers → 1 wildcard subscriber', 'single', fanIn(10), THROUGHPUT),
  throughputScenario('qos1', `QoS 1 end to end, 1 → 1, ${QOS1_INFLIGHT} in flight`, 'single', qos1, THROUGHPUT),
  throughputScenario('fanout-50', 'QoS 0 fan-out, 1 publisher → 50 subscribers', 'single', fanOut(50), DELIVERIES),
  throughputScenario('fanout-500', 'QoS 0 fan-out, 1 publisher → 500 subscribers', 'single', fanOut(500), DELIVERIES),
  latencyScenario('latency', `QoS 1 latency at ${LATENCY_RATE} msg/s`, 'single'),
  stormScenario('storm-5k', 'connection storm, 5,000 clients', 'single', 5_000, 500),
  stormScenario('storm-20k', 'connection storm, 20,000 clients', 'single', 20_000, 1_000),
  memoryScenario('memory-10k', 'RSS per idle connection, 10,000 connections', 10_000, 500),
  memoryScenario('memory-50k', 'RSS per idle connection, 50,000 connections', 50_000, 1_000),
  throughputScenario('cluster-qos0-fanin', 'cluster: QoS 0 fan-in, 10 publishers on 3 nodes → 1 subscriber', 'cluster', fanIn(10), THROUGHPUT),
  throughputScenario('cluster-qos1', 'cluster: QoS 1, publisher on node 1 → subscriber on node 2', 'cluster', qos1, THROUGHPUT),
  throughputScenario('cluster-fanout-50', 'cluster: QoS 0 fan-out, 1 → 50 subscribers on 3 nodes', 'cluster', fanOut(50), DELIVERIES),
  latencyScenario('cluster-latency', `cluster: QoS 1 latency at ${LATENCY_RATE} msg/s, node 1 → node 2`, 'cluster'),
  stormScenario('cluster-storm-5k', 'cluster: connection storm, 5,000 clients over 3 nodes', 'cluster', 5_000, 500),
  {
    name: 'cluster-takeover',
    title: 'cluster: session takeover (same client ID on the next node), time to CONNACK',
    kind: 'cluster',
    metrics: [
      { key: 'p50', label: 'takeover p50', unit: 'ms', better: 'lower' },
      { key: 'p99', label: 'takeover p99', unit: 'ms', better: 'lower' },
    ],
    params: (q) => ({ sessions: q ? 20 : 300, cleanSession: 'false', subscriptionsPerSession: 1 }),
    run: (ctx) => runTakeover(ctx, ctx.quick ? 20 : 300),
  },
];

/**
 * The scenarios a `--scenarios` list names: exact names, `prefix*`, or a group (`single`,
 * `cluster`, `all`). Throws on a name that matches nothing, listing the known ones.
 */
export function selectScenarios(list: string | undefined): Scenario[] {
  if (list === undefined || list.trim() === '' || list === 'all') return [...SCENARIOS];
  const wanted = list.split(',').map((s) => s.trim()).filter(Boolean);
  const chosen = new Set<Scenario>();
  for (const w of wanted) {
    const matches = SCENARIOS.filter((s) =>
      w === 'single' || w === 'cluster' ? s.kind === w : w.endsWith('*') ? s.name.startsWith(w.slice(0, -1)) : s.name === w,
    );
    if (matches.length === 0) throw new Error(`unknown scenario ${JSON.stringify(w)}; known: ${SCENARIOS.map((s) => s.name).join(', ')} (or single, cluster, all, prefix*)`);
    for (const m of matches) chosen.add(m);
  }
  return SCENARIOS.filter((s) => chosen.has(s));
}
