/**
 * MQTT topic names and topic filters as NATS subjects, and back (DESIGN.md invariant 5).
 *
 * Scheme (total over valid MQTT topic names and filters, and reversible):
 * - `<prefix>.<token>.<token>…`: one NATS token per MQTT level, after a fixed prefix
 *   (default `mqtt`) so that MQTT traffic has its own namespace and a '$' topic such as
 *   `$SYS/x` becomes the ordinary subject `mqtt.$SYS.x` (NATS reserves a leading `$`).
 * - A level is kept as it is unless it holds a byte NATS cannot carry in a token: each such
 *   byte becomes `%XX` (two upper-case hex digits). Escaped: `.` (token separator), `*` and
 *   `>` (wildcards), `%` (the escape character itself), ASCII space and every other ASCII
 *   control or whitespace byte (0x00-0x20, 0x7f: they end a protocol argument), and `+` and
 *   `#` (never in a valid topic name, escaped so the codec stays reversible for any string).
 *   Everything else, non-ASCII included, passes through as UTF-8, so `fleet/d1/temp` is
 *   `mqtt.fleet.d1.temp`, `dot.ted/sp ace` is `mqtt.dot%2Eted.sp%20ace`.
 * - An empty level is the reserved token `%` (never produced by escaping, which always
 *   writes `%XX`): `a//b` is `mqtt.a.%.b`, `/` is `mqtt.%.%`.
 * - Filters: a `+` level is the token `*`, a `#` level the token `>`. A literal `*` or `>`
 *   level is escaped, so it cannot be taken for a wildcard.
 *
 * Matching. NATS token matching of the encoded forms equals MQTT matching except in two
 * places, both handled by {@link interestSubjects} and {@link leadingWildcard}:
 * - `a/#` matches the parent `a` in MQTT, but `a.>` needs at least one more token in NATS:
 *   a bus subscribes to both `…a` and `…a.>` (two NATS subscriptions for one filter; the two
 *   subjects never match the same message, so a queue group spanning both still delivers
 *   each message once). Chosen over re-checking a broader subscription locally because it
 *   keeps interest routing exact: a node receives only what it asked for.
 * - A filter starting with a wildcard must not match a topic starting with `$`
 *   [MQTT-4.7.2-1], which NATS does not know (the prefix token is literal): the receiver
 *   drops such messages for such filters. The property tests prove these are the only gaps.
 *
 * Decoding is strict: it accepts exactly what encoding produces (upper-case hex, only escapes
 * of escaped bytes, no raw reserved bytes, no empty token) and throws SubjectCodecError
 * otherwise, so foreign traffic under the prefix is refused rather than misread.
 *
 * Subjects and the server's `max_control_line`: a NATS server refuses (and disconnects a
 * client for) a protocol line longer than `max_control_line`, 4 KiB by default. A 64 KiB MQTT
 * topic needs a server configured with a larger limit; see {@link subjectFits} and the bus's
 * `maxControlLine` option.
 */

/** A NATS subject or token that this codec did not produce, or an invalid prefix. */
export class SubjectCodecError extends Error {
  override readonly name = 'SubjectCodecError';
}

/** The NATS token for an empty MQTT level. */
export const EMPTY_LEVEL_TOKEN = '%';

const HEX = '0123456789ABCDEF';
const PERCENT = 0x25;

/** Bytes escaped in a level: ASCII controls and space, DEL, and . * > % + # */
const ESCAPED = new Uint8Array(128);
for (let c = 0; c <= 0x20; c++) ESCAPED[c] = 1;
for (const c of [0x7f, 0x2e, 0x2a, 0x3e, 0x25, 0x2b, 0x23]) ESCAPED[c] = 1;

function needsEscape(c: number): boolean {
  return c < 128 && ESCAPED[c] === 1;
}

/** One MQTT level as one NATS token (never empty, never a wildcard). */
export function escapeLevel(level: string): string {
  if (level.length === 0) return EMPTY_LEVEL_TOKEN;
  let i = 0;
  const n = level.length;
  while (i < n && !needsEscape(level.charCodeAt(i))) i++;
  if (i === n) return level; // the common case: nothing to escape, no copy
  let out = level.slice(0, i);
  let start = i;
  for (; i < n; i++) {
    const c = level.charCodeAt(i);
    if (!needsEscape(c)) continue;
    if (start < i) out += level.slice(start, i);
    out += '%' + HEX[c >> 4]! + HEX[c & 15]!;
    start = i + 1;
  }
  if (start < n) out += level.slice(start);
  return out;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10; // upper case only: one spelling per byte
  return -1;
}

