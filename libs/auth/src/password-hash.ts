import { createHash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/**
 * A password hash as `mosquitto_passwd` (Mosquitto 1.x/2.0) writes it after `user:`:
 *
 *   $6$<salt>$<hash>               SHA-512(password ‖ salt)                 (`-H sha512`, 1.6 default)
 *   $7$<iterations>$<salt>$<hash>  PBKDF2-HMAC-SHA512(password, salt, n, 64) (`-H sha512-pbkdf2`, 2.0 default, n = 101)
 *
 * salt and hash are standard base64 with padding; the salt is 12 bytes and the hash 64
 * bytes, which Mosquitto 2.0 requires when it loads the file (other sizes are refused there,
 * so they are refused here too).
 */
export type PasswordHash =
  | { readonly format: 6; readonly salt: Buffer; readonly hash: Buffer }
  | { readonly format: 7; readonly iterations: number; readonly salt: Buffer; readonly hash: Buffer };

export type PasswordFormat = PasswordHash['format'];

export const SALT_BYTES = 12;
export const HASH_BYTES = 64;
/** What `mosquitto_passwd` 2.0 writes. */
export const MOSQUITTO_DEFAULT_ITERATIONS = 101;
/**
 * What `hashPassword` writes unless told otherwise. Higher than Mosquitto's 101 because 101
 * rounds of PBKDF2 are cheap to brute-force; Mosquitto 2.0 reads any count (checked in the
 * interop test against the real broker). About 10 ms of one libuv thread per check.
 */
export const DEFAULT_ITERATIONS = 20_000;
/** Mosquitto parses the count with atoi into an int. */
const MAX_ITERATIONS = 0x7fffffff;

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

function decodeBase64(text: string, bytes: number): Buffer | undefined {
  if (!B64.test(text) || text.length % 4 !== 0) return undefined;
  const buf = Buffer.from(text, 'base64');
  return buf.length === bytes ? buf : undefined;
}

/** Why a stored hash cannot be used; words for logs, never the hash itself. */
export type PasswordHashProblem =
  | 'unknown_hash_type'
  | 'bad_iterations'
  | 'bad_salt'
  | 'bad_hash'
  | 'malformed';

/** Parses the part after `user:`; returns a problem word instead of throwing. */
export function parsePasswordHash(text: string): PasswordHash | PasswordHashProblem {
  const parts = text.split('$');
  // a leading '$' makes parts[0] empty
  if (parts[0] !== '' || parts.length < 4) return parts[1] === '6' || parts[1] === '7' ? 'malformed' : 'unknown_hash_type';
  if (parts[1] === '6') {
    if (parts.length !== 4) return 'malformed';
    const salt = decodeBase64(parts[2] ?? '', SALT_BYTES);
    if (salt === undefined) return 'bad_salt';
    const hash = decodeBase64(parts[3] ?? '', HASH_BYTES);
    if (hash === undefined) return 'bad_hash';
    return { format: 6, salt, hash };
  }
  if (parts[1] === '7') {
    if (parts.length !== 5) return 'malformed';
    const n = parts[2] ?? '';
    if (!/^[0-9]{1,10}$/.test(n)) return 'bad_iterations';
    const iterations = Number(n);
    if (iterations < 1 || iterations > MAX_ITERATIONS) return 'bad_iterations';
    const salt = decodeBase64(parts[3] ?? '', SALT_BYTES);
    if (salt === undefined) return 'bad_salt';
    const hash = decodeBase64(parts[4] ?? '', HASH_BYTES);
    if (hash === undefined) return 'bad_hash';
    return { format: 7, iterations, salt, hash };
  }
  return 'unknown_hash_type';
}

export function isPasswordHash(x: PasswordHash | PasswordHashProblem): x is PasswordHash {
  return typeof x !== 'string';
}

/** The text `mosquitto_passwd` writes after `user:`. */
export function formatPasswordHash(h: PasswordHash): string {
  const salt = h.salt.toString('base64');
  const hash = h.hash.toString('base64');
  return h.format === 6 ? `$6$${salt}$${hash}` : `$7$${h.iterations}$${salt}$${hash}`;
}

/** The digest a password yields under a stored hash's parameters. */
export async function digestPassword(password: Uint8Array | string, h: Pick<PasswordHash, 'format' | 'salt'> & { readonly iterations?: number }): Promise<Buffer> {
  if (h.format === 6) return createHash('sha512').update(password).update(h.salt).digest();
  return pbkdf2Async(password, h.salt, h.iterations ?? MOSQUITTO_DEFAULT_ITERATIONS, HASH_BYTES, 'sha512');
}

/**
 * True when `password` (the raw CONNECT password bytes, or a string taken as UTF-8)
 * yields the stored hash. The comparison is constant-time (crypto.timingSafeEqual);
 * PBKDF2 runs on the libuv thread pool, not the event loop.
 */
export async function verifyPassword(password: Uint8Array | string, stored: PasswordHash): Promise<boolean> {
  const digest = await digestPassword(password, stored);
  return digest.length === stored.hash.length && timingSafeEqual(digest, stored.hash);
}

export interface HashPasswordOptions {
  /** 7 (PBKDF2-SHA512, the default) or 6 (salted SHA-512, for Mosquitto 1.x readers). */
  readonly format?: PasswordFormat;
  /** PBKDF2 rounds for format 7; default {@link DEFAULT_ITERATIONS}. */
  readonly iterations?: number;
  /** 12 bytes; random unless given (tests). */
  readonly salt?: Uint8Array;
}

/** Hashes a password into the `mosquitto_passwd` format (the part after `user:`). */
export async function hashPassword(password: Uint8Array | string, options: HashPasswordOptions = {}): Promise<string> {
  const format = options.format ?? 7;
  if (format !== 6 && format !== 7) throw new RangeError(`unknown password hash format ${String(format)}`);
  const salt = options.salt !== undefined ? Buffer.from(options.salt) : randomBytes(SALT_BYTES);
  if (salt.length !== SALT_BYTES) throw new RangeError(`salt must be ${SALT_BYTES} bytes (Mosquitto refuses other sizes)`);
  if (format === 6) {
    return formatPasswordHash({ format, salt, hash: await digestPassword(password, { format, salt }) });
  }
  const iterations = options.iterations ?? DEFAULT_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    throw new RangeError(`iterations must be an integer from 1 to ${MAX_ITERATIONS}`);
  }
  return formatPasswordHash({ format, iterations, salt, hash: await digestPassword(password, { format, salt, iterations }) });
}
