/**
 * What the k6 scripts share: where the brokers are (environment), the fleet's topic layout,
 * payloads that carry a sequence number and a send time, and the per-VU client settings.
 *
 * Environment:
 *   MQTT_BROKER   broker URL(s), comma-separated (default mqtt://localhost:1883, the
 *                 docker-compose load balancer); the first is the URL, the rest are failover
 *                 servers Paho tries in order
 *   CLIENT_PREFIX prefix of client IDs and device names (default k6), so that two runs against
 *                 one cluster do not take each other's sessions over
 *   MQTT_USERNAME / MQTT_PASSWORD   credentials, when the cluster requires them
 *   TOPIC_ROOT    first topic level (default fleet)
 */
import type { ClientOptions, ConnectOptions } from 'k6/x/mqtt';

export function envString(name: string, fallback: string): string {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : v;
}

export function envNumber(name: string, fallback: number): number {
  const v = __ENV[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

/** `MQTT_BROKER` split into the URL to connect to and failover servers. */
export function brokers(): { url: string; servers: string[] } {
  const all = envString('MQTT_BROKER', 'mqtt://localhost:1883')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const [url, ...servers] = all;
  if (url === undefined) throw new Error('MQTT_BROKER names no broker');
  return { url, servers };
}

export const PREFIX = envString('CLIENT_PREFIX', 'k6');
export const TOPIC_ROOT = envString('TOPIC_ROOT', 'fleet');

export const topics = {
  telemetry: (device: string): string => `${TOPIC_ROOT}/${device}/telemetry`,
  commands: (device: string): string => `${TOPIC_ROOT}/${device}/commands`,
  acks: (device: string): string => `${TOPIC_ROOT}/${device}/acks`,
  allTelemetry: (): string => `${TOPIC_ROOT}/+/telemetry`,
  allAcks: (): string => `${TOPIC_ROOT}/+/acks`,
};

/** The device a topic `<root>/<device>/<kind>` belongs to. */
export function deviceOf(topic: string): string {
  return topic.split('/')[1] ?? '';
}

/** The device name of VU `vu` (1-based). */
export const deviceName = (vu: number): string => `${PREFIX}-dev-${vu}`;

export function clientOptions(clientId: string): ClientOptions {
  const username = __ENV['MQTT_USERNAME'];
  const password = __ENV['MQTT_PASSWORD'];
  return {
    client_id: clientId,
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
  };
}

export function connectOptions(keepalive: number): ConnectOptions {
  const { servers } = brokers();
  return { keepalive, connect_timeout: envNumber('CONNECT_TIMEOUT_MS', 10_000), ...(servers.length ? { servers } : {}) };
}

/** A message: sequence number, send time (ms since the epoch) and optional fields, as JSON. */
export interface Stamped {
  seq: number;
  ts: number;
  [key: string]: unknown;
}

export function stamp(seq: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...extra, seq, ts: Date.now() });
}

/** Decodes a JSON payload from the extension's ArrayBuffer (ASCII JSON only). */
export function parseStamped(payload: ArrayBuffer): Stamped | undefined {
  try {
    const text = String.fromCharCode(...new Uint8Array(payload));
    const value = JSON.parse(text) as Partial<Stamped>;
    return typeof value.seq === 'number' && typeof value.ts === 'number' ? (value as Stamped) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Per-device sequence bookkeeping on the receiving side: counts gaps (lost) and repeats or
 * regressions (duplicated or reordered) in each device's sequence numbers.
 */
export class SequenceBook {
  private readonly last = new Map<string, number>();

  /** Returns [lost, repeated] for this message. */
  see(device: string, seq: number): [number, number] {
    const last = this.last.get(device);
    if (last === undefined || seq > last) {
      this.last.set(device, seq);
      return [last === undefined ? 0 : seq - last - 1, 0];
    }
    return [0, 1];
  }
}

/** k6 duration strings ("90s", "2m", "1h30m", "500ms") in ms. */
export function durationMs(d: string): number {
  let ms = 0;
  for (const m of d.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    const unit = m[2];
    const f = unit === 'ms' ? 1 : unit === 's' ? 1_000 : unit === 'm' ? 60_000 : 3_600_000;
    ms += Number(m[1]) * f;
  }
  return ms;
}