/** The inverse of {@link escapeLevel}; throws SubjectCodecError on anything it would not produce. */
export function unescapeToken(token: string): string {
  if (token === EMPTY_LEVEL_TOKEN) return '';
  const n = token.length;
  if (n === 0) throw new SubjectCodecError('empty NATS token');
  let i = 0;
  while (i < n) {
    const c = token.charCodeAt(i);
    if (c === PERCENT) break;
    if (needsEscape(c)) throw new SubjectCodecError(`unescaped reserved character in token ${JSON.stringify(token)}`);
    i++;
  }
  if (i === n) return token;
  let out = token.slice(0, i);
  let start = i;
  while (i < n) {
    const c = token.charCodeAt(i);
    if (c !== PERCENT) {
      if (needsEscape(c)) throw new SubjectCodecError(`unescaped reserved character in token ${JSON.stringify(token)}`);
      i++;
      continue;
    }
    if (start < i) out += token.slice(start, i);
    const hi = i + 3 <= n ? hexValue(token.charCodeAt(i + 1)) : -1;
    const lo = i + 3 <= n ? hexValue(token.charCodeAt(i + 2)) : -1;
    const byte = hi < 0 || lo < 0 ? -1 : (hi << 4) | lo;
    if (byte < 0 || !needsEscape(byte)) throw new SubjectCodecError(`bad escape in token ${JSON.stringify(token)}`);
    out += String.fromCharCode(byte);
    i += 3;
    start = i;
  }
  if (start < n) out += token.slice(start);
  return out;
}

/**
 * True when `subject` fits in `limit` UTF-8 bytes; cheap for short subjects (a UTF-16 code
 * unit never takes more than 3 UTF-8 bytes), so it can sit on the publish path.
 */
export function subjectFits(subject: string, limit: number): boolean {
  return subject.length * 3 <= limit || Buffer.byteLength(subject, 'utf8') <= limit;
}

function validPrefix(prefix: string): boolean {
  if (prefix.length === 0) return false;
  for (const token of prefix.split('.')) {
    if (token.length === 0 || token === '*' || token === '>') return false;
    for (let i = 0; i < token.length; i++) {
      const c = token.charCodeAt(i);
      if (c <= 0x20 || c === 0x7f) return false;
    }
  }
  return true;
}

/** Converts MQTT topics and filters to NATS subjects under one prefix, and back. */
export class SubjectCodec {
  /** The prefix followed by '.', e.g. `mqtt.` */
  private readonly head: string;

  /**
   * @param prefix NATS subject tokens that MQTT traffic lives under, without a trailing dot
   *   (`mqtt`, `fleet.mqtt`); no wildcards, no whitespace.
   */
  constructor(readonly prefix = 'mqtt') {
    if (!validPrefix(prefix)) throw new SubjectCodecError(`invalid subject prefix ${JSON.stringify(prefix)}`);
    this.head = prefix + '.';
  }

  /** A valid MQTT topic name as a literal NATS subject. */
  topicToSubject(topic: string): string {
    let out = this.head;
    let start = 0;
    for (;;) {
      const slash = topic.indexOf('/', start);
      out += escapeLevel(slash < 0 ? topic.slice(start) : topic.slice(start, slash));
      if (slash < 0) return out;
      out += '.';
      start = slash + 1;
    }
  }

  /** The inverse of {@link topicToSubject}; throws SubjectCodecError for a subject it did not produce. */
  subjectToTopic(subject: string): string {
    if (!subject.startsWith(this.head)) throw new SubjectCodecError(`subject outside prefix ${this.prefix}`);
    let out = '';
    let start = this.head.length;
    for (;;) {
      const dot = subject.indexOf('.', start);
      const token = dot < 0 ? subject.slice(start) : subject.slice(start, dot);
      out += unescapeToken(token);
      if (dot < 0) return out;
      out += '/';
      start = dot + 1;
    }
  }

  /** A valid MQTT topic filter as a NATS subject, `+` as `*` and `#` as `>`. */
  filterToSubject(filter: string): string {
    const levels = filter.split('/');
    let out = this.prefix;
    for (const level of levels) out += '.' + (level === '+' ? '*' : level === '#' ? '>' : escapeLevel(level));
    return out;
  }

  /** The inverse of {@link filterToSubject}; throws SubjectCodecError for a subject it did not produce. */
  subjectToFilter(subject: string): string {
    if (!subject.startsWith(this.head)) throw new SubjectCodecError(`subject outside prefix ${this.prefix}`);
    const tokens = subject.slice(this.head.length).split('.');
    const last = tokens.length - 1;
    return tokens
      .map((token, i) => {
        if (token === '*') return '+';
        if (token === '>') {
          if (i !== last) throw new SubjectCodecError(`'>' before the last token in ${JSON.stringify(subject)}`);
          return '#';
        }
        return unescapeToken(token);
      })
      .join('/');
  }

  /**
   * The NATS subjects a node subscribes to for one MQTT filter: the filter's subject, and for
   * `x/#` also the parent `x` (MQTT `#` matches its parent level [MQTT-4.7.1-2], NATS `>`
   * does not). `#` alone needs no parent: the empty topic does not exist.
   */
  interestSubjects(filter: string): string[] {
    const subject = this.filterToSubject(filter);
    if (filter.length > 1 && filter.endsWith('/#')) return [subject.slice(0, -2), subject];
    return [subject];
  }
}

/**
 * True when the filter starts with a wildcard level, so that it must not match a topic
 * starting with '$' [MQTT-4.7.2-1]; NATS would match it, the receiver checks.
 */
export function leadingWildcard(filter: string): boolean {
  const c = filter.charCodeAt(0);
  return (c === 0x2b /* + */ || c === 0x23) /* # */ && (filter.length === 1 || filter.charCodeAt(1) === 0x2f);
}
