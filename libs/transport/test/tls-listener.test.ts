import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '@fleetmq/protocol';
import { pingreqBytes } from '@fleetmq/testkit';
import { TlsListener } from '../src/tls-listener.js';
import { makePki, mqttOverTls, recordingLog, startTlsServer, type TestPki, type TlsMqttServer } from './tls-support.js';

let pki: TestPki;
let server: TlsMqttServer | undefined;
const cleanup: { destroy(): void }[] = [];

beforeAll(() => {
  pki = makePki();
});

afterAll(() => pki.cleanup());

afterEach(async () => {
  for (const s of cleanup.splice(0)) s.destroy();
  await server?.close();
  server = undefined;
});

const trustCa = (): tls.ConnectionOptions => ({ ca: fs.readFileSync(pki.ca) });

async function serve(options: Partial<Parameters<typeof startTlsServer>[0]> = {}, log = recordingLog()): Promise<TlsMqttServer> {
  server = await startTlsServer({ certFile: pki.server.cert, keyFile: pki.server.key, ...options }, log);
  return server;
}

describe('TlsListener handshakes', () => {
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`carries MQTT over ${version} with a server certificate the client verifies`, async () => {
      const s = await serve();
      const outcome = await mqttOverTls(s.port, { ...trustCa(), minVersion: version, maxVersion: version }, `tls-${version}`, cleanup);
      expect(outcome.kind).toBe('connack');
      if (outcome.kind !== 'connack') return;
      expect(outcome.code).toBe(0);
      expect(outcome.socket.getProtocol()).toBe(version);
      expect(outcome.socket.authorized).toBe(true);
      expect(outcome.socket.getPeerCertificate().fingerprint256).toBe(pki.fingerprint(pki.server.cert));
      expect(s.accepted).toEqual([{ transport: 'tls', listener: 'tls', remoteAddress: '127.0.0.1', remotePort: outcome.socket.localPort }]);
      expect(s.listener.handshakeFailures).toBe(0);
    });
  }

  it('refuses TLS 1.1 by default', async () => {
    const s = await serve();
    // the client lowers its own security level so that it may offer TLS 1.1 at all
    const outcome = await mqttOverTls(s.port, { ...trustCa(), minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }, 'old', cleanup);
    expect(outcome).toEqual({ kind: 'error', code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    expect(s.accepted).toEqual([]);
    await vi.waitFor(() => expect(s.listener.handshakeFailures).toBe(1));
  });

  it('accepts TLS 1.1 only when minVersion says so, and warns', async () => {
    const log = recordingLog();
    const s = await serve({ minVersion: 'TLSv1.1' }, log);
    const outcome = await mqttOverTls(s.port, { ...trustCa(), minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }, 'old-ok', cleanup);
    expect(outcome.kind).toBe('connack');
    if (outcome.kind === 'connack') expect(outcome.socket.getProtocol()).toBe('TLSv1.1');
    expect(log.entries.filter((e) => e.msg === 'tls_legacy_versions_enabled')).toEqual([
      { level: 'warn', msg: 'tls_legacy_versions_enabled', fields: { listener: 'tls', minVersion: 'TLSv1.1' } },
    ]);
  });

  it('caps the version at maxVersion', async () => {
    const s = await serve({ maxVersion: 'TLSv1.2' });
    const only13 = await mqttOverTls(s.port, { ...trustCa(), minVersion: 'TLSv1.3' }, 'only13', cleanup);
    expect(only13).toEqual({ kind: 'error', code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    const any = await mqttOverTls(s.port, trustCa(), 'any', cleanup);
    expect(any.kind === 'connack' && any.socket.getProtocol()).toBe('TLSv1.2');
  });

  it('uses only the configured ciphers', async () => {
    const s = await serve({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    const ok = await mqttOverTls(s.port, trustCa(), 'cipher-ok', cleanup);
    expect(ok.kind === 'connack' && ok.socket.getCipher().standardName).toBe('TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
    const other = await mqttOverTls(s.port, { ...trustCa(), ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' }, 'cipher-other', cleanup);
    expect(other).toEqual({ kind: 'error', code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' });
  });

  it("negotiates ALPN 'mqtt' when configured, serves clients that offer none, refuses those offering others", async () => {
    const s = await serve({ alpnProtocols: ['mqtt'] });
    const offered = await mqttOverTls(s.port, { ...trustCa(), ALPNProtocols: ['mqtt'] }, 'alpn', cleanup);
    expect(offered.kind === 'connack' && offered.socket.alpnProtocol).toBe('mqtt');
    const none = await mqttOverTls(s.port, trustCa(), 'no-alpn', cleanup);
    expect(none.kind === 'connack' && none.socket.alpnProtocol).toBe(false);
    const other = await mqttOverTls(s.port, { ...trustCa(), ALPNProtocols: ['x-amzn-mqtt-ca'] }, 'other-alpn', cleanup);
    expect(other).toEqual({ kind: 'error', code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL' });
    expect(s.accepted).toHaveLength(2);
  });

  it('closes a client that does not finish the handshake in handshakeTimeout', async () => {
    const s = await serve({ handshakeTimeout: 200 });
    const socket = net.connect({ host: '127.0.0.1', port: s.port });
    cleanup.push(socket);
    const start = Date.now();
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(Date.now() - start).toBeGreaterThanOrEqual(150);
    expect(Date.now() - start).toBeLessThan(2000);
    expect(s.listener.handshakeFailures).toBe(1);
  });

  it('keeps a connection usable: PINGREQ answered after CONNECT', async () => {
    const s = await serve();
    const outcome = await mqttOverTls(s.port, trustCa(), 'ping', cleanup);
    if (outcome.kind !== 'connack') throw new Error(`no CONNACK: ${JSON.stringify(outcome)}`);
    outcome.client.write(pingreqBytes());
    await outcome.client.packetsOrClose(1, 1000);
    expect(outcome.client.take()).toEqual([{ cmd: 'pingresp' }]);
    expect(s.broker.connectionCount).toBe(1);
  });

  it('stops accepting on close()', async () => {
    const s = await serve();
    const { port } = s.listener.address();
    await s.close();
    server = undefined;
    const refused = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? ''));
      socket.once('connect', () => resolve('connected'));
    });
    expect(refused).toBe('ECONNREFUSED');
  });
});

describe('TlsListener configuration errors', () => {
  const base = { name: 'secure', host: '127.0.0.1', port: 0 };

  it('refuses to listen without a readable certificate, naming the key', async () => {
    const l = new TlsListener({ ...base, certFile: `${pki.dir}/nope.pem`, keyFile: pki.server.key });
    const err = await l.listen(() => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe('listeners.secure.tls.certFile');
    expect((err as Error).message).toContain('ENOENT');
    expect(l.address()).toEqual({ host: '127.0.0.1', port: 0 });
  });

  it('refuses a key that does not match the certificate', async () => {
    const l = new TlsListener({ ...base, certFile: pki.server.cert, keyFile: pki.server2.key });
    const err = await l.listen(() => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('the key does not match the certificate');
  });

  it('refuses mutual TLS without a CA, a CRL without mutual TLS, and versions out of order', () => {
    const files = { certFile: pki.server.cert, keyFile: pki.server.key };
    expect(() => new TlsListener({ ...base, ...files, clientCertificate: 'required' })).toThrow(/listeners\.secure\.tls\.caFile/);
    expect(() => new TlsListener({ ...base, ...files, crlFile: pki.crl })).toThrow(/listeners\.secure\.tls\.crlFile/);
    expect(() => new TlsListener({ ...base, ...files, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.2' })).toThrow(/TLSv1\.3 is above maxVersion TLSv1\.2/);
    expect(() => new TlsListener({ ...base, ...files, alpnProtocols: [''] })).toThrow(ConfigError);
  });
});
