import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SasTokenProvider, createSasToken, parseSasToken, resourceCovers, type SasKeyRequest, type SasTokenProviderOptions } from '@fleetmq/auth';
import { clientInfo } from './support.js';

const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);
const SE = NOW / 1000 + 3600;
const HUB = 'fleethub.azure-devices.net';
const DEVICE_KEY_B64 = Buffer.from('device-1 primary key, 32 bytes!').toString('base64');
const DEVICE_KEY = Buffer.from(DEVICE_KEY_B64, 'base64');
const POLICY_KEY = Buffer.from('registry policy key............!');

/** Built by hand as Azure's Node sample builds it, independently of createSasToken. */
function azureToken(resource: string, key: Buffer, se: number, skn?: string): string {
  const sr = encodeURIComponent(resource);
  const sig = createHmac('sha256', key).update(`${sr}\n${se}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}${skn !== undefined ? `&skn=${skn}` : ''}`;
}

function provider(over: Partial<SasTokenProviderOptions> = {}): { p: SasTokenProvider; requests: SasKeyRequest[] } {
  const requests: SasKeyRequest[] = [];
  const p = new SasTokenProvider({
    now: () => NOW,
    keyFor: (r) => {
      requests.push(r);
      if (r.keyName === 'registryRead') return { key: POLICY_KEY, username: 'registry', groups: ['service'] };
      if (r.keyName === undefined && r.resource === `${HUB}/devices/dev-1`) return { key: DEVICE_KEY };
      return undefined;
    },
    resourceFor: (c) => `${HUB}/devices/${c.clientId}`,
    ...over,
  });
  return { p, requests };
}

const connect = (password: string, clientId = 'dev-1') =>
  clientInfo({ clientId, username: `${HUB}/${clientId}/?api-version=2021-04-12`, password });

describe('parseSasToken / createSasToken', () => {
  it('createSasToken builds the same token as Azure’s sample', () => {
    expect(createSasToken({ resource: `${HUB}/devices/dev-1`, key: DEVICE_KEY, expiry: SE })).toBe(azureToken(`${HUB}/devices/dev-1`, DEVICE_KEY, SE));
    expect(createSasToken({ resource: HUB, key: POLICY_KEY, expiry: SE, keyName: 'iothubowner' })).toBe(azureToken(HUB, POLICY_KEY, SE, 'iothubowner'));
  });

  it('reads the fields in any order', () => {
    const t = parseSasToken(`SharedAccessSignature se=${SE}&skn=pol&sr=a%2Fb&sig=${encodeURIComponent(Buffer.alloc(32, 1).toString('base64'))}`);
    expect(t).toMatchObject({ rawResource: 'a%2Fb', resource: 'a/b', expiry: SE, keyName: 'pol' });
    expect(t?.signature.equals(Buffer.alloc(32, 1))).toBe(true);
  });

  it.each([
    ['no prefix', `sr=a&sig=x&se=1`],
    ['a missing se', `SharedAccessSignature sr=a&sig=${encodeURIComponent(Buffer.alloc(32).toString('base64'))}`],
    ['a repeated field', `SharedAccessSignature sr=a&sr=b&sig=${encodeURIComponent(Buffer.alloc(32).toString('base64'))}&se=1`],
    ['an unknown field', `SharedAccessSignature sr=a&sig=${encodeURIComponent(Buffer.alloc(32).toString('base64'))}&se=1&x=2`],
    ['a non-numeric se', `SharedAccessSignature sr=a&sig=${encodeURIComponent(Buffer.alloc(32).toString('base64'))}&se=1e9`],
    ['a short signature', `SharedAccessSignature sr=a&sig=${encodeURIComponent(Buffer.alloc(16).toString('base64'))}&se=1`],
    ['bad percent-encoding', `SharedAccessSignature sr=%E0%A4%A&sig=${encodeURIComponent(Buffer.alloc(32).toString('base64'))}&se=1`],
  ])('refuses %s', (_name, text) => {
    expect(parseSasToken(text)).toBeUndefined();
  });

  it('resourceCovers: equal, or a prefix ending at a "/"', () => {
    expect(resourceCovers('hub/devices/d1', 'hub/devices/d1')).toBe(true);
    expect(resourceCovers('hub/devices', 'hub/devices/d1')).toBe(true);
    expect(resourceCovers('hub/devices/', 'hub/devices/d1')).toBe(true);
    expect(resourceCovers('hub/devices/d', 'hub/devices/d1')).toBe(false);
    expect(resourceCovers('hub/devices/d1', 'hub/devices')).toBe(false);
  });
});

describe('SasTokenProvider', () => {
  it('accepts a device token: key looked up by resource, identity is the client ID, expiry carried', async () => {
    const { p, requests } = provider();
    const r = await p.authenticate(connect(azureToken(`${HUB}/devices/dev-1`, DEVICE_KEY, SE)));
    expect(r).toEqual({ kind: 'accept', identity: { provider: 'sas-token', username: 'dev-1', groups: [], expiresAt: SE * 1000 } });
    expect(requests).toEqual([{ resource: `${HUB}/devices/dev-1`, keyName: undefined, clientId: 'dev-1', username: `${HUB}/dev-1/?api-version=2021-04-12` }]);
  });

  it('accepts a policy token (skn) whose resource covers the device', async () => {
    const { p } = provider();
    const r = await p.authenticate(connect(azureToken(`${HUB}/devices`, POLICY_KEY, SE, 'registryRead'), 'dev-9'));
    expect(r).toMatchObject({ kind: 'accept', identity: { username: 'registry', groups: ['service'] } });
  });

  it('a token whose sr was signed encoded but sent unencoded still verifies', async () => {
    const { p } = provider();
    const good = azureToken(`${HUB}/devices/dev-1`, DEVICE_KEY, SE);
    const unencoded = good.replace(encodeURIComponent(`${HUB}/devices/dev-1`), `${HUB}/devices/dev-1`);
    expect(unencoded).not.toBe(good);
    expect((await p.authenticate(connect(unencoded))).kind).toBe('accept');
  });

  it('expired (now ≥ se) → 0x86 token_expired', async () => {
    const { p } = provider();
    const r = await p.authenticate(connect(azureToken(`${HUB}/devices/dev-1`, DEVICE_KEY, NOW / 1000)));
    expect(r).toEqual({ kind: 'reject', reasonCode: 0x86, reason: 'token_expired' });
  });

  it('a token with a far expiry is refused when maxTtlSeconds is set', async () => {
    const { p } = provider({ maxTtlSeconds: 600 });
    expect(await p.authenticate(connect(azureToken(`${HUB}/devices/dev-1`, DEVICE_KEY, SE)))).toMatchObject({ reason: 'token_ttl_too_long' });
  });

  it('bad signature: another key, a changed expiry, a changed resource', async () => {
    const { p } = provider();
    expect(await p.authenticate(connect(azureToken(`${HUB}/devices/dev-1`, POLICY_KEY, SE)))).toEqual({ kind: 'reject', reasonCode: 0x86, reason: 'bad_signature' });
    const extended = azureToken(`${HUB}/devices/dev-1`, DEVICE_KEY, SE).replace(`se=${SE}`, `se=${SE + 86400}`);
    expect(await p.authenticate(connect(extended))).toMatchObject({ reason: 'bad_signature' });
  });

  it('unknown key → 0x86; a device token presented for another client ID → 0x87 resource_mismatch', async () => {
    const { p } = provider();
    expect(await p.authenticate(connect(azureToken(`${HUB}/devices/dev-404`, DEVICE_KEY, SE), 'dev-404'))).toEqual({
      kind: 'reject',
      reasonCode: 0x86,
      reason: 'unknown_key',
    });
    expect(await p.authenticate(connect(azureToken(`${HUB}/devices/dev-1`, DEVICE_KEY, SE), 'dev-2'))).toEqual({
      kind: 'reject',
      reasonCode: 0x87,
      reason: 'resource_mismatch',
    });
  });

  it('malformed after the prefix → 0x86; other passwords are skipped', async () => {
    const { p } = provider();
    expect(await p.authenticate(connect('SharedAccessSignature garbage'))).toEqual({ kind: 'reject', reasonCode: 0x86, reason: 'malformed_token' });
    expect(await p.authenticate(connect('hunter2'))).toEqual({ kind: 'skip' });
    expect(await p.authenticate(clientInfo({ username: 'x' }))).toEqual({ kind: 'skip' });
  });
});
