/**
 * Reconnect storm after a node drain: DEVICES devices connect, subscribe to their command
 * topic and publish a heartbeat every INTERVAL ms. At DRAIN_AT one edge node is drained
 * (SIGTERM) from outside the script (k6 cannot run commands; see k6/README.md): its clients
 * get DISCONNECT 0x8B (5.0) or a closed socket (3.1.1), and Paho reconnects each of them by
 * itself, through the load balancer or the next URL in MQTT_BROKER, all at about the same time.
 *
 *   (sleep 60 && docker compose stop edge-2) & \
 *   k6 run -e MQTT_BROKER=mqtt://localhost:1883 -e DEVICES=3000 -e DRAIN_AT=60s k6/dist/reconnect-storm.js
 *
 * Metrics: mqtt_reconnects (connections that came back), reconnect_time (Paho's `reconnect`
 * event, fired when it starts reconnecting after the loss, → `connect` again; a failed attempt
 * backs off from 1 s, so failed first attempts show as steps of seconds), resubscribe_time,
 * heartbeat_lost / heartbeat_repeated (gaps in each device's heartbeats as the monitor sees
 * them; heartbeats are QoS 1 but sessions are clean, so what a device could not publish while
 * disconnected is not sent later), command_lost (commands the monitor sent that no device
 * acknowledged within 5 s; sessions are clean, so a command sent while its device reconnects
 * is lost by design: no threshold on it).
 *
 * Environment (besides lib/fleet.ts): DEVICES (default 500), DURATION (default 3m), DRAIN_AT
 * (when the drain is expected, default 60s: only logged, for reading the graphs), INTERVAL
 * (ms, default 2000), KEEPALIVE (s, default 30), RECONNECT_P99_MS (threshold, default 15000).
 */
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { clearInterval, setInterval, setTimeout } from 'k6/timers';
import { Client } from 'k6/x/mqtt';
import type { Options } from 'k6/options';
import {
  PREFIX,
  SequenceBook,
  brokers,
  clientOptions,
  connectOptions,
  deviceName,
  deviceOf,
  durationMs,
  envNumber,
  envString,
  parseStamped,
  stamp,
  topics,
} from './lib/fleet.ts';

const DEVICES = envNumber('DEVICES', 500);
const DURATION = envString('DURATION', '3m');
const DRAIN_AT = envString('DRAIN_AT', '60s');
const INTERVAL = envNumber('INTERVAL', 2_000);
const KEEPALIVE = envNumber('KEEPALIVE', 30);
const RECONNECT_P99_MS = envNumber('RECONNECT_P99_MS', 15_000);

export const options: Options = {
  scenarios: {
    monitor: { executor: 'constant-vus', vus: 1, duration: `${durationMs(DURATION) / 1000 + 10}s`, exec: 'monitor', gracefulStop: '10s' },
    devices: { executor: 'per-vu-iterations', vus: DEVICES, iterations: 1, maxDuration: DURATION, exec: 'device', startTime: '2s', gracefulStop: '10s' },
    drain: { executor: 'per-vu-iterations', vus: 1, iterations: 1, startTime: DRAIN_AT, exec: 'announceDrain' },
  },
  thresholds: {
    reconnect_time: [`p(99)<${RECONNECT_P99_MS}`],
    resubscribe_time: ['p(99)<5000'],
  },
};

const reconnects = new Counter('mqtt_reconnects');
const reconnectTime = new Trend('reconnect_time', true);
const resubscribeTime = new Trend('resubscribe_time', true);
const heartbeatLost = new Counter('heartbeat_lost');
const heartbeatRepeated = new Counter('heartbeat_repeated');
const commandsSent = new Counter('commands_sent');
const commandLost = new Counter('command_lost');

let heartbeatSeq = 0;

export function device(): void {
  const name = deviceName(exec.vu.idInTest);
  const client = new Client(clientOptions(name));
  let lostAt: number | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;

  client.on('reconnect', () => {
    lostAt ??= Date.now();
  });
  client.on('connect', () => {
    if (lostAt !== undefined) {
      reconnects.add(1);
      reconnectTime.add(Date.now() - lostAt);
      lostAt = undefined;
    }
    const t = Date.now();
    client
      .subscribeAsync(topics.commands(name), { qos: 1 })
      .then(() => resubscribeTime.add(Date.now() - t))
      .catch(() => undefined);
    timer ??= setInterval(() => {
      if (client.connected) client.publish(topics.telemetry(name), stamp(heartbeatSeq++, { device: name }), { qos: 1 });
    }, INTERVAL);
  });
  client.on('message', (_topic, payload) => {
    const command = parseStamped(payload);
    if (command !== undefined && client.connected) client.publish(topics.acks(name), JSON.stringify({ seq: command.seq, ts: command.ts }), { qos: 1 });
  });
  client.on('error', () => undefined); // publishes fail while disconnected; mqtt_errors counts them

  client.connect(brokers().url, connectOptions(KEEPALIVE));
  check(client.connected, { 'device connected': (c) => c });
  setTimeout(() => {
    if (timer !== undefined) clearInterval(timer);
    client.end();
  }, Math.max(1_000, durationMs(DURATION) - 3_000));
}

/** Follows heartbeats and acks; sends a command to one device per second and expects its ack. */
export function monitor(): void {
  const client = new Client(clientOptions(`${PREFIX}-monitor`));
  const book = new SequenceBook();
  const pending = new Map<number, number>();
  let seq = 0;
  let timer: ReturnType<typeof setInterval> | undefined;

  client.on('connect', () => {
    client.subscribe(topics.allTelemetry(), { qos: 1 });
    client.subscribe(topics.allAcks(), { qos: 1 });
    timer ??= setInterval(() => {
      const now = Date.now();
      for (const [s, sentAt] of pending) {
        if (now - sentAt > 5_000) {
          commandLost.add(1);
          pending.delete(s);
        }
      }
      if (!client.connected) return;
      const target = deviceName(1 + Math.floor(Math.random() * DEVICES));
      pending.set(seq, now);
      client.publish(topics.commands(target), stamp(seq++, { command: 'ping' }), { qos: 1 });
      commandsSent.add(1);
    }, 1_000);
  });
  client.on('message', (topic, payload) => {
    const m = parseStamped(payload);
    if (m === undefined) return;
    if (topic.endsWith('/acks')) {
      pending.delete(m.seq);
      return;
    }
    const [lost, repeated] = book.see(deviceOf(topic), m.seq);
    if (lost > 0) heartbeatLost.add(lost);
    if (repeated > 0) heartbeatRepeated.add(repeated);
  });
  client.on('error', () => undefined);

  client.connect(brokers().url, connectOptions(KEEPALIVE));
  check(client.connected, { 'monitor connected': (c) => c });
  setTimeout(() => {
    if (timer !== undefined) clearInterval(timer);
    client.end();
  }, durationMs(DURATION) + 8_000);
}

/** Marks the moment the drain is expected, in the log (the drain itself happens outside). */
export function announceDrain(): void {
  console.log(`reconnect-storm: drain one edge node now (t=${DRAIN_AT}); ${DEVICES} devices are connected`);
}
