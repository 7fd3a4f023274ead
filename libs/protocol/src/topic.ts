/**
 * Topic names and topic filters (MQTT 3.1.1 section 4.7, MQTT 5.0 section 4.7 and 4.8.2).
 * Pure functions, no allocation on the matching path beyond what splitting needs.
 */

const MAX_UTF8_BYTES = 65535;

/**
 * A UTF-8 string as the spec allows it [MQTT-1.5.4-1..3]: no U+0000, and well formed.
 * mqtt-packet decodes with Buffer#toString, which turns ill-formed bytes into U+FFFD,
 * so U+FFFD is taken as the mark of ill-formed input (a client has no reason to send it).
 */
export function isWellFormedString(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x0000 || c === 0xfffd) return false;
    if (c >= 0xd800 && c <= 0xdfff && !(i = pairedSurrogateEnd(s, i, c))) return false;
  }
  return true;
}

/**
 * At a surrogate `c` at `i`: the index of the low half when it starts a proper pair,
 * else 0 (a lone or swapped surrogate is not UTF-8 [MQTT-1.5.4-1]).
 */
function pairedSurrogateEnd(s: string, i: number, c: number): number {
  if (c > 0xdbff || i + 1 >= s.length) return 0;
  const next = s.charCodeAt(i + 1);
  return next >= 0xdc00 && next <= 0xdfff ? i + 1 : 0;
}

/** A topic name a PUBLISH may carry: non-empty, no wildcards [MQTT-3.3.2-2], well formed. */
export function isValidTopicName(topic: string): boolean {
  if (topic.length === 0 || topic.length > MAX_UTF8_BYTES) return false;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    // '#' 0x23, '+' 0x2b, NUL, U+FFFD, unpaired surrogates
    if (c === 0x23 || c === 0x2b || c === 0x0000 || c === 0xfffd) return false;
    if (c >= 0xd800 && c <= 0xdfff && !(i = pairedSurrogateEnd(topic, i, c))) return false;
  }
  return Buffer.byteLength(topic) <= MAX_UTF8_BYTES;
}

/**
 * A topic filter a SUBSCRIBE may carry: non-empty; '+' fills a whole level;
 * '#' fills a whole level and is the last one [MQTT-4.7.1-2, MQTT-4.7.1-3].
 * Shared filters must be split with {@link parseSharedFilter} first.
 */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.length > MAX_UTF8_BYTES) return false;
  const last = filter.length - 1;
  for (let i = 0; i <= last; i++) {
    const c = filter.charCodeAt(i);
    if (c === 0x0000 || c === 0xfffd) return false;
    if (c >= 0xd800 && c <= 0xdfff && !(i = pairedSurrogateEnd(filter, i, c))) return false;
    if (c === 0x2b /* + */) {
      if ((i > 0 && filter.charCodeAt(i - 1) !== 0x2f) || (i < last && filter.charCodeAt(i + 1) !== 0x2f)) return false;
    } else if (c === 0x23 /* # */) {
      if (i !== last || (i > 0 && filter.charCodeAt(i - 1) !== 0x2f)) return false;
    }
  }
  return Buffer.byteLength(filter) <= MAX_UTF8_BYTES;
}

export function hasWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

export interface SharedFilter {
  readonly group: string;
  readonly filter: string;
}

const SHARE_PREFIX = '$share/';

export function isSharedFilter(filter: string): boolean {
  return filter.startsWith(SHARE_PREFIX);
}

/**
 * Splits `$share/<group>/<filter>` [MQTT-4.8.2-1, MQTT-4.8.2-2]. Returns null when the
 * filter is not shared, throws nothing; returns 'invalid' when it is shared but malformed.
 */
export function parseSharedFilter(filter: string): SharedFilter | null | 'invalid' {
  if (!filter.startsWith(SHARE_PREFIX)) return null;
  const slash = filter.indexOf('/', SHARE_PREFIX.length);
  if (slash < 0) return 'invalid';
  const group = filter.slice(SHARE_PREFIX.length, slash);
  const inner = filter.slice(slash + 1);
  if (group.length === 0 || /[+#]/.test(group) || !isWellFormedString(group)) return 'invalid';
  if (!isValidTopicFilter(inner)) return 'invalid';
  return { group, filter: inner };
}

/**
 * MQTT topic matching: '+' matches one level, '#' matches the level it stands in and
 * every level below, including the parent itself ("a/#" matches "a") [MQTT-4.7.1-2].
 * Topics starting with '$' are not matched by a filter starting with a wildcard [MQTT-4.7.2-1].
 * The subscription trie is the hot path; this is the reference and the re-check.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const f0 = filter.charCodeAt(0);
  if (topic.charCodeAt(0) === 0x24 /* $ */ && (f0 === 0x2b /* + */ || f0 === 0x23 /* # */)) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}
