import { describe, expect, it } from 'vitest';
import {
  hasWildcard,
  isSharedFilter,
  isValidTopicFilter,
  isValidTopicName,
  isWellFormedString,
  parseSharedFilter,
  topicMatches,
} from '@fleetmq/protocol';

// Tables follow MQTT 3.1.1 section 4.7 and MQTT 5.0 sections 4.7 and 4.8.2,
// including the non-normative examples given there.

describe('isWellFormedString', () => {
  it.each<[string, string, boolean]>([
    ['empty string', '', true],
    ['ascii', 'sport/tennis', true],
    ['two-byte UTF-8', 'caf\u00e9', true],
    ['three-byte UTF-8', '\u20ac', true],
    ['supplementary plane (surrogate pair)', '\u{1F600}', true],
    ['control character other than NUL (SHOULD NOT, not MUST NOT)', 'a\u0001b', true],
    ['U+FEFF (zero width no-break space) is allowed [MQTT-1.5.4-3]', '\ufeffa', true],
    ['NUL alone [MQTT-1.5.4-2]', '\u0000', false],
    ['NUL in the middle', 'a\u0000b', false],
    ['NUL at the end', 'ab\u0000', false],
    ['U+FFFD (decoder replacement of ill-formed bytes)', 'a\ufffdb', false],
    ['U+FFFD at the start', '\ufffd', false],
  ])('%s', (_name, s, expected) => {
    expect(isWellFormedString(s)).toBe(expected);
  });

  // MQTT-1.5.4-1: the character data MUST NOT include encodings of code points
  // U+D800..U+DFFF. A JS string holding a lone surrogate is such a code point; it cannot
  // be encoded as UTF-8 (Buffer.from turns it into EF BF BD, i.e. U+FFFD on the wire).
  it.each<[string, string]>([
    ['lone high surrogate', 'a\ud800b'],
    ['lone low surrogate', 'a\udc00b'],
    ['high surrogate at end', 'abc\ud83d'],
    ['swapped pair', '\ude00\ud83d'],
  ])('rejects a %s [MQTT-1.5.4-1]', (_name, s) => {
    expect(isWellFormedString(s)).toBe(false);
  });
});

describe('isValidTopicName', () => {
  it.each<[string, boolean]>([
    ['sport/tennis/player1', true],
    ['sport', true],
    ['/', true], // two empty levels
    ['/finance', true], // leading '/' makes a distinct, empty first level
    ['finance/', true],
    ['a//b', true],
    ['//', true],
    ['Accounts payable', true], // space is allowed
    ['$SYS/monitor/Clients', true],
    ['$share/g/a', true], // no wildcards; '$share' only means something in a filter
    ['sport/$', true],
    ['caf\u00e9/\u{1F600}', true],
    ['', false], // at least one character [MQTT-4.7.3-1]
    ['sport/tennis/#', false], // no wildcards in topic names [MQTT-4.7.1-1], [MQTT-3.3.2-2]
    ['#', false],
    ['+', false],
    ['sport/+/player1', false],
    ['sport+', false],
    ['a#b', false],
    ['a\u0000b', false],
    ['a\ufffd', false],
  ])('%j -> %s', (topic, expected) => {
    expect(isValidTopicName(topic)).toBe(expected);
  });

  describe('65535-byte limit (counted in UTF-8 bytes, not UTF-16 units)', () => {
    it('accepts 65535 ASCII bytes', () => {
      expect(isValidTopicName('a'.repeat(65535))).toBe(true);
    });
    it('rejects 65536 ASCII bytes', () => {
      expect(isValidTopicName('a'.repeat(65536))).toBe(false);
    });
    it('accepts 32767 two-byte characters plus one ASCII (65535 bytes)', () => {
      const t = '\u00e9'.repeat(32767) + 'a';
      expect(Buffer.byteLength(t)).toBe(65535);
      expect(isValidTopicName(t)).toBe(true);
    });
    it('rejects 32768 two-byte characters (65536 bytes in 32768 UTF-16 units)', () => {
      const t = '\u00e9'.repeat(32768);
      expect(t.length).toBe(32768);
      expect(Buffer.byteLength(t)).toBe(65536);
      expect(isValidTopicName(t)).toBe(false);
    });
    it('rejects 16384 four-byte characters (65536 bytes in 32768 UTF-16 units)', () => {
      const t = '\u{1F600}'.repeat(16384);
      expect(Buffer.byteLength(t)).toBe(65536);
      expect(isValidTopicName(t)).toBe(false);
    });
    it('accepts 21845 three-byte characters (65535 bytes)', () => {
      const t = '\u20ac'.repeat(21845);
      expect(Buffer.byteLength(t)).toBe(65535);
      expect(isValidTopicName(t)).toBe(true);
    });
  });
});

