import fs from 'node:fs';
import type tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { makePki, mqttOverTls, recordingLog, startTlsServer, type KeyPair, type TestPki, type TlsMqttServer } from './tls-support.js';

let pki: TestPki;
let server: TlsMqttServer | undefined;
let log: ReturnType<typeof recordingLog>;
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

async function serve(options: Partial<Parameters<typeof startTlsServer>[0]>): Promise<TlsMqttServer> {
  log = recordingLog();
  server = await startTlsServer({ certFile: pki.server.cert, keyFile: pki.server.key, caFile: pki.ca, ...options }, log);
  return server;
}

function withCert(pair: KeyPair | undefined, extra: tls.ConnectionOptions = {}): tls.ConnectionOptions {
  return {
    ca: fs.readFileSync(pki.ca),
    ...(pair !== undefined && { cert: fs.readFileSync(pair.cert), key: fs.readFileSync(pair.key) }),
    ...extra,
  };
}

/** Why the listener refused handshakes, as it logged them. */
function refusals(): unknown[] {
  return log.entries.filter((e) => e.msg === 'tls_handshake_failed').map((e) => e.fields.reason);
}

/** The ConnectionInfo field a verified `device-1` certificate gives. */
function device1(): object {
  return {
    subject: { CN: 'device-1', O: 'Fleet', OU: 'a,b' },
    issuer: { CN: 'Test CA' },
    serialNumber: expect.stringMatching(/^[0-9A-F]+$/),
    fingerprint256: pki.fingerprint(pki.client.cert),
  };
}

describe("clientCertificate: 'required'", () => {
  it('passes the verified subject, issuer and fingerprint in ConnectionInfo', async () => {
    const s = await serve({ clientCertificate: 'required' });
    const outcome = await mqttOverTls(s.port, withCert(pki.client), 'device-1', cleanup);
    expect(outcome.kind === 'connack' && outcome.code).toBe(0);
    expect(s.accepted).toEqual([
      { transport: 'tls', listener: 'tls', remoteAddress: '127.0.0.1', remotePort: expect.any(Number), clientCertificate: device1() },
    ]);
  });

  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`refuses a client without a certificate (${version})`, async () => {
      const s = await serve({ clientCertificate: 'required' });
      const outcome = await mqttOverTls(s.port, withCert(undefined, { maxVersion: version }), 'anonymous', cleanup);
      expect(outcome).toEqual({ kind: 'closed' });
      expect(s.accepted).toEqual([]);
      expect(s.broker.connectionCount).toBe(0);
      await vi.waitFor(() => expect(s.listener.handshakeFailures).toBe(1));
      expect(refusals()).toEqual(['NO_CLIENT_CERTIFICATE']);
    });
  }

  it('refuses an expired certificate', async () => {
    const s = await serve({ clientCertificate: 'required' });
    const outcome = await mqttOverTls(s.port, withCert(pki.expired), 'expired', cleanup);
    // the chain is judged once the handshake is done: no alert, a close before any MQTT
    expect(outcome).toEqual({ kind: 'closed' });
    expect(s.accepted).toEqual([]);
    await vi.waitFor(() => expect(refusals()).toEqual(['CERT_HAS_EXPIRED']));
  });

  it('refuses a certificate from another CA', async () => {
    const s = await serve({ clientCertificate: 'required' });
    const outcome = await mqttOverTls(s.port, withCert(pki.wrongCa), 'wrong-ca', cleanup);
    expect(outcome).toEqual({ kind: 'closed' });
    expect(s.accepted).toEqual([]);
    await vi.waitFor(() => expect(refusals()).toEqual(['UNABLE_TO_VERIFY_LEAF_SIGNATURE']));
  });

  it('refuses a certificate revoked in crlFile and accepts one that is not', async () => {
    const s = await serve({ clientCertificate: 'required', crlFile: pki.crl });
    const revoked = await mqttOverTls(s.port, withCert(pki.revoked), 'revoked', cleanup);
    expect(revoked).toEqual({ kind: 'closed' });
    await vi.waitFor(() => expect(refusals()).toEqual(['CERT_REVOKED']));
    const good = await mqttOverTls(s.port, withCert(pki.client), 'device-1', cleanup);
    expect(good.kind === 'connack' && good.code).toBe(0);
    expect(s.accepted.map((i) => i.clientCertificate?.subject.CN)).toEqual(['device-1']);
  });

  it('without crlFile, a revoked certificate is not known to be revoked', async () => {
    const s = await serve({ clientCertificate: 'required' });
    const outcome = await mqttOverTls(s.port, withCert(pki.revoked), 'revoked-unknown', cleanup);
    expect(outcome.kind === 'connack' && outcome.code).toBe(0);
    expect(s.accepted.map((i) => i.clientCertificate?.subject.CN)).toEqual(['revoked-device']);
  });
});

describe("clientCertificate: 'optional'", () => {
  it('lets a client without a certificate in, with no clientCertificate in ConnectionInfo', async () => {
    const s = await serve({ clientCertificate: 'optional' });
    const outcome = await mqttOverTls(s.port, withCert(undefined), 'anonymous', cleanup);
    expect(outcome.kind === 'connack' && outcome.code).toBe(0);
    expect(s.accepted).toEqual([{ transport: 'tls', listener: 'tls', remoteAddress: '127.0.0.1', remotePort: expect.any(Number) }]);
  });

  it('passes a valid certificate on', async () => {
    const s = await serve({ clientCertificate: 'optional' });
    const outcome = await mqttOverTls(s.port, withCert(pki.client), 'device-1', cleanup);
    expect(outcome.kind === 'connack' && outcome.code).toBe(0);
    expect(s.accepted.map((i) => i.clientCertificate)).toEqual([device1()]);
  });

  for (const [what, pair, reason] of [
    ['an expired', 'expired', 'CERT_HAS_EXPIRED'],
    ['a wrong-CA', 'wrongCa', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
  ] as const) {
    it(`closes a client that presented ${what} certificate before any MQTT`, async () => {
      const s = await serve({ clientCertificate: 'optional' });
      const outcome = await mqttOverTls(s.port, withCert(pki[pair]), `optional-${pair}`, cleanup);
      expect(outcome).toEqual({ kind: 'closed' });
      expect(s.accepted).toEqual([]);
      expect(s.broker.connectionCount).toBe(0);
      await vi.waitFor(() => expect(s.listener.handshakeFailures).toBe(1));
      expect(refusals()).toEqual([reason]);
    });
  }

  it('refuses a revoked certificate when crlFile is set', async () => {
    const s = await serve({ clientCertificate: 'optional', crlFile: pki.crl });
    const outcome = await mqttOverTls(s.port, withCert(pki.revoked), 'optional-revoked', cleanup);
    expect(outcome).toEqual({ kind: 'closed' });
    expect(s.accepted).toEqual([]);
    expect(refusals()).toEqual(['CERT_REVOKED']);
  });
});

describe("clientCertificate: 'none'", () => {
  it('asks for no certificate and passes none on', async () => {
    const s = await serve({ clientCertificate: 'none' });
    const outcome = await mqttOverTls(s.port, withCert(pki.client), 'unasked', cleanup);
    expect(outcome.kind === 'connack' && outcome.code).toBe(0);
    expect(s.accepted[0]).not.toHaveProperty('clientCertificate');
  });
});
