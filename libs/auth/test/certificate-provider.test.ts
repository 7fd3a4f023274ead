import { describe, expect, it } from 'vitest';
import { CertificateProvider, createAuthChain } from '@fleetmq/auth';
import type { ClientCertificate } from '@fleetmq/broker';
import { clientInfo } from './support.js';

const certificate: ClientCertificate = {
  subject: { CN: 'sensor-7', O: 'Fleet' },
  issuer: { CN: 'Fleet CA' },
  serialNumber: '01',
  fingerprint256: 'AA:BB',
};

describe('CertificateProvider (mutual TLS, use_identity_as_username)', () => {
  it('accepts a username the broker took from the verified certificate, whatever the password', async () => {
    const p = new CertificateProvider();
    const r = await p.authenticate(clientInfo({ username: 'sensor-7', usernameFromCertificate: true, clientCertificate: certificate, password: 'ignored' }));
    expect(r).toEqual({ kind: 'accept', identity: { provider: 'certificate', username: 'sensor-7', groups: [] } });
  });

  it('skips a CONNECT username, even from a client with a certificate', async () => {
    const p = new CertificateProvider();
    expect(await p.authenticate(clientInfo({ username: 'sensor-7', clientCertificate: certificate }))).toEqual({ kind: 'skip' });
    expect(await p.authenticate(clientInfo({ username: 'sensor-7', usernameFromCertificate: true }))).toEqual({ kind: 'skip' });
  });

  it('in a chain with anonymous access off, lets the certificate client in and refuses a plain one', async () => {
    const chain = createAuthChain([new CertificateProvider()], { allowAnonymous: false, throttle: false });
    expect(await chain.authenticate(clientInfo({ username: 'sensor-7', usernameFromCertificate: true, clientCertificate: certificate }))).toEqual({
      ok: true,
      identity: { provider: 'certificate', username: 'sensor-7', groups: [] },
    });
    expect(await chain.authenticate(clientInfo({ username: 'sensor-7', password: 'x' }))).toMatchObject({ ok: false, reasonCode: 0x86 });
  });
});
