import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import type { Authenticator, ClientInfo } from '@fleetmq/broker';
import {
  FailureThrottle,
  JwtProvider,
  LimitCounters,
  PasswordFileProvider,
  SasTokenProvider,
  createAuthChain,
  createSasToken,
  hashPassword,
  parsePasswordFile,
  safeUsername,
  skip,
  type AuthProvider,
  type ProviderResult,
} from '@fleetmq/auth';
import { captureLog, clientInfo } from './support.js';

const SECRET = 'jwt-secret-jwt-secret-jwt-secret-!!';
const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);

async function passwordFile(bindClientId = false): Promise<PasswordFileProvider> {
  const text = `alice:${await hashPassword('alice-pw', { iterations: 50 })}\ndev-7:${await hashPassword('dev-7-pw', { format: 6 })}\n`;
  return new PasswordFileProvider(parsePasswordFile(text), { bindClientId });
}

function fixed(name: string, result: ProviderResult, calls: string[] = []): AuthProvider {
  return {
    name,
    authenticate: () => {
      calls.push(name);
      return result;
    },
  };
}

describe('PasswordFileProvider', () => {
  it('accepts a right password, refuses a wrong or missing one, skips unknown users and clients without a username', async () => {
    const p = await passwordFile();
    expect(await p.authenticate(clientInfo({ username: 'alice', password: 'alice-pw' }))).toEqual({
      kind: 'accept',
      identity: { provider: 'password-file', username: 'alice', groups: [] },
    });
    expect(await p.authenticate(clientInfo({ username: 'alice', password: 'alice-pW' }))).toEqual({ kind: 'reject', reasonCode: 0x86, reason: 'bad_password' });
    expect(await p.authenticate(clientInfo({ username: 'alice' }))).toEqual({ kind: 'reject', reasonCode: 0x86, reason: 'no_password' });
    expect(await p.authenticate(clientInfo({ username: 'mallory', password: 'x' }))).toEqual({ kind: 'skip' });
    expect(await p.authenticate(clientInfo({ password: 'alice-pw' }))).toEqual({ kind: 'skip' });
  });

  it('bindClientId: the username must be the client ID (0x87 otherwise, after the password check)', async () => {
    const p = await passwordFile(true);
    expect((await p.authenticate(clientInfo({ clientId: 'dev-7', username: 'dev-7', password: 'dev-7-pw' }))).kind).toBe('accept');
    expect(await p.authenticate(clientInfo({ clientId: 'dev-8', username: 'dev-7', password: 'dev-7-pw' }))).toEqual({
      kind: 'reject',
      reasonCode: 0x87,
      reason: 'client_id_mismatch',
    });
    expect(await p.authenticate(clientInfo({ clientId: 'dev-8', username: 'dev-7', password: 'wrong' }))).toMatchObject({ reasonCode: 0x86 });
  });

  it('replace swaps the file', async () => {
    const p = await passwordFile();
    p.replace(parsePasswordFile(`bob:${await hashPassword('b', { iterations: 2 })}\n`));
    expect(await p.authenticate(clientInfo({ username: 'alice', password: 'alice-pw' }))).toEqual({ kind: 'skip' });
    expect((await p.authenticate(clientInfo({ username: 'bob', password: 'b' }))).kind).toBe('accept');
  });
});

