import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Compares two secrets in time that depends on neither their contents nor their lengths:
 * both are reduced to SHA-256 digests first (timingSafeEqual needs equal lengths, and
 * comparing lengths directly would leak the secret's length).
 */
export function secretsEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}