describe('isValidTopicFilter', () => {
  it.each<[string, boolean]>([
    // MQTT 4.7.1.2 examples
    ['sport/tennis/player1/#', true],
    ['sport/#', true],
    ['#', true],
    ['sport/tennis/#', true],
    ['sport/tennis#', false],
    ['sport/tennis/#/ranking', false],
    // MQTT 4.7.1.3 examples
    ['+', true],
    ['+/tennis/#', true],
    ['sport+', false],
    ['sport/+/player1', true],
    ['/+', true],
    ['+/+', true],
    // more
    ['sport/+', true],
    ['+/', true],
    ['/#', true],
    ['+/#', true],
    ['+/+/+', true],
    ['/', true],
    ['a//b', true],
    ['//', true],
    ['$SYS/#', true],
    ['$SYS/monitor/+', true],
    ['', false], // at least one character [MQTT-4.7.3-1]
    ['#/', false], // '#' must be last
    ['#/a', false],
    ['a/#/', false],
    ['##', false],
    ['a#', false],
    ['#a', false],
    ['a/b#', false],
    ['a/#b', false],
    ['++', false],
    ['+a', false],
    ['a+/b', false],
    ['a/+b', false],
    ['a/b+', false],
    ['+#', false],
    ['#+', false],
    ['a/+#', false],
    ['a\u0000/#', false],
    ['a/\ufffd', false],
    ['\u0000', false],
  ])('%j -> %s', (filter, expected) => {
    expect(isValidTopicFilter(filter)).toBe(expected);
  });

  it('applies the 65535-byte limit in UTF-8 bytes', () => {
    expect(isValidTopicFilter('a'.repeat(65533) + '/#')).toBe(true);
    expect(isValidTopicFilter('a'.repeat(65534) + '/#')).toBe(false);
    expect(isValidTopicFilter('\u00e9'.repeat(32766) + '/#')).toBe(true); // 65532 + 2 bytes
    expect(isValidTopicFilter('\u00e9'.repeat(32767) + '/#')).toBe(false); // 65534 + 2 bytes
  });
});

describe('hasWildcard / isSharedFilter', () => {
  it.each<[string, boolean]>([
    ['a/b', false],
    ['a/+', true],
    ['a/#', true],
    ['#', true],
    ['$share/g/a', false],
  ])('hasWildcard(%j) -> %s', (f, expected) => {
    expect(hasWildcard(f)).toBe(expected);
  });

  it.each<[string, boolean]>([
    ['$share/g/a', true],
    ['$share/', true],
    ['$share', false],
    ['$SHARE/g/a', false], // case sensitive
    ['a/$share/g/a', false],
  ])('isSharedFilter(%j) -> %s', (f, expected) => {
    expect(isSharedFilter(f)).toBe(expected);
  });
});

describe('parseSharedFilter', () => {
  it.each<[string, { group: string; filter: string }]>([
    ['$share/g/a/#', { group: 'g', filter: 'a/#' }],
    ['$share/consumer1/sport/tennis/+', { group: 'consumer1', filter: 'sport/tennis/+' }],
    ['$share/consumer1/#', { group: 'consumer1', filter: '#' }],
    ['$share/g/+', { group: 'g', filter: '+' }],
    ['$share/g//a', { group: 'g', filter: '/a' }], // inner filter begins with an empty level
    ['$share/g/$SYS/#', { group: 'g', filter: '$SYS/#' }],
    ['$share/$g/a', { group: '$g', filter: 'a' }],
    ['$share/g\u00e9/a', { group: 'g\u00e9', filter: 'a' }],
  ])('%j -> %j', (input, expected) => {
    expect(parseSharedFilter(input)).toEqual(expected);
  });

  it.each<[string, string]>([
    ['$share//a', 'empty share name [MQTT-4.8.2-1]'],
    ['$share/g+/a', "share name with '+' [MQTT-4.8.2-2]"],
    ['$share/+/a', "share name '+'"],
    ['$share/g#/a', "share name with '#'"],
    ['$share/#/a', "share name '#'"],
    ['$share/g', 'no filter after the share name [MQTT-4.8.2-2]'],
    ['$share/', 'nothing after the prefix'],
    ['$share/g/', 'empty inner filter'],
    ['$share/g/a/#/b', "inner filter with '#' not last"],
    ['$share/g/sport+', "inner filter with '+' not alone in its level"],
    ['$share/g/a\u0000', 'inner filter with NUL'],
    ['$share/g/a\ufffd', 'inner filter with U+FFFD'],
  ])('%j is invalid: %s', (input) => {
    expect(parseSharedFilter(input)).toBe('invalid');
  });

  // The share name is part of the same UTF-8 string as the filter, so NUL and
  // ill-formed data in it are just as malformed [MQTT-1.5.4-2]; parseSharedFilter
  // documents "returns 'invalid' when it is shared but malformed".
  it.each<[string, string]>([
    ['$share/g\u0000/a', 'NUL in the share name'],
    ['$share/\ufffd/a', 'U+FFFD in the share name'],
  ])('%j is invalid: %s', (input) => {
    expect(parseSharedFilter(input)).toBe('invalid');
  });

  it.each<string>(['a/b', '#', '$share', '$SHARE/g/a', 'share/g/a', '$sharegroup/a', '/$share/g/a', ''])(
    'returns null for the non-shared filter %j',
    (input) => {
      expect(parseSharedFilter(input)).toBeNull();
    },
  );
});

