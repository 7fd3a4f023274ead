import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, exportJWK, type JWTPayload } from 'jose';
import { describe, expect, it } from 'vitest';
import { JwtProvider, type JwtProviderOptions } from '@fleetmq/auth';
import { clientInfo } from './support.js';

const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);
const NOW_S = NOW / 1000;
const clock = () => NOW;
const SECRET = 'a-shared-secret-of-at-least-32-bytes!';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const ecPem = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString();

/** Claims to sign; a claim set to undefined is left out (`exp: undefined`: a token without exp). */
type Claims = Record<string, unknown>;

async function sign(
  payload: Claims,
  o: { alg?: 'HS256' | 'RS256' | 'ES256'; key?: Parameters<SignJWT['sign']>[0]; kid?: string } = {},
): Promise<string> {
  const alg = o.alg ?? 'HS256';
  const key = o.key ?? (alg === 'HS256' ? Buffer.from(SECRET) : alg === 'RS256' ? rsa.privateKey : ec.privateKey);
  const claims: JWTPayload = Object.fromEntries(Object.entries({ exp: NOW_S + 3600, ...payload }).filter(([, v]) => v !== undefined));
  return new SignJWT(claims).setProtectedHeader({ alg, ...(o.kid !== undefined ? { kid: o.kid } : {}) }).sign(key);
}

function provider(over: Partial<JwtProviderOptions> = {}): JwtProvider {
  return new JwtProvider({ key: { secret: SECRET }, now: clock, ...over });
}

const connect = (token: string, over: Parameters<typeof clientInfo>[0] = {}) => clientInfo({ username: 'anything', password: token, ...over });

describe('JwtProvider: HS256', () => {
  it('accepts a valid token; identity from sub, groups, acl and exp', async () => {
    const token = await sign({ sub: 'sensor-7', groups: ['fleet', 'eu'], acl: { pub: ['t/sensor-7/#'], sub: ['cmd/sensor-7'] } });
    const r = await provider().authenticate(connect(token));
    expect(r).toEqual({
      kind: 'accept',
      identity: {
        provider: 'jwt',
        username: 'sensor-7',
        groups: ['fleet', 'eu'],
        acl: { pub: ['t/sensor-7/#'], sub: ['cmd/sensor-7'], all: [] },
        expiresAt: (NOW_S + 3600) * 1000,
      },
    });
  });

  it.each<[string, Claims, string]>([
    ['expired', { exp: NOW_S - 1 }, 'token_expired'],
    ['not yet valid', { nbf: NOW_S + 60 }, 'token_not_yet_valid'],
    ['without exp', { exp: undefined }, 'token_without_expiry'],
  ])('%s → 0x86 %s', async (_name, payload, reason) => {
    const token = await sign(payload);
    expect(await provider().authenticate(connect(token))).toEqual({ kind: 'reject', reasonCode: 0x86, reason });
  });

  it('clock tolerance allows small skew', async () => {
    const token = await sign({ exp: NOW_S - 5 });
    expect((await provider({ clockToleranceSeconds: 10 }).authenticate(connect(token))).kind).toBe('accept');
  });

  it('requireExpiry: false accepts a token without exp', async () => {
    const token = await sign({ exp: undefined, sub: 'x' });
    expect((await provider({ requireExpiry: false }).authenticate(connect(token))).kind).toBe('accept');
  });

  it('a token signed with another secret → bad_signature', async () => {
    const token = await sign({}, { key: Buffer.from('another-secret-that-is-32-bytes-long') });
    expect(await provider().authenticate(connect(token))).toEqual({ kind: 'reject', reasonCode: 0x86, reason: 'bad_signature' });
  });

  it('a tampered payload → bad_signature', async () => {
    const [h, , s] = (await sign({ sub: 'a' })).split('.');
    const forged = Buffer.from(JSON.stringify({ sub: 'admin', exp: NOW_S + 3600 })).toString('base64url');
    expect(await provider().authenticate(connect(`${h}.${forged}.${s}`))).toMatchObject({ kind: 'reject', reason: 'bad_signature' });
  });

  it('alg "none" is refused', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    const body = Buffer.from(JSON.stringify({ sub: 'x', exp: NOW_S + 60 })).toString('base64url');
    // a compact JWS with an empty signature is not even taken as a JWT; with any signature it is refused
    expect(await provider().authenticate(connect(`${header}.${body}.`))).toEqual({ kind: 'skip' });
    expect(await provider().authenticate(connect(`${header}.${body}.AAAA`))).toMatchObject({ kind: 'reject', reasonCode: 0x86, reason: 'algorithm_not_allowed' });
  });

  it('refuses secrets shorter than 32 bytes at construction', () => {
    expect(() => new JwtProvider({ key: { secret: 'short' } })).toThrow(/32 bytes/);
  });
});

