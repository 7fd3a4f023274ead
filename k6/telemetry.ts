/**
 * Steady telemetry with commands back: DEVICES devices each publish a telemetry message every
 * INTERVAL ms and answer every command on their command topic with an ack; one backend client
 * follows all telemetry (`<root>/+/telemetry`) and all acks, and sends a command to a random
 * device every COMMAND_INTERVAL ms. Devices and backend may sit on different nodes (through a
 * load balancer or the MQTT_BROKER list), so every path crosses the cluster bus.
 *
 *   k6 run -e MQTT_BROKER=mqtt://localhost:1883 -e DEVICES=2000 -e DURATION=5m k6/dist/telemetry.js
 *
 * Metrics: telemetry_latency (device publish → backend receive), command_roundtrip (backend
 * command → device ack back at the backend), command_latency (backend → device),
 * telemetry_lost / telemetry_repeated (gaps and repeats in each device's sequence numbers as
 * the backend sees them). Latencies compare Date.now() of two VUs: run the script from one k6
 * instance (not distributed) or the clocks differ.
 *
 * Environment (besides lib/fleet.ts): DEVICES (default 200), DURATION (default 2m), INTERVAL
 * (ms between telemetry messages per device, default 1000), QOS (telemetry QoS, default 1),
 * COMMAND_INTERVAL (ms, default 100), KEEPALIVE (s, default 60).
 */
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { clearInterval, setInterval, setTimeout } from 'k6/timers';
import { Client, type QoS } from 'k6/x/mqtt';
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

const DEVICES = envNumber('DEVICES', 200);
const DURATION = envString('DURATION', '2m');
const INTERVAL = envNumber('INTERVAL', 1_000);
const QOS = envNumber('QOS', 1) as QoS;
const COMMAND_INTERVAL = envNumber('COMMAND_INTERVAL', 100);
const KEEPALIVE = envNumber('KEEPALIVE', 60);

export const options: Options = {
  scenarios: {
    // the backend first, so that it sees every device's first message
    backend: { executor: 'constant-vus', vus: 1, duration: `${durationMs(DURATION) / 1000 + 5}s`, exec: 'backend', gracefulStop: '10s' },
    devices: { executor: 'constant-vus', vus: DEVICES, duration: DURATION, exec: 'device', startTime: '2s', gracefulStop: '10s' },
  },
  thresholds: {
    telemetry_latency: ['p(99)<500'],
    command_roundtrip: ['p(99)<1000'],
    telemetry_lost: ['count==0'],
    mqtt_errors: ['count==0'],
  },
};

const telemetryLatency = new Trend('telemetry_latency', true);
const commandLatency = new Trend('command_latency', true);
const commandRoundtrip = new Trend('command_roundtrip', true);
const telemetryLost = new Counter('telemetry_lost');
const telemetryRepeated = new Counter('telemetry_repeated');
const commandsSent = new Counter('commands_sent');
const acksReceived = new Counter('acks_received');

/** Sequence numbers survive iterations (module state is per VU). */
let telemetrySeq = 0;

/** One device: telemetry every INTERVAL ms, an ack for every command. */
export function device(): void {
  const name = deviceName(exec.vu.idInTest);
  const client = new Client(clientOptions(name));
  let timer: ReturnType<typeof setInterval> | undefined;

  client.on('connect', () => {
    // also after an automatic reconnect: sessions are clean, so subscribe again
    client.subscribe(topics.commands(name), { qos: 1 });
    if (timer === undefined) {
      timer = setInterval(() => {
        if (client.connected) client.publish(topics.telemetry(name), stamp(telemetrySeq++, { device: name }), { qos: QOS });
      }, INTERVAL);
    }
  });
  client.on('message', (_topic, payload) => {
    const command = parseStamped(payload);
    if (command === undefined) return;
    commandLatency.add(Date.now() - command.ts);
    // the ack carries the command's own send time back, for the round trip
    client.publish(topics.acks(name), JSON.stringify({ seq: command.seq, ts: command.ts }), { qos: 1 });
  });
  client.on('error', () => undefined); // counted by the extension as mqtt_errors

  client.connect(brokers().url, connectOptions(KEEPALIVE));
  check(client.connected, { 'device connected': (c) => c });
  // end just before the scenario does, so the iteration finishes cleanly
  setTimeout(() => {
    if (timer !== undefined) clearInterval(timer);
    client.end();
  }, Math.max(1_000, exec.scenario.startTime + durationMs(DURATION) - Date.now() - 1_000));
}

let commandSeq = 0;

/** The backend: follows telemetry and acks, sends commands. */
export function backend(): void {
  const client = new Client(clientOptions(`${PREFIX}-backend-${exec.vu.idInTest}`));
  const book = new SequenceBook();
  let timer: ReturnType<typeof setInterval> | undefined;

  client.on('connect', () => {
    client.subscribe(topics.allTelemetry(), { qos: 1 });
    client.subscribe(topics.allAcks(), { qos: 1 });
    if (timer === undefined) {
      timer = setInterval(() => {
        if (!client.connected) return;
        const target = deviceName(1 + Math.floor(Math.random() * DEVICES));
        client.publish(topics.commands(target), stamp(commandSeq++, { command: 'ping' }), { qos: 1 });
        commandsSent.add(1);
      }, COMMAND_INTERVAL);
    }
  });
  client.on('message', (topic, payload) => {
    const m = parseStamped(payload);
    if (m === undefined) return;
    if (topic.endsWith('/acks')) {
      acksReceived.add(1);
      commandRoundtrip.add(Date.now() - m.ts);
      return;
    }
    telemetryLatency.add(Date.now() - m.ts);
    const [lost, repeated] = book.see(deviceOf(topic), m.seq);
    if (lost > 0) telemetryLost.add(lost);
    if (repeated > 0) telemetryRepeated.add(repeated);
  });
  client.on('error', () => undefined);

  client.connect(brokers().url, connectOptions(KEEPALIVE));
  check(client.connected, { 'backend connected': (c) => c });
  setTimeout(() => {
    if (timer !== undefined) clearInterval(timer);
    client.end();
  }, Math.max(1_000, exec.scenario.startTime + durationMs(DURATION) + 4_500 - Date.now()));
}
