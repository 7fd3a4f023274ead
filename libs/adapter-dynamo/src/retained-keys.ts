/**
 * Primary keys of the retained-message table.
 *
 * Key design: partition key `pk` = the topic's FIRST LEVEL, sort key `sk` = the WHOLE TOPIC.
 * - An exact topic is one GetItem.
 * - A filter whose first level is literal is a Query on that one partition, narrowed with
 *   `begins_with(sk, <leading literal levels>/)`: `a/+/c` → pk `a`, begins_with `a/`;
 *   `fleet/d1/#` → pk `fleet`, begins_with `fleet/d1/` plus a GetItem of `fleet/d1`
 *   (`#` also matches the parent level). Nothing outside the partition is read.
 * - Only a filter starting with a wildcard (`#`, `+/…`) has to Scan, and it skips `$` topics
 *   with a filter on the `topic` attribute ([MQTT-4.7.2-1]).
 *
 * Trade-off (hot partitions): all topics sharing a first level share one partition key, so a
 * fleet that puts everything under one first level (`fleet/<device>/…`) starts with one physical
 * partition for its retained messages: ~3,000 RCU / 1,000 WCU per second. Adaptive capacity may
 * later split that item collection by sort key ("split for heat"), but gradually, so bursts can be
 * throttled meanwhile. Retained writes are usually rare (status, config) and reads happen once
 * per subscribe, so this suits device fleets; a deployment that
 * retains at high rates under one first level should put a spreading level first
 * (`<region>/fleet/…`) or add a read cache in front. Hashing the whole topic into the partition
 * key would spread load perfectly but make every wildcard subscription a full table scan.
 *
 * Key size limits: a partition key may be 2,048 bytes and a sort key 1,024 bytes (UTF-8), while an
 * MQTT topic may be 65,535 bytes. So:
 * - a first level longer than PK_MAX_BYTES becomes `sha256/<hex of the level>` (a real level
 *   never contains `/`, so this cannot collide); an empty first level (topic `/a`) becomes `/`;
 * - a topic longer than SK_MAX_BYTES becomes `<its first SK_PREFIX_BYTES bytes>\0<sha256 hex of
 *   the topic>`. U+0000 is not allowed in a topic [MQTT-4.7.3-2], so an overflowed key never
 *   equals a real topic, and the kept prefix still answers `begins_with` (a longer prefix is cut
 *   the same way, see sortKeyPrefix). The full topic is always stored in the `topic` attribute,
 *   and every read checks it against the filter.
 */
import { createHash } from 'node:crypto';

/** Longest first level kept verbatim in the partition key (DynamoDB allows 2,048 bytes). */
export const PK_MAX_BYTES = 1_024;
/** Longest topic kept verbatim in the sort key (DynamoDB's limit). */
export const SK_MAX_BYTES = 1_024;
/** Bytes of an overflowing topic kept at the start of its sort key. */
export const SK_PREFIX_BYTES = 896;

const EMPTY_LEVEL_PK = '/';
const HASHED_PK_PREFIX = 'sha256/';
const OVERFLOW_SEPARATOR = '\u0000';

export interface RetainedKey {
  readonly pk: string;
  readonly sk: string;
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The longest prefix of `text` of at most `maxBytes` UTF-8 bytes that does not split a character. */
export function utf8Prefix(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char, 'utf8');
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += char.length;
  }
  return text.slice(0, end);
}

/** The partition key for a first topic level. */
export function partitionKey(firstLevel: string): string {
  if (firstLevel === '') return EMPTY_LEVEL_PK;
  if (Buffer.byteLength(firstLevel, 'utf8') > PK_MAX_BYTES) return HASHED_PK_PREFIX + sha256(firstLevel);
  return firstLevel;
}

/** The sort key for a topic. */
export function sortKey(topic: string): string {
  if (Buffer.byteLength(topic, 'utf8') <= SK_MAX_BYTES) return topic;
  return utf8Prefix(topic, SK_PREFIX_BYTES) + OVERFLOW_SEPARATOR + sha256(topic);
}

/**
 * The `begins_with` operand that finds every topic starting with `topicPrefix`, overflowed
 * ones included: cut to SK_PREFIX_BYTES exactly as sortKey cuts (the caller re-checks the
 * full topic, so the shorter operand only widens the read in that rare case).
 */
export function sortKeyPrefix(topicPrefix: string): string {
  return utf8Prefix(topicPrefix, SK_PREFIX_BYTES);
}

function firstLevelOf(topic: string): string {
  const slash = topic.indexOf('/');
  return slash === -1 ? topic : topic.slice(0, slash);
}

export function retainedKey(topic: string): RetainedKey {
  return { pk: partitionKey(firstLevelOf(topic)), sk: sortKey(topic) };
}

/** How one topic filter is read from the table. */
export type FilterPlan =
  /** Exact topic: GetItem. */
  | { readonly kind: 'get'; readonly topic: string }
  /** Query one partition, sort keys beginning with `skPrefix`; plus GetItem of `alsoTopic` when set (`#` parent). */
  | { readonly kind: 'query'; readonly pk: string; readonly skPrefix: string; readonly alsoTopic?: string }
  /** The filter starts with a wildcard: only a Scan (without `$` topics) can answer it. */
  | { readonly kind: 'scan' };

/** Plans the reads for a valid, non-shared topic filter. */
export function planFilter(filter: string): FilterPlan {
  const levels = filter.split('/');
  const first = levels[0] ?? '';
  if (first === '#' || first === '+') return { kind: 'scan' };
  const wildcardAt = levels.findIndex((level) => level === '#' || level === '+');
  if (wildcardAt === -1) return { kind: 'get', topic: filter };
  const literal = levels.slice(0, wildcardAt).join('/');
  const pk = partitionKey(first);
  const skPrefix = sortKeyPrefix(`${literal}/`);
  // MQTT 4.7.1.2: `#` also matches the parent level: `a/b/#` matches `a/b`.
  return levels[wildcardAt] === '#' ? { kind: 'query', pk, skPrefix, alsoTopic: literal } : { kind: 'query', pk, skPrefix };
}