describe('topicMatches', () => {
  it.each<[string, string, boolean]>([
    // MQTT 4.7.1.2: multi-level wildcard
    ['sport/tennis/player1/#', 'sport/tennis/player1', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
    ['sport/tennis/player1/#', 'sport/tennis/player2', false],
    ['sport/tennis/player1/#', 'sport/tennis', false],
    ['sport/#', 'sport', true],
    ['sport/#', 'sport/', true],
    ['sport/#', 'sports', false],
    ['sport/#', 'sport/tennis/player1', true],
    ['#', 'sport/tennis/player1', true],
    ['#', '/', true],
    ['#', '/finance', true],
    ['#', 'a', true],
    // MQTT 4.7.1.3: single-level wildcard
    ['sport/tennis/+', 'sport/tennis/player1', true],
    ['sport/tennis/+', 'sport/tennis/player2', true],
    ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
    ['sport/tennis/+', 'sport/tennis', false],
    ['sport/tennis/+', 'sport/tennis/', true], // '+' matches an empty level
    ['sport/+', 'sport', false],
    ['sport/+', 'sport/', true],
    ['+/+', '/finance', true],
    ['/+', '/finance', true],
    ['+', '/finance', false],
    ['+', '/', false],
    ['+/+', '/', true],
    ['+', 'finance', true],
    ['+/tennis/#', 'sport/tennis/player1', true],
    ['+/tennis/#', 'sport/tennis', true],
    ['+/tennis/#', 'sport/golf', false],
    ['sport/+/player1', 'sport/tennis/player1', true],
    ['sport/+/player1', 'sport//player1', true],
    ['sport/+/player1', 'sport/tennis/player2', false],
    ['+/#', '/', true],
    ['+/#', 'a', true], // '+' takes 'a', '#' matches the parent
    ['/#', '/', true],
    ['/#', 'a', false],
    // MQTT 4.7.2: topics beginning with '$'
    ['#', '$SYS/x', false],
    ['#', '$SYS', false],
    ['+', '$SYS', false],
    ['+/#', '$SYS/x', false],
    ['+/monitor/Clients', '$SYS/monitor/Clients', false],
    ['$SYS/#', '$SYS/monitor/Clients', true],
    ['$SYS/#', '$SYS', true],
    ['$SYS/#', '$SYS/', true],
    ['$SYS/monitor/+', '$SYS/monitor/Clients', true],
    ['$SYS/+/Clients', '$SYS/monitor/Clients', true],
    ['$SYS/+', '$SYS', false],
    ['#', 'a/$SYS', true], // only the first character of the topic matters
    ['a/+', 'a/$x', true],
    ['+/b', 'a$/b', true],
    // exact match, case sensitivity, empty levels [MQTT-4.7.3-4]
    ['ACCOUNTS', 'Accounts', false],
    ['Accounts', 'Accounts', true],
    ['Accounts payable', 'Accounts payable', true],
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/', false],
    ['a/b/', 'a/b', false],
    ['/a', 'a', false],
    ['a', '/a', false],
    ['a//b', 'a//b', true],
    ['a//b', 'a/b', false],
    ['a/+/b', 'a//b', true],
    ['a/+/b', 'a/b', false],
    ['/', '/', true],
    ['a/#', 'a', true],
    ['a/#', 'ab', false],
    ['a/#', 'b/a', false],
    ['a/b/#', 'a', false],
    ['a/+/#', 'a', false],
    ['a/+/#', 'a/b', true],
  ])('%j vs topic %j -> %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});
