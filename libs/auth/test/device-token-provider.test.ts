import { describe, expect, it } from 'vitest';
import { DeviceTokenProvider, hashPassword, parsePasswordHash, isPasswordHash, type DeviceTokenRecord } from '@fleetmq/auth';
import { clientInfo } from './support.js';

const ID = 'd:org123:thermostat:dev-42';

async function provider(): Promise<DeviceTokenProvider> {
  const hashed = parsePasswordHash(await hashPassword('hashed-token-value', { iterations: 10 }));
  if (!isPasswordHash(hashed)) throw new Error('hash');
  const records = new Map<string, DeviceTokenRecord>([
    [ID, { token: 'plain-token-value' }],
    ['d:org123:thermostat:dev-43', { hash: hashed, username: 'dev-43', groups: ['thermostats'] }],
  ]);
  return new DeviceTokenProvider({ tokenFor: (clientId) => records.get(clientId) });
}

describe('DeviceTokenProvider (IBM use-token-auth)', () => {
  it('accepts the device’s token; the identity is the client ID', async () => {
    const r = await (await provider()).authenticate(clientInfo({ clientId: ID, username: 'use-token-auth', password: 'plain-token-value' }));
    expect(r).toEqual({ kind: 'accept', identity: { provider: 'device-token', username: ID, groups: [] } });
  });

  it('accepts a token stored as a mosquitto_passwd hash, with the record’s username and groups', async () => {
    const r = await (await provider()).authenticate(clientInfo({ clientId: 'd:org123:thermostat:dev-43', username: 'use-token-auth', password: 'hashed-token-value' }));
    expect(r).toMatchObject({ kind: 'accept', identity: { username: 'dev-43', groups: ['thermostats'] } });
  });

  it.each([
    ['a wrong token', ID, 'plain-token-valuE', 'bad_token'],
    ['a prefix of the token', ID, 'plain-token', 'bad_token'],
    ['another device’s token', 'd:org123:thermostat:dev-43', 'plain-token-value', 'bad_token'],
    ['an unknown device', 'd:org123:thermostat:dev-99', 'plain-token-value', 'unknown_device'],
  ])('%s → 0x86', async (_name, clientId, password, reason) => {
    const r = await (await provider()).authenticate(clientInfo({ clientId, username: 'use-token-auth', password }));
    expect(r).toEqual({ kind: 'reject', reasonCode: 0x86, reason });
  });

  it('no password → 0x86; any other username is skipped', async () => {
    const p = await provider();
    expect(await p.authenticate(clientInfo({ clientId: ID, username: 'use-token-auth' }))).toMatchObject({ kind: 'reject', reason: 'no_password' });
    expect(await p.authenticate(clientInfo({ clientId: ID, username: 'alice', password: 'plain-token-value' }))).toEqual({ kind: 'skip' });
    expect(await p.authenticate(clientInfo({ clientId: ID, password: 'plain-token-value' }))).toEqual({ kind: 'skip' });
  });
});