describe('JwtProvider: audience, issuer, username', () => {
  it('audience must match when configured', async () => {
    const p = provider({ audience: ['mqtt.fleet.example'] });
    expect((await p.authenticate(connect(await sign({ aud: 'mqtt.fleet.example' })))).kind).toBe('accept');
    expect(await p.authenticate(connect(await sign({ aud: 'api.example' })))).toEqual({ kind: 'reject', reasonCode: 0x86, reason: 'wrong_audience' });
    expect(await p.authenticate(connect(await sign({})))).toMatchObject({ kind: 'reject', reason: 'wrong_audience' });
  });

  it('issuer: a token from another issuer is skipped (for another provider); a token without iss is refused', async () => {
    const p = provider({ issuer: 'https://idp.fleet.example' });
    expect((await p.authenticate(connect(await sign({ iss: 'https://idp.fleet.example' })))).kind).toBe('accept');
    expect(await p.authenticate(connect(await sign({ iss: 'https://other.example' })))).toEqual({ kind: 'skip' });
    expect(await p.authenticate(connect(await sign({})))).toEqual({ kind: 'reject', reasonCode: 0x86, reason: 'wrong_issuer' });
  });

  it('a configured username: other usernames are skipped; the token is still the password', async () => {
    const p = provider({ username: 'jwt' });
    const token = await sign({ sub: 'd1' });
    expect((await p.authenticate(connect(token, { username: 'jwt' }))).kind).toBe('accept');
    expect(await p.authenticate(connect(token, { username: 'other' }))).toEqual({ kind: 'skip' });
    expect(await p.authenticate(connect(token, { username: undefined }))).toEqual({ kind: 'skip' });
  });

  it('skips what is not a JWT: no password, a plain password, an oversized one', async () => {
    const p = provider();
    expect(await p.authenticate(clientInfo({ username: 'u' }))).toEqual({ kind: 'skip' });
    expect(await p.authenticate(connect('hunter2'))).toEqual({ kind: 'skip' });
    expect(await p.authenticate(connect(`${'a'.repeat(9000)}.b.c`))).toEqual({ kind: 'skip' });
  });

  it('no sub claim: the identity has no username (the ACL treats it as anonymous); usernameClaim picks another', async () => {
    expect(await provider().authenticate(connect(await sign({})))).toMatchObject({ kind: 'accept', identity: { username: undefined } });
    const p = provider({ usernameClaim: 'device', groupsClaim: 'roles' });
    expect(await p.authenticate(connect(await sign({ device: 'dx', roles: 'admin' })))).toMatchObject({
      kind: 'accept',
      identity: { username: 'dx', groups: ['admin'] },
    });
  });
});

describe('JwtProvider: client ID binding and ACL claim', () => {
  const bound = () => provider({ clientIdClaim: 'client_id' });

  it('a token for this client ID is accepted; a token for another client ID is refused 0x87', async () => {
    const token = await sign({ client_id: 'dev-1' });
    expect((await bound().authenticate(connect(token, { clientId: 'dev-1' }))).kind).toBe('accept');
    expect(await bound().authenticate(connect(token, { clientId: 'dev-2' }))).toEqual({ kind: 'reject', reasonCode: 0x87, reason: 'client_id_mismatch' });
  });

  it('a non-string client ID claim never matches', async () => {
    const token = await sign({ client_id: 1 });
    expect(await bound().authenticate(connect(token, { clientId: '1' }))).toMatchObject({ kind: 'reject', reason: 'client_id_mismatch' });
  });

  it('without the claim: accepted, unless requireClientIdClaim', async () => {
    const token = await sign({});
    expect((await bound().authenticate(connect(token))).kind).toBe('accept');
    const strict = provider({ clientIdClaim: 'client_id', requireClientIdClaim: true });
    expect(await strict.authenticate(connect(token))).toEqual({ kind: 'reject', reasonCode: 0x87, reason: 'client_id_claim_missing' });
  });

  it.each([
    ['not an object', 'pub'],
    ['an unknown key', { publish: ['a'] }],
    ['a non-array', { pub: 'a/b' }],
    ['an invalid filter', { sub: ['a/#/b'] }],
    ['a non-string', { all: [1] }],
  ])('an ACL claim with %s is refused 0x87', async (_name, acl) => {
    expect(await provider().authenticate(connect(await sign({ acl })))).toEqual({ kind: 'reject', reasonCode: 0x87, reason: 'bad_acl_claim' });
  });
});

