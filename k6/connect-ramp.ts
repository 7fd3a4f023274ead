/**
 * Connect ramp: devices connect at a rising rate until TARGET connections are up, stay
 * connected (each subscribed to its command topic) for HOLD, then leave. Measures the time to
 * CONNACK and to SUBACK as the cluster fills up.
 *
 *   k6 run -e MQTT_BROKER=mqtt://localhost:1883 -e TARGET=5000 -e RAMP=2m -e HOLD=3m k6/dist/connect-ramp.js
 *
 * Environment (besides lib/fleet.ts): TARGET (connections, default 1000), RAMP (default 1m),
 * HOLD (default 2m), KEEPALIVE (s, default 60).
 */
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { Client } from 'k6/x/mqtt';
import type { Options } from 'k6/options';
import { brokers, clientOptions, connectOptions, deviceName, envNumber, envString, topics } from './lib/fleet.ts';

const TARGET = envNumber('TARGET', 1_000);
const RAMP = envString('RAMP', '1m');
const HOLD = envString('HOLD', '2m');
const KEEPALIVE = envNumber('KEEPALIVE', 60);

export const options: Options = {
  scenarios: {
    ramp: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: RAMP, target: TARGET },
        { duration: HOLD, target: TARGET },
        { duration: '10s', target: 0 },
      ],
      gracefulRampDown: '15s',
    },
  },
  thresholds: {
    mqtt_connect_time: ['p(95)<1000', 'p(99)<3000'],
    mqtt_subscribe_time: ['p(99)<2000'],
    connect_failures: ['count==0'],
  },
};

const connectTime = new Trend('mqtt_connect_time', true);
const subscribeTime = new Trend('mqtt_subscribe_time', true);
const connectFailures = new Counter('connect_failures');
const dropped = new Counter('connections_dropped');

export default function (): void {
  const device = deviceName(exec.vu.idInTest);
  const client = new Client(clientOptions(`${device}-ramp`));
  let connectedOnce = false;

  client.on('connect', () => {
    if (connectedOnce) {
      // Paho reconnected on its own after a drop: count it and subscribe again
      dropped.add(1);
    }
    connectedOnce = true;
    const t = Date.now();
    client
      .subscribeAsync(topics.commands(device), { qos: 1 })
      .then(() => subscribeTime.add(Date.now() - t))
      .catch(() => connectFailures.add(1));
  });
  client.on('error', (err) => {
    if (err.method === 'connect') connectFailures.add(1);
  });

  const t0 = Date.now();
  client.connect(brokers().url, connectOptions(KEEPALIVE));
  const ok = client.connected;
  check(ok, { 'connected (CONNACK)': (c) => c });
  if (!ok) {
    client.end(); // stops the client's event loop, so the iteration can end
    return;
  }
  connectTime.add(Date.now() - t0);
  // the client's event loop keeps the iteration (and the connection) alive until the
  // ramp-down interrupts it
}
