import fs from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { makePki, recordingLog, run, startTlsServer, type TestPki, type TlsMqttServer } from './tls-support.js';

// Real clients against a TlsListener wired to a Broker: Debian's mosquitto_pub and
// mosquitto_sub (libmosquitto 2.0, the system OpenSSL), Python paho-mqtt 1.6.1 and mqtt.js.
// Every process is bounded by -W or a timeout and killed by its own PID.

const MOSQUITTO_PUB = '/usr/bin/mosquitto_pub';
const MOSQUITTO_SUB = '/usr/bin/mosquitto_sub';
const PYTHON = '/usr/bin/python3';

let pki: TestPki;
let server: TlsMqttServer | undefined;
const clients: MqttClient[] = [];

beforeAll(() => {
  pki = makePki();
});

afterAll(() => pki.cleanup());

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => new Promise<void>((resolve) => c.end(true, {}, () => resolve()))));
  await server?.close();
  server = undefined;
});

async function serve(options: Partial<Parameters<typeof startTlsServer>[0]> = {}): Promise<TlsMqttServer> {
  server = await startTlsServer({ certFile: pki.server.cert, keyFile: pki.server.key, ...options });
  return server;
}

/** mqtt.js over mqtts:// trusting the test CA; resolves once connected. */
async function mqttjs(port: number, clientId: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(`mqtts://127.0.0.1:${port}`, { clientId, ca: fs.readFileSync(pki.ca), reconnectPeriod: 0, connectTimeout: 3000, ...extra });
  clients.push(client);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

function nextMessage(client: MqttClient): Promise<[string, string]> {
  return new Promise((resolve) => client.once('message', (topic, payload) => resolve([topic, payload.toString()])));
}

const tlsArgs = (port: number, extra: string[] = []): string[] => ['-h', '127.0.0.1', '-p', String(port), '--cafile', pki.ca, ...extra];

describe('mosquitto clients over TLS', () => {
  it('mosquitto_pub --cafile reaches an mqtt.js subscriber (MQTT 5, QoS 1)', async () => {
    const s = await serve();
    const sub = await mqttjs(s.port, 'js-sub');
    await sub.subscribeAsync('mosq/tls/+', { qos: 1 });
    const got = nextMessage(sub);
    const pub = await run(MOSQUITTO_PUB, [...tlsArgs(s.port), '-V', 'mqttv5', '-q', '1', '-t', 'mosq/tls/a', '-m', 'over tls', '-i', 'mosq-pub'], 8000);
    expect(pub).toMatchObject({ code: 0, stderr: '' });
    expect(await got).toEqual(['mosq/tls/a', 'over tls']);
    expect(s.accepted.map((i) => i.transport)).toEqual(['tls', 'tls']);
  });

  it('mosquitto_sub --cafile receives what mqtt.js published (MQTT 3.1.1, retained)', async () => {
    const s = await serve();
    const pub = await mqttjs(s.port, 'js-pub');
    await pub.publishAsync('mosq/tls/retained', 'kept', { qos: 1, retain: true });
    const sub = await run(MOSQUITTO_SUB, [...tlsArgs(s.port), '-V', 'mqttv311', '-t', 'mosq/tls/#', '-C', '1', '-W', '5', '-i', 'mosq-sub'], 8000);
    expect(sub).toEqual({ code: 0, stdout: 'kept\n', stderr: '' });
  });

  it('a TLS 1.2 listener serves --tls-version tlsv1.2 and refuses tlsv1.3', async () => {
    // libmosquitto's --tls-version is the lowest version it offers
    const log = recordingLog();
    server = await startTlsServer({ certFile: pki.server.cert, keyFile: pki.server.key, maxVersion: 'TLSv1.2' }, log);
    const s = server;
    const ok = await run(MOSQUITTO_PUB, [...tlsArgs(s.port), '--tls-version', 'tlsv1.2', '-t', 'v', '-m', '1'], 8000);
    expect(ok).toMatchObject({ code: 0, stderr: '' });
    expect(s.protocols).toEqual(['TLSv1.2']);
    const refused = await run(MOSQUITTO_PUB, [...tlsArgs(s.port), '--tls-version', 'tlsv1.3', '-t', 'v', '-m', '1'], 8000);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/A TLS error occurred/); // reported at connect or at the first read
    expect(s.accepted).toHaveLength(1);
    await vi.waitFor(() => expect(log.entries.map((e) => [e.msg, e.fields.reason])).toEqual([['tls_handshake_failed', 'ERR_SSL_UNSUPPORTED_PROTOCOL']]));
  });

  it('mutual TLS: --cert/--key is let in with its subject, no certificate is refused', async () => {
    const s = await serve({ caFile: pki.ca, clientCertificate: 'required' });
    const withCert = await run(MOSQUITTO_PUB, [...tlsArgs(s.port, ['--cert', pki.client.cert, '--key', pki.client.key]), '-t', 'm', '-m', '1', '-i', 'device-1'], 8000);
    expect(withCert).toMatchObject({ code: 0, stderr: '' });
    expect(s.accepted.map((i) => i.clientCertificate?.subject)).toEqual([{ CN: 'device-1', O: 'Fleet', OU: 'a,b' }]);

    const without = await run(MOSQUITTO_PUB, [...tlsArgs(s.port), '-t', 'm', '-m', '1', '-i', 'anonymous'], 8000);
    expect(without.code).not.toBe(0);
    const expired = await run(MOSQUITTO_PUB, [...tlsArgs(s.port, ['--cert', pki.expired.cert, '--key', pki.expired.key]), '-t', 'm', '-m', '1'], 8000);
    expect(expired.code).not.toBe(0);
    expect(s.accepted).toHaveLength(1);
    expect(s.listener.handshakeFailures).toBe(2);
  });
});

