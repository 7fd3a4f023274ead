import { isValidTopicFilter } from '@fleetmq/protocol';
import type { ClaimAcl } from './identity.js';

const KEYS = ['pub', 'sub', 'all'] as const;

/**
 * Reads an ACL claim `{ pub?: string[], sub?: string[], all?: string[] }`.
 * Returns undefined when the claim is absent, 'invalid' when it is present but not of that
 * shape (an unknown key, a non-array, a non-string, or an invalid topic filter): a token
 * whose rules cannot be read is refused rather than half-applied.
 */
export function parseClaimAcl(value: unknown): ClaimAcl | undefined | 'invalid' {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) return 'invalid';
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) if (!(KEYS as readonly string[]).includes(key)) return 'invalid';
  const out: Record<(typeof KEYS)[number], string[]> = { pub: [], sub: [], all: [] };
  for (const key of KEYS) {
    const list = record[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) return 'invalid';
    for (const filter of list) {
      if (typeof filter !== 'string' || !isValidTopicFilter(filter)) return 'invalid';
      out[key].push(filter);
    }
  }
  return out;
}