describe('createAuthChain', () => {
  it('is the broker’s Authenticator', async () => {
    const chain: Authenticator = createAuthChain([], { allowAnonymous: true });
    expect(await chain.authenticate(clientInfo())).toMatchObject({ ok: true });
  });

  it('asks providers in order: skip goes on, the first accept or reject decides', async () => {
    const calls: string[] = [];
    const identity = { provider: 'b', username: 'u', groups: [] };
    const chain = createAuthChain(
      [fixed('a', skip, calls), fixed('b', { kind: 'accept', identity }, calls), fixed('c', { kind: 'reject', reasonCode: 0x86, reason: 'x' }, calls)],
      { allowAnonymous: false, throttle: false },
    );
    expect(await chain.authenticate(clientInfo({ username: 'u', password: 'p' }))).toEqual({ ok: true, identity });
    expect(calls).toEqual(['a', 'b']);

    const calls2: string[] = [];
    const chain2 = createAuthChain([fixed('a', { kind: 'reject', reasonCode: 0x87, reason: 'client_id_mismatch' }, calls2), fixed('b', { kind: 'accept', identity }, calls2)], {
      allowAnonymous: true,
      throttle: false,
    });
    expect(await chain2.authenticate(clientInfo({ username: 'u', password: 'p' }))).toEqual({ ok: false, reasonCode: 0x87, reason: 'client_id_mismatch' });
    expect(calls2).toEqual(['a']);
  });

  it('anonymous: a client with no username and no password is let in only when enabled', async () => {
    const providers = [await passwordFile()];
    const open = createAuthChain(providers, { allowAnonymous: true, throttle: false });
    expect(await open.authenticate(clientInfo())).toEqual({ ok: true, identity: { provider: 'anonymous', username: undefined, groups: [] } });
    const closed = createAuthChain(providers, { allowAnonymous: false, throttle: false });
    expect(await closed.authenticate(clientInfo())).toEqual({ ok: false, reasonCode: 0x87, reason: 'anonymous_not_allowed' });
  });

  it('credentials nobody recognises are refused 0x86 even with anonymous access on', async () => {
    const chain = createAuthChain([await passwordFile()], { allowAnonymous: true, throttle: false });
    expect(await chain.authenticate(clientInfo({ username: 'mallory', password: 'x' }))).toEqual({ ok: false, reasonCode: 0x86, reason: 'no_provider_accepted' });
    expect(await chain.authenticate(clientInfo({ username: 'mallory' }))).toMatchObject({ ok: false, reasonCode: 0x86 });
    expect(await chain.authenticate(clientInfo({ password: 'only-a-password' }))).toMatchObject({ ok: false, reasonCode: 0x86 });
  });

  it('a mixed fleet: password file, JWT and SAS tokens side by side', async () => {
    const deviceKey = Buffer.alloc(32, 3);
    const chain = createAuthChain(
      [
        await passwordFile(),
        new JwtProvider({ key: { secret: SECRET }, now: () => NOW, clientIdClaim: 'cid' }),
        new SasTokenProvider({ now: () => NOW, keyFor: (r) => (r.resource === `hub/devices/${r.clientId}` ? { key: deviceKey } : undefined) }),
      ],
      { allowAnonymous: false, throttle: false },
    );
    const jwt = await new SignJWT({ sub: 'sensor-1', cid: 'sensor-1', exp: NOW / 1000 + 60 }).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(SECRET));
    const sas = createSasToken({ resource: 'hub/devices/meter-1', key: deviceKey, expiry: NOW / 1000 + 60 });
    expect(await chain.authenticate(clientInfo({ username: 'alice', password: 'alice-pw' }))).toMatchObject({ ok: true, identity: { provider: 'password-file' } });
    expect(await chain.authenticate(clientInfo({ clientId: 'sensor-1', username: 'ignored', password: jwt }))).toMatchObject({
      ok: true,
      identity: { provider: 'jwt', username: 'sensor-1' },
    });
    expect(await chain.authenticate(clientInfo({ clientId: 'sensor-2', password: jwt }))).toMatchObject({ ok: false, reasonCode: 0x87 });
    expect(await chain.authenticate(clientInfo({ clientId: 'meter-1', username: 'hub/meter-1', password: sas }))).toMatchObject({
      ok: true,
      identity: { provider: 'sas-token', username: 'meter-1' },
    });
    expect(chain.stats).toEqual({ accepted: 3, rejected: 1, throttled: 0, error: 0 });
  });

  it('a throwing provider refuses with 0x88 and stops the chain; the error is logged without the password', async () => {
    const { log, lines } = captureLog();
    const calls: string[] = [];
    const boom: AuthProvider = {
      name: 'kv',
      authenticate: (c: ClientInfo) => {
        throw new Error(`lookup failed for ${c.password?.toString()}`);
      },
    };
    const chain = createAuthChain([boom, fixed('after', skip, calls)], { allowAnonymous: true, log, throttle: false });
    expect(await chain.authenticate(clientInfo({ username: 'u', password: 'TopSecret-123' }))).toEqual({ ok: false, reasonCode: 0x88, reason: 'provider_error' });
    expect(calls).toEqual([]);
    expect(chain.stats.error).toBe(1);
    const line = lines.find((l) => l.msg === 'auth_provider_failed');
    expect(line?.fields).toMatchObject({ component: 'auth', provider: 'kv', err: { name: 'Error', message: 'lookup failed for [redacted]' } });
    expect(JSON.stringify(lines)).not.toContain('TopSecret-123');
  });

  it('failed attempts are slowed per source: after the burst, 0x9F without asking any provider', async () => {
    const counters = new LimitCounters();
    let t = 0;
    const throttle = new FailureThrottle({ burst: 3, ratePerSecond: 1, counters, now: () => t });
    const calls: string[] = [];
    const chain = createAuthChain([fixed('p', { kind: 'reject', reasonCode: 0x86, reason: 'bad_password' }, calls)], { allowAnonymous: false, throttle });
    const attacker = clientInfo({ username: 'alice', password: 'guess', remoteAddress: '203.0.113.5' });
    for (let i = 0; i < 3; i++) expect(await chain.authenticate(attacker)).toMatchObject({ ok: false, reasonCode: 0x86 });
    expect(await chain.authenticate(attacker)).toEqual({ ok: false, reasonCode: 0x9f, reason: 'auth_throttled' });
    expect(calls).toHaveLength(3);
    expect(counters.get('auth_failure_rate')).toBe(1);
    expect(chain.stats).toMatchObject({ rejected: 3, throttled: 1 });
    // another address is unaffected; one second later one more attempt is allowed
    expect(await chain.authenticate({ ...attacker, remoteAddress: '203.0.113.6' })).toMatchObject({ reasonCode: 0x86 });
    t += 1000;
    expect(await chain.authenticate(attacker)).toMatchObject({ reasonCode: 0x86 });
    expect(await chain.authenticate(attacker)).toMatchObject({ reasonCode: 0x9f });
  });

  it('successes cost nothing; refused anonymous attempts count as failures', async () => {
    const throttle = new FailureThrottle({ burst: 1, ratePerSecond: 0.001, now: () => 0 });
    const chain = createAuthChain([await passwordFile()], { allowAnonymous: false, throttle });
    for (let i = 0; i < 5; i++) expect((await chain.authenticate(clientInfo({ username: 'alice', password: 'alice-pw' }))).ok).toBe(true);
    expect(await chain.authenticate(clientInfo({ remoteAddress: '198.51.100.1' }))).toMatchObject({ reasonCode: 0x87 });
    expect(await chain.authenticate(clientInfo({ remoteAddress: '198.51.100.1' }))).toMatchObject({ reasonCode: 0x9f });
  });

  it('rejectDelayMs waits before a refusal, not before an acceptance', async () => {
    const waits: number[] = [];
    const chain = createAuthChain([await passwordFile()], { allowAnonymous: false, throttle: false, rejectDelayMs: 750, sleep: async (ms) => void waits.push(ms) });
    await chain.authenticate(clientInfo({ username: 'alice', password: 'alice-pw' }));
    expect(waits).toEqual([]);
    await chain.authenticate(clientInfo({ username: 'alice', password: 'nope' }));
    expect(waits).toEqual([750]);
  });

  it('no secret appears in any log line, accepted or refused', async () => {
    const { log, lines } = captureLog('debug');
    const jwt = await new SignJWT({ sub: 's', exp: NOW / 1000 + 60 }).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(SECRET));
    const chain = createAuthChain([await passwordFile(), new JwtProvider({ key: { secret: SECRET }, now: () => NOW })], { allowAnonymous: false, log });
    const secrets = ['alice-pw', 'wrong-pw-77', jwt, `${jwt.slice(0, -2)}xx`];
    await chain.authenticate(clientInfo({ username: 'alice', password: 'alice-pw' }));
    await chain.authenticate(clientInfo({ username: 'alice', password: 'wrong-pw-77' }));
    await chain.authenticate(clientInfo({ username: 'x', password: jwt }));
    await chain.authenticate(clientInfo({ username: jwt, password: `${jwt.slice(0, -2)}xx` })); // a token in the username field too
    await chain.authenticate(clientInfo({ username: 'wrong-pw-77', password: 'wrong-pw-77' }));
    expect(lines.map((l) => l.msg)).toEqual(['auth_accepted', 'auth_rejected', 'auth_accepted', 'auth_rejected', 'auth_rejected']);
    const text = JSON.stringify(lines);
    for (const s of secrets) expect(text).not.toContain(s);
    expect(lines[1]?.fields).toMatchObject({ clientId: 'dev-1', username: 'alice', remoteAddress: '192.0.2.10', reason: 'bad_password', reasonCode: 0x86 });
    expect(lines[3]?.fields.username).toBe('[redacted]');
  });

  it('safeUsername redacts usernames that look like tokens or equal the password', () => {
    expect(safeUsername({ username: 'alice', password: Buffer.from('x') })).toBe('alice');
    expect(safeUsername({ username: 'gw.north.1', password: undefined })).toBe('gw.north.1');
    expect(safeUsername({ username: 'eyJhbGciOiJIUzI1NiJ9.e30.sig', password: undefined })).toBe('[redacted]');
    expect(safeUsername({ username: 'x'.repeat(300), password: undefined })).toBe('[redacted]');
    expect(safeUsername({ username: 'SharedAccessSignature sr=x', password: undefined })).toBe('[redacted]');
    expect(safeUsername({ username: 'pw', password: Buffer.from('pw') })).toBe('[redacted]');
    expect(safeUsername({ username: undefined, password: undefined })).toBeUndefined();
  });
});
