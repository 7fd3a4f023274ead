/**
 * The edge node's config as deployments write it: a plain object rendered to YAML, checked at
 * synth time by the edge's own parser, so a manifest never ships a config the node would refuse.
 */
import { dynamoTables, parseConfig, type EdgeConfig } from '@fleetmq/edge';
import { stringify } from 'yaml';

/** The ops HTTP server's port (/healthz, /readyz, /metrics, admin API) in every deployment. */
export const OPS_PORT = 8081;
export const READY_PATH = '/readyz';
export const LIVE_PATH = '/healthz';
export const METRICS_PATH = '/metrics';

/** Where the config file and secrets are mounted in the edge container. */
export const CONFIG_DIR = '/etc/fleetmq';
export const CONFIG_FILE = `${CONFIG_DIR}/fleetmq.yaml`;
export const TLS_DIR = `${CONFIG_DIR}/tls`;

/** MQTT ports by listener type (the edge's defaults, the ones load balancers expose). */
export const MQTT_PORTS = { tcp: 1883, ws: 8083, tls: 8883, wss: 8084 } as const;

export interface RenderedEdgeConfig {
  /** What the node will run with (defaults filled in). */
  readonly config: EdgeConfig;
  readonly yaml: string;
}

/**
 * Validates `raw` with the edge's parser and renders it to YAML. `deployTime` holds values the
 * deployment gives the node another way (environment variables with CDK tokens in them), by
 * dotted key (`cluster.redis.url`): checked with the rest, left out of the YAML.
 */
export function renderEdgeConfig(raw: Record<string, unknown>, deployTime: Readonly<Record<string, unknown>> = {}): RenderedEdgeConfig {
  const checked = structuredClone(raw);
  for (const [key, value] of Object.entries(deployTime)) {
    const path = key.split('.');
    let node = checked;
    for (const part of path.slice(0, -1)) {
      const next = node[part];
      node = node[part] = next !== null && typeof next === 'object' && !Array.isArray(next) ? (next as Record<string, unknown>) : {};
    }
    node[path[path.length - 1]!] = value;
  }
  const config = parseConfig(checked, 'deployment config');
  return { config, yaml: stringify(raw, { lineWidth: 0 }) };
}

/** Whole seconds a draining node may take (drain.gracePeriod, rounded up). */
export function drainSeconds(config: EdgeConfig): number {
  return Math.ceil(config.drain.gracePeriod / 1000);
}

/** The DynamoDB tables the node uses with this config (names and keys from the adapter). */
export function edgeTables(config: EdgeConfig): ReturnType<typeof dynamoTables> {
  if (config.dynamodb === undefined) throw new Error('the edge config has no dynamodb section: no tables to create');
  return dynamoTables(config.dynamodb);
}
