import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { pingreqBytes } from '@fleetmq/testkit';
import { makePki, mqttOverTls, recordingLog, replaceFile, startTlsServer, type TestPki, type TlsMqttServer } from './tls-support.js';

let pki: TestPki;
let server: TlsMqttServer | undefined;
let log: ReturnType<typeof recordingLog>;
const cleanup: { destroy(): void }[] = [];

beforeAll(() => {
  pki = makePki();
});

afterAll(() => pki.cleanup());

afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of cleanup.splice(0)) s.destroy();
  await server?.close();
  server = undefined;
});

/** A directory of its own holding copies of the server certificate and key (and `extra`). */
function liveDir(extra: Record<string, string> = {}): { dir: string; cert: string; key: string } {
  const dir = fs.mkdtempSync(path.join(pki.dir, 'live-'));
  const cert = path.join(dir, 'tls.crt');
  const key = path.join(dir, 'tls.key');
  fs.copyFileSync(pki.server.cert, cert);
  fs.copyFileSync(pki.server.key, key);
  for (const [name, source] of Object.entries(extra)) fs.copyFileSync(source, path.join(dir, name));
  return { dir, cert, key };
}

async function serve(options: Partial<Parameters<typeof startTlsServer>[0]> & { certFile: string; keyFile: string }): Promise<TlsMqttServer> {
  log = recordingLog();
  server = await startTlsServer({ reloadDebounce: 50, reloadCheckInterval: 60_000, ...options }, log);
  return server;
}

const trustCa = (): tls.ConnectionOptions => ({ ca: fs.readFileSync(pki.ca) });

/** The fingerprint of the certificate a new handshake gets. */
async function servedFingerprint(port: number): Promise<string> {
  const outcome = await mqttOverTls(port, trustCa(), 'probe', cleanup);
  if (outcome.kind !== 'connack') throw new Error(`handshake failed: ${JSON.stringify(outcome)}`);
  const fingerprint = outcome.socket.getPeerCertificate().fingerprint256;
  outcome.socket.destroy();
  return fingerprint;
}

const entries = (msg: string): unknown[] => log.entries.filter((e) => e.msg === msg);