describe('paho-mqtt over TLS', () => {
  // connects with tls_set(..., tls_version=TLSv1_2), publishes at QoS 1, prints what happened
  const script = `
import json, ssl, sys, threading, warnings
warnings.simplefilter('ignore', DeprecationWarning)
import paho.mqtt.client as mqtt
ca, port = sys.argv[1], int(sys.argv[2])
connected = threading.Event()
result = {}
def on_connect(client, userdata, flags, rc):
    result['rc'] = rc
    connected.set()
c = mqtt.Client(client_id='paho-tls', protocol=mqtt.MQTTv311)
c.tls_set(ca_certs=ca, tls_version=ssl.PROTOCOL_TLSv1_2)
c.on_connect = on_connect
c.connect('127.0.0.1', port, keepalive=10)
c.loop_start()
connected.wait(5)
info = c.publish('paho/tls', 'from paho', qos=1)
info.wait_for_publish(5)
result['published'] = info.is_published()
result['version'] = c.socket().version()
c.disconnect()
c.loop_stop()
print(json.dumps(result))
`;

  it('tls_set with TLSv1_2 connects and publishes', async () => {
    const s = await serve();
    const sub = await mqttjs(s.port, 'js-paho-sub');
    await sub.subscribeAsync('paho/#', { qos: 1 });
    const got = nextMessage(sub);
    const paho = await run(PYTHON, ['-c', script, pki.ca, String(s.port)], 10_000);
    expect(paho.stderr).toBe('');
    expect(JSON.parse(paho.stdout)).toEqual({ rc: 0, published: true, version: 'TLSv1.2' });
    expect(await got).toEqual(['paho/tls', 'from paho']);
  });
});

describe('mqtt.js over TLS', () => {
  it('mqtts:// with ca and a client certificate', async () => {
    const s = await serve({ caFile: pki.ca, clientCertificate: 'optional' });
    const sub = await mqttjs(s.port, 'js-anon');
    await sub.subscribeAsync('js/tls', { qos: 1 });
    const got = nextMessage(sub);
    const pub = await mqttjs(s.port, 'js-device', { cert: fs.readFileSync(pki.client.cert), key: fs.readFileSync(pki.client.key), protocolVersion: 5 });
    await pub.publishAsync('js/tls', 'mqtts', { qos: 1 });
    expect(await got).toEqual(['js/tls', 'mqtts']);
    expect(s.accepted.map((i) => i.clientCertificate?.subject.CN)).toEqual([undefined, 'device-1']);
  });
});