describe('JwtProvider: RS256 and ES256 with PEM keys, and JWKS', () => {
  it('RS256 with a PEM public key', async () => {
    const p = new JwtProvider({ key: { publicKeyPem: rsaPem }, now: clock });
    expect((await p.authenticate(connect(await sign({ sub: 'r' }, { alg: 'RS256' })))).kind).toBe('accept');
    expect(await p.authenticate(connect(await sign({}, { alg: 'RS256', key: otherRsa.privateKey })))).toMatchObject({ reason: 'bad_signature' });
    // an ES256 token against an RSA key: the algorithm follows from the key, not the token
    expect(await p.authenticate(connect(await sign({}, { alg: 'ES256' })))).toMatchObject({ reason: 'algorithm_not_allowed' });
  });

  it('ES256 with a PEM public key', async () => {
    const p = new JwtProvider({ key: { publicKeyPem: ecPem }, now: clock });
    expect((await p.authenticate(connect(await sign({ sub: 'e' }, { alg: 'ES256' })))).kind).toBe('accept');
    expect(await p.authenticate(connect(await sign({ exp: NOW_S - 10 }, { alg: 'ES256' })))).toMatchObject({ reason: 'token_expired' });
  });

  it('algorithm confusion: an HS256 token keyed with the RSA public key PEM is refused', async () => {
    const p = new JwtProvider({ key: { publicKeyPem: rsaPem }, now: clock });
    const token = await sign({ sub: 'attacker' }, { alg: 'HS256', key: Buffer.from(rsaPem) });
    expect(await p.authenticate(connect(token))).toEqual({ kind: 'reject', reasonCode: 0x86, reason: 'algorithm_not_allowed' });
  });

  it('refuses a key that is neither RSA nor P-256 at construction', () => {
    const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => new JwtProvider({ key: { publicKeyPem: ed } })).toThrow(/RSA \(RS256\) or EC P-256/);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => new JwtProvider({ key: { publicKeyPem: p384 } })).toThrow(/secp384r1/);
  });

  it('JWKS: the kid picks the key (RS256 and ES256 in one set); an unknown kid is refused', async () => {
    const jwks = {
      keys: [
        { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
        { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
      ],
    };
    const p = new JwtProvider({ key: { jwks }, now: clock, audience: 'mqtt' });
    expect((await p.authenticate(connect(await sign({ aud: 'mqtt' }, { alg: 'RS256', kid: 'rsa-1' })))).kind).toBe('accept');
    expect((await p.authenticate(connect(await sign({ aud: 'mqtt' }, { alg: 'ES256', kid: 'ec-1' })))).kind).toBe('accept');
    expect(await p.authenticate(connect(await sign({ aud: 'mqtt' }, { alg: 'RS256', kid: 'rsa-2', key: otherRsa.privateKey })))).toMatchObject({
      reason: 'unknown_key',
    });
    expect(await p.authenticate(connect(await sign({ aud: 'mqtt' }, { alg: 'RS256', kid: 'ec-1' })))).toMatchObject({ kind: 'reject', reasonCode: 0x86 });
    // HS256 is never accepted from a JWKS provider
    expect(await p.authenticate(connect(await sign({ aud: 'mqtt' }, { alg: 'HS256', kid: 'rsa-1' })))).toMatchObject({ reason: 'algorithm_not_allowed' });
  });
});
