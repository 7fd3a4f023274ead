import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@fleetmq/protocol';
import { makePki, type TestPki } from '@fleetmq/testkit';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startNode, type RunningNode } from '../src/main.js';

describe('edge node with tls and wss listeners from config', () => {
  let pki: TestPki;
  let node: RunningNode;
  beforeAll(async () => {
    pki = makePki();
    const tls = { certFile: pki.server.cert, keyFile: pki.server.key };
    const config = parseConfig({
      nodeId: 'tls-node',
      log: { level: 'silent' },
      ops: { port: 0 },
      listeners: [
        { type: 'tls', name: 'tls', host: '127.0.0.1', port: 0, tls },
        { type: 'wss', name: 'wss', host: '127.0.0.1', port: 0, tls },
        { type: 'tls', name: 'mtls', host: '127.0.0.1', port: 0, tls: { ...tls, caFile: pki.ca, clientCertificate: 'required' } },
      ],
    });
    node = await startNode(config, createLogger('silent'));
  });
  afterAll(async () => {
    await node?.stop();
    pki?.cleanup();
  });

  const port = (name: string): number => node.addresses().find((a) => a.name === name)!.port;

  it('serves MQTT over TLS and over secure WebSocket, one broker behind both', async () => {
    const ca = readFileSync(pki.ca);
    const sub = await mqtt.connectAsync(`wss://localhost:${port('wss')}/mqtt`, { ca, protocolVersion: 5, reconnectPeriod: 0 });
    const pub = await mqtt.connectAsync(`mqtts://localhost:${port('tls')}`, { ca, protocolVersion: 4, reconnectPeriod: 0 });
    try {
      await sub.subscribeAsync('secure/t', { qos: 1 });
      const got = new Promise<string>((resolve) => sub.once('message', (_t, p) => resolve(p.toString())));
      await pub.publishAsync('secure/t', 'over tls', { qos: 1 });
      expect(await got).toBe('over tls');
    } finally {
      await Promise.all([sub.endAsync(), pub.endAsync()]);
    }
  });

  it('a listener with clientCertificate required lets a client with a certificate in, and not one without', async () => {
    const ca = readFileSync(pki.ca);
    const withCert = await mqtt.connectAsync(`mqtts://localhost:${port('mtls')}`, {
      ca,
      cert: readFileSync(pki.client.cert),
      key: readFileSync(pki.client.key),
      reconnectPeriod: 0,
    });
    expect(withCert.connected).toBe(true);
    await withCert.endAsync();
    const without = mqtt.connect(`mqtts://localhost:${port('mtls')}`, { ca, reconnectPeriod: 0, connectTimeout: 2000 });
    let connected = false;
    without.on('connect', () => (connected = true));
    without.on('error', () => undefined);
    await new Promise<void>((resolve) => without.once('close', () => resolve()));
    without.end(true);
    expect(connected).toBe(false);
  });

  it('a missing certificate file fails at start with a ConfigError naming the listener', async () => {
    const config = parseConfig({
      log: { level: 'silent' },
      listeners: [{ type: 'tls', name: 'broken', host: '127.0.0.1', port: 0, tls: { certFile: '/nonexistent/cert.pem', keyFile: pki.server.key } }],
    });
    const err = await startNode(config, createLogger('silent')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toContain('broken');
  });
});
