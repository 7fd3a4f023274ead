import { createHash } from 'node:crypto';
import { PK_MAX_BYTES } from './retained-keys.js';

const HASHED_PREFIX = '\u0000sha256:';

/**
 * The partition key of a client ID (sessions and offline queues). DynamoDB keys must be
 * non-empty and at most 2,048 bytes, while an MQTT client ID may be empty (the broker then
 * assigns one) or up to 65,535 bytes. A client ID that is empty or longer than PK_MAX_BYTES
 * becomes U+0000 + `sha256:` + the SHA-256 of the ID; no real client ID starts with U+0000
 * [MQTT-1.5.4-2], so it cannot collide with one kept verbatim.
 */
export function clientKey(clientId: string): string {
  if (clientId !== '' && Buffer.byteLength(clientId, 'utf8') <= PK_MAX_BYTES) return clientId;
  return HASHED_PREFIX + createHash('sha256').update(clientId, 'utf8').digest('hex');
}
