/**
 * The bridges' metric samples, for the ops endpoint. No MQTT client here
 * (`@fleetmq/bridge/bridge-metrics`): a node without bridges does not load one.
 */
import type { BridgeStats } from './bridge.js';

/** One sample of a bridge metric, for the ops endpoint. */
export interface BridgeMetricSample {
  readonly name: 'fleetmq_bridge_state' | 'fleetmq_bridge_messages_total' | 'fleetmq_bridge_queue_length' | 'fleetmq_bridge_dropped_total';
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The metric samples of bridge stats: state (1 connected), messages by direction, queue length, dropped. */
export function bridgeMetricSamples(stats: readonly BridgeStats[]): BridgeMetricSample[] {
  const out: BridgeMetricSample[] = [];
  for (const s of stats) {
    const bridge = s.name;
    out.push({ name: 'fleetmq_bridge_state', labels: { bridge }, value: s.state === 'connected' ? 1 : 0 });
    out.push({ name: 'fleetmq_bridge_messages_total', labels: { bridge, direction: 'in' }, value: s.messagesIn });
    out.push({ name: 'fleetmq_bridge_messages_total', labels: { bridge, direction: 'out' }, value: s.messagesOut });
    out.push({ name: 'fleetmq_bridge_queue_length', labels: { bridge }, value: s.queued });
    out.push({ name: 'fleetmq_bridge_dropped_total', labels: { bridge }, value: s.dropped });
  }
  return out;
}
