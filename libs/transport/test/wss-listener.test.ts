import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { silentLog, type Broker, type ConnectionInfo } from '@fleetmq/broker';
import { Connection } from '../src/connection.js';
import { WssListener, type WssListenerOptions } from '../src/wss-listener.js';
import { defaultConnectionOptions, makeBroker } from './support.js';
import { makePki, recordingLog, replaceFile, type TestPki } from './tls-support.js';

let pki: TestPki;
let listener: WssListener | undefined;
let broker: Broker;
let accepted: ConnectionInfo[];
let log: ReturnType<typeof recordingLog>;
let port: number;
const closers: (() => unknown)[] = [];

beforeAll(() => {
  pki = makePki();
});

afterAll(() => pki.cleanup());

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  broker?.shutdown(0x8b);
  await listener?.close();
  listener = undefined;
});

async function start(options: Partial<WssListenerOptions> = {}): Promise<void> {
  broker = makeBroker();
  accepted = [];
  log = recordingLog();
  listener = new WssListener(
    { name: 'wss', host: '127.0.0.1', port: 0, path: '/mqtt', maxPayload: 1 << 20, certFile: pki.server.cert, keyFile: pki.server.key, ...options },
    log,
  );
  await listener.listen((stream, info) => {
    accepted.push(info);
    new Connection(stream, info, broker, defaultConnectionOptions, silentLog);
  });
  port = listener.address().port;
}

const ca = (): Buffer => fs.readFileSync(pki.ca);

/** An mqtt.js client over wss:// that trusts the test CA; resolves once CONNACK came. */
async function mqttjs(clientId: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(`wss://127.0.0.1:${port}/mqtt`, { clientId, ca: ca(), reconnectPeriod: 0, connectTimeout: 3000, protocolVersion: 5, ...extra });
  closers.push(() => new Promise<void>((resolve) => client.end(true, {}, () => resolve())));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

/** Opens a WebSocket: the socket once open, the HTTP status that refused it, or the error. */
function open(urlPath: string, options: WebSocket.ClientOptions, protocols: string[] = ['mqtt']): Promise<WebSocket | { status: number } | { error: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${urlPath}`, protocols, options);
    closers.push(() => ws.terminate());
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      res.resume();
    });
    ws.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

/** The certificate a new TLS handshake on the listener's port gets. */
function servedFingerprint(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca() }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

describe('WssListener', () => {
  it('carries an mqtt.js wss:// round trip, verified against the CA', async () => {
    await start();
    const sub = await mqttjs('wss-sub');
    await sub.subscribeAsync('wss/+', { qos: 1 });
    const got = new Promise<[string, string]>((resolve) => sub.once('message', (topic, payload) => resolve([topic, payload.toString()])));
    const pub = await mqttjs('wss-pub');
    await pub.publishAsync('wss/hello', 'over wss', { qos: 1 });
    expect(await got).toEqual(['wss/hello', 'over wss']);
    expect(accepted).toEqual([
      { transport: 'wss', listener: 'wss', remoteAddress: '127.0.0.1', remotePort: expect.any(Number) },
      { transport: 'wss', listener: 'wss', remoteAddress: '127.0.0.1', remotePort: expect.any(Number) },
    ]);
  });

  it("applies WsListener's path and subprotocol rules", async () => {
    await start();
    expect(await open('/other', { ca: ca() })).toEqual({ status: 404 });
    expect(await open('/mqtt', { ca: ca() }, ['chat'])).toEqual({ status: 400 });
    const ws = await open('/mqtt?x=1', { ca: ca() }, ['mqttv3.1']);
    expect(ws instanceof WebSocket && ws.protocol).toBe('mqttv3.1');
    const status = await new Promise<number>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port, path: '/mqtt', ca: ca(), servername: 'localhost' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).once('error', reject);
    });
    expect(status).toBe(426);
    expect(accepted).toHaveLength(1);
  });

  it('refuses TLS 1.1 by default', async () => {
    await start();
    const options = { host: '127.0.0.1', port, servername: 'localhost', ca: ca(), minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' } as const;
    const error = await new Promise<string>((resolve) => {
      const socket = tls.connect(options, () => resolve('connected'));
      closers.push(() => socket.destroy());
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    expect(error).toBe('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
    expect(await open('/mqtt', { ca: ca(), maxVersion: 'TLSv1.2' })).toBeInstanceOf(WebSocket);
    await vi.waitFor(() => expect(listener!.handshakeFailures).toBe(1));
  });

  it('with mutual TLS required: no certificate is refused, a valid one reaches ConnectionInfo', async () => {
    await start({ caFile: pki.ca, clientCertificate: 'required' });
    const refused = await open('/mqtt', { ca: ca() });
    expect(refused).toEqual({ error: 'ECONNRESET' });
    expect(accepted).toEqual([]);
    await vi.waitFor(() => expect(listener!.handshakeFailures).toBe(1));
    expect(log.entries.filter((e) => e.msg === 'tls_handshake_failed').map((e) => e.fields.reason)).toEqual(['NO_CLIENT_CERTIFICATE']);

    const expired = await open('/mqtt', { ca: ca(), cert: fs.readFileSync(pki.expired.cert), key: fs.readFileSync(pki.expired.key) });
    expect(expired).toEqual({ error: 'ECONNRESET' });
    expect(accepted).toEqual([]);

    const client = await mqttjs('device-1', { cert: fs.readFileSync(pki.client.cert), key: fs.readFileSync(pki.client.key) });
    expect(client.connected).toBe(true);
    expect(accepted).toEqual([
      {
        transport: 'wss',
        listener: 'wss',
        remoteAddress: '127.0.0.1',
        remotePort: expect.any(Number),
        clientCertificate: {
          subject: { CN: 'device-1', O: 'Fleet', OU: 'a,b' },
          issuer: { CN: 'Test CA' },
          serialNumber: expect.any(String),
          fingerprint256: pki.fingerprint(pki.client.cert),
        },
      },
    ]);
  });

  it('reloads rotated certificates; an open WebSocket keeps working', async () => {
    const dir = fs.mkdtempSync(path.join(pki.dir, 'wss-live-'));
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    fs.copyFileSync(pki.server.cert, certFile);
    fs.copyFileSync(pki.server.key, keyFile);
    await start({ certFile, keyFile, reloadDebounce: 50 });
    const before = await mqttjs('before-rotation');
    expect(await servedFingerprint()).toBe(pki.fingerprint(pki.server.cert));

    replaceFile(pki.server2.key, keyFile);
    replaceFile(pki.server2.cert, certFile);
    await vi.waitFor(() => expect(listener!.reloads).toBe(1));
    expect(await servedFingerprint()).toBe(pki.fingerprint(pki.server2.cert));
    expect(listener!.certificateFingerprint256).toBe(pki.fingerprint(pki.server2.cert));
    expect(log.entries.filter((e) => e.msg === 'tls_certificate_reloaded')).toHaveLength(1);

    // the WebSocket opened before the rotation still carries MQTT
    await before.subscribeAsync('rotation/+', { qos: 1 });
    const got = new Promise<string>((resolve) => before.once('message', (_topic, payload) => resolve(payload.toString())));
    const after = await mqttjs('after-rotation');
    await after.publishAsync('rotation/x', 'still here', { qos: 1 });
    expect(await got).toBe('still here');
  });

  it('stops accepting on close()', async () => {
    await start();
    await listener!.close();
    expect(await open('/mqtt', { ca: ca() })).toEqual({ error: 'ECONNREFUSED' });
  });
});
