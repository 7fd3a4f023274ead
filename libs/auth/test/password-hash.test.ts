import { createHash, pbkdf2Sync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DEFAULT_ITERATIONS,
  MOSQUITTO_DEFAULT_ITERATIONS,
  formatPasswordHash,
  hashPassword,
  isPasswordHash,
  parsePasswordHash,
  verifyPassword,
  type PasswordHash,
} from '@fleetmq/auth';

const SALT = Buffer.from('000102030405060708090a0b', 'hex');

function parsed(text: string): PasswordHash {
  const h = parsePasswordHash(text);
  if (!isPasswordHash(h)) throw new Error(`expected a hash, got ${h}`);
  return h;
}

describe('known vectors, computed here with node:crypto directly', () => {
  it('$7$: PBKDF2-HMAC-SHA512(password, salt, n, 64 bytes), base64', async () => {
    const expected = `$7$101$${SALT.toString('base64')}$${pbkdf2Sync('s3cret', SALT, 101, 64, 'sha512').toString('base64')}`;
    expect(await hashPassword('s3cret', { format: 7, iterations: 101, salt: SALT })).toBe(expected);
  });

  it('$6$: SHA-512(password ‖ salt), base64', async () => {
    const digest = createHash('sha512').update(Buffer.concat([Buffer.from('s3cret'), SALT])).digest('base64');
    expect(await hashPassword('s3cret', { format: 6, salt: SALT })).toBe(`$6$AAECAwQFBgcICQoL$${digest}`);
  });

  it('a vector written by mosquitto_passwd 2.0.11 (sha512-pbkdf2, "secret")', async () => {
    const h = parsed('$7$101$ZrhQ5pQtANy2ddED$BH9nogqW+53r5HKtTrnU+A0kSCZdZDNqg8grShtTrluJWXM8c/QeLyWIGnM9MXz3T9+TBnuxeS1gRdkpuWL7Vw==');
    expect(h).toMatchObject({ format: 7, iterations: 101 });
    expect(await verifyPassword('secret', h)).toBe(true);
    expect(await verifyPassword('Secret', h)).toBe(false);
  });

  it('a vector written by mosquitto_passwd 2.0.11 -H sha512 ("hunter2")', async () => {
    const h = parsed('$6$9atQBy0mzNi1csSA$4pA24Fc/RJJBbK0zfFy/NxAAc0ZuaLwahgQCANsI5kJT0RTGy5yeFD2Ab4VxK0KKdVrZGlZXbNv9+3KarOlPJg==');
    expect(h.format).toBe(6);
    expect(await verifyPassword('hunter2', h)).toBe(true);
    expect(await verifyPassword('hunter3', h)).toBe(false);
  });
});

describe('hashPassword', () => {
  it('defaults to $7$ with DEFAULT_ITERATIONS and a random 12-byte salt', async () => {
    const a = parsed(await hashPassword('pw'));
    const b = parsed(await hashPassword('pw'));
    expect(a).toMatchObject({ format: 7, iterations: DEFAULT_ITERATIONS });
    expect(a.salt).toHaveLength(12);
    expect(a.hash).toHaveLength(64);
    expect(a.salt.equals(b.salt)).toBe(false);
    expect(DEFAULT_ITERATIONS).toBeGreaterThan(MOSQUITTO_DEFAULT_ITERATIONS);
  });

  it('refuses a salt of another size, a bad iteration count and an unknown format', async () => {
    await expect(hashPassword('pw', { salt: Buffer.alloc(16) })).rejects.toThrow(/12 bytes/);
    await expect(hashPassword('pw', { iterations: 0 })).rejects.toThrow(/iterations/);
    await expect(hashPassword('pw', { iterations: 1.5 })).rejects.toThrow(/iterations/);
    await expect(hashPassword('pw', { format: 5 as unknown as 7 })).rejects.toThrow(/format/);
  });

  it('hashes the raw bytes of a binary password (MQTT passwords are binary data)', async () => {
    const pw = Buffer.from([0xff, 0x00, 0x41]);
    const h = parsed(await hashPassword(pw, { iterations: 3 }));
    expect(await verifyPassword(pw, h)).toBe(true);
    expect(await verifyPassword(Buffer.from([0xff]), h)).toBe(false);
  });
});

/**
 * Whether two passwords open the same hash. $7$ is PBKDF2-HMAC-SHA512, and HMAC pads a key
 * shorter than its block (128 bytes) with zero bytes: a password and the same bytes followed
 * by NULs are one key (Mosquitto's files behave alike). $6$ hashes the bytes as they are.
 */
function sameSecret(a: Uint8Array, b: Uint8Array, format: 6 | 7): boolean {
  const trim = (x: Uint8Array): Buffer => {
    let end = x.length;
    while (format === 7 && end > 0 && x[end - 1] === 0) end--;
    return Buffer.from(x.subarray(0, end));
  };
  return trim(a).equals(trim(b));
}

describe('round trips (property)', () => {
  it('$7$ (PBKDF2-HMAC) takes a password followed by NUL bytes as the same key; $6$ does not', async () => {
    const salt = new Uint8Array(12);
    for (const format of [6, 7] as const) {
      const h = parsed(await hashPassword(Buffer.from('pw'), { format, iterations: 1, salt }));
      expect(await verifyPassword(Buffer.from('pw\0\0'), h)).toBe(format === 7);
    }
  });

  it('hash → text → parse → verify accepts the password and refuses any other', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 0, maxLength: 40 }),
        fc.uint8Array({ minLength: 0, maxLength: 40 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.constantFrom<6 | 7>(6, 7),
        fc.integer({ min: 1, max: 50 }),
        async (pw, other, salt, format, iterations) => {
          const text = await hashPassword(pw, { format, iterations, salt });
          const h = parsed(text);
          expect(formatPasswordHash(h)).toBe(text);
          expect(await verifyPassword(pw, h)).toBe(true);
          expect(await verifyPassword(other, h)).toBe(sameSecret(other, pw, format));
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('parsePasswordHash refusals (Mosquitto 2.0 drops these entries)', () => {
  const salt = SALT.toString('base64');
  const hash = Buffer.alloc(64, 1).toString('base64');
  it.each([
    ['plain text', 'secret', 'unknown_hash_type'],
    ['$5$ (not a Mosquitto format)', `$5$${salt}$${hash}`, 'unknown_hash_type'],
    ['$6$ without hash', `$6$${salt}`, 'malformed'],
    ['$6$ with an extra field', `$6$${salt}$${hash}$x`, 'malformed'],
    ['$7$ zero iterations', `$7$0$${salt}$${hash}`, 'bad_iterations'],
    ['$7$ non-numeric iterations', `$7$10x$${salt}$${hash}`, 'bad_iterations'],
    ['$7$ iterations beyond int', `$7$4294967296$${salt}$${hash}`, 'bad_iterations'],
    ['16-byte salt', `$7$101$${Buffer.alloc(16).toString('base64')}$${hash}`, 'bad_salt'],
    ['salt not base64', `$6$not*base64*$${hash}`, 'bad_salt'],
    ['32-byte hash', `$6$${salt}$${Buffer.alloc(32).toString('base64')}`, 'bad_hash'],
    ['hash with bad padding', `$6$${salt}$${hash.slice(0, -1)}`, 'bad_hash'],
  ])('%s', (_name, text, problem) => {
    expect(parsePasswordHash(text)).toBe(problem);
  });
});