describe('certificate reload', () => {
  it('puts rotated files into force for new handshakes while open connections keep working', async () => {
    const live = liveDir();
    const s = await serve({ certFile: live.cert, keyFile: live.key });
    const before = await mqttOverTls(s.port, trustCa(), 'long-lived', cleanup);
    if (before.kind !== 'connack') throw new Error('no CONNACK');
    expect(before.socket.getPeerCertificate().fingerprint256).toBe(pki.fingerprint(pki.server.cert));

    replaceFile(pki.server2.key, live.key);
    replaceFile(pki.server2.cert, live.cert);
    await vi.waitFor(() => expect(s.listener.reloads).toBe(1));

    const rotated = pki.fingerprint(pki.server2.cert);
    expect(rotated).not.toBe(pki.fingerprint(pki.server.cert));
    expect(await servedFingerprint(s.port)).toBe(rotated);
    expect(s.listener.certificateFingerprint256).toBe(rotated);
    expect(s.listener.reloadFailures).toBe(0);
    expect(entries('tls_certificate_reloaded')).toEqual([
      { level: 'info', msg: 'tls_certificate_reloaded', fields: { listener: 'tls', fingerprint256: rotated, subject: 'CN=localhost', validTo: expect.any(String) } },
    ]);

    // the connection made before the rotation still carries MQTT
    before.client.write(pingreqBytes());
    await before.client.packetsOrClose(1, 1000);
    expect(before.client.take()).toEqual([{ cmd: 'pingresp' }]);
  });

  it('keeps the old context when the new files are invalid, logs it once, and takes the fixed files later', async () => {
    const live = liveDir();
    const s = await serve({ certFile: live.cert, keyFile: live.key });
    const original = pki.fingerprint(pki.server.cert);

    replaceFile(pki.server2.cert, live.cert); // the key is still the old one: a mismatch
    await vi.waitFor(() => expect(s.listener.reloadFailures).toBe(1));
    expect(await s.listener.reloadCertificates()).toBe(false); // same bad files: not logged again
    expect(s.listener.reloadFailures).toBe(1);
    expect(s.listener.reloads).toBe(0);
    expect(await servedFingerprint(s.port)).toBe(original);
    expect(entries('tls_certificate_reload_failed')).toEqual([
      {
        level: 'error',
        msg: 'tls_certificate_reload_failed',
        fields: { listener: 'tls', err: 'the key does not match the certificate (CN=localhost)', fingerprint256: original },
      },
    ]);

    fs.writeFileSync(live.cert, 'not a certificate\n');
    await vi.waitFor(() => expect(s.listener.reloadFailures).toBe(2));
    expect(await servedFingerprint(s.port)).toBe(original);

    replaceFile(pki.server2.cert, live.cert);
    replaceFile(pki.server2.key, live.key);
    await vi.waitFor(() => expect(s.listener.reloads).toBe(1));
    expect(await servedFingerprint(s.port)).toBe(pki.fingerprint(pki.server2.cert));
  });

  it('follows a Kubernetes secret volume: files are symlinks through ..data, swapped at once', async () => {
    const dir = fs.mkdtempSync(path.join(pki.dir, 'k8s-'));
    const version = (name: string, pair: { cert: string; key: string }): void => {
      fs.mkdirSync(path.join(dir, name));
      fs.copyFileSync(pair.cert, path.join(dir, name, 'tls.crt'));
      fs.copyFileSync(pair.key, path.join(dir, name, 'tls.key'));
    };
    version('..v1', pki.server);
    fs.symlinkSync('..v1', path.join(dir, '..data'));
    fs.symlinkSync('..data/tls.crt', path.join(dir, 'tls.crt'));
    fs.symlinkSync('..data/tls.key', path.join(dir, 'tls.key'));
    const s = await serve({ certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key') });
    expect(await servedFingerprint(s.port)).toBe(pki.fingerprint(pki.server.cert));

    version('..v2', pki.server2);
    fs.symlinkSync('..v2', path.join(dir, '..data_tmp'));
    fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    fs.rmSync(path.join(dir, '..v1'), { recursive: true });
    await vi.waitFor(() => expect(s.listener.reloads).toBe(1));
    expect(await servedFingerprint(s.port)).toBe(pki.fingerprint(pki.server2.cert));
    expect(s.listener.reloadFailures).toBe(0);
  });

  it('finds changes by their stat when file events are not available', async () => {
    const watch = vi.spyOn(fs, 'watch').mockImplementation(() => {
      throw Object.assign(new Error('watch not supported'), { code: 'ENOSYS' });
    });
    const live = liveDir();
    const s = await serve({ certFile: live.cert, keyFile: live.key, reloadCheckInterval: 100 });
    expect(watch).toHaveBeenCalled();
    expect(entries('tls_certificate_watch_failed')).toEqual([
      { level: 'warn', msg: 'tls_certificate_watch_failed', fields: { listener: 'tls', dir: live.dir, err: 'watch not supported' } },
    ]);
    // rewritten in place, as some tools do
    fs.writeFileSync(live.key, fs.readFileSync(pki.server2.key));
    fs.writeFileSync(live.cert, fs.readFileSync(pki.server2.cert));
    await vi.waitFor(() => expect(s.listener.reloads).toBe(1));
    expect(await servedFingerprint(s.port)).toBe(pki.fingerprint(pki.server2.cert));
  });

  it('does not reload files that were touched but not changed', async () => {
    const live = liveDir();
    const s = await serve({ certFile: live.cert, keyFile: live.key });
    expect(await s.listener.reloadCertificates()).toBe(false);
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(live.cert, later, later);
    expect(await s.listener.reloadCertificates()).toBe(false);
    expect([s.listener.reloads, s.listener.reloadFailures]).toEqual([0, 0]);
    expect(entries('tls_certificate_reloaded')).toEqual([]);
  });

  it('reloads the client CA bundle of a mutual TLS listener', async () => {
    const live = liveDir({ 'ca.pem': pki.otherCa });
    const caFile = path.join(live.dir, 'ca.pem');
    const s = await serve({ certFile: live.cert, keyFile: live.key, caFile, clientCertificate: 'required' });
    const client = { ...trustCa(), cert: fs.readFileSync(pki.client.cert), key: fs.readFileSync(pki.client.key) };
    expect(await mqttOverTls(s.port, client, 'before-ca', cleanup)).toEqual({ kind: 'closed' });

    replaceFile(pki.ca, caFile);
    await vi.waitFor(() => expect(s.listener.reloads).toBe(1));
    const after = await mqttOverTls(s.port, client, 'after-ca', cleanup);
    expect(after.kind === 'connack' && after.code).toBe(0);
    expect(s.accepted.map((i) => i.clientCertificate?.subject.CN)).toEqual(['device-1']);
  });
});
