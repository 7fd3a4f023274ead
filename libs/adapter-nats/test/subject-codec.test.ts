import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isValidTopicFilter, isValidTopicName, topicMatches } from '@fleetmq/protocol';
import {
  EMPTY_LEVEL_TOKEN,
  SubjectCodec,
  SubjectCodecError,
  escapeLevel,
  leadingWildcard,
  subjectFits,
  unescapeToken,
} from '../src/index.js';
import { isValidNatsSubject, natsSubjectMatches } from './support/nats-subject-matcher.js';

const codec = new SubjectCodec();

describe('SubjectCodec: topics', () => {
  it.each([
    ['fleet/d1/telemetry', 'mqtt.fleet.d1.telemetry'],
    ['a', 'mqtt.a'],
    ['$SYS/broker/uptime', 'mqtt.$SYS.broker.uptime'],
    ['dot.ted/sp ace', 'mqtt.dot%2Eted.sp%20ace'],
    ['*/>', 'mqtt.%2A.%3E'],
    ['100%/x', 'mqtt.100%25.x'],
    ['%2E', 'mqtt.%252E'],
    ['a//b', 'mqtt.a.%.b'],
    ['/', 'mqtt.%.%'],
    ['/a/', 'mqtt.%.a.%'],
    ['tab\there/nl\nthere', 'mqtt.tab%09here.nl%0Athere'],
    ['del\x7f/ctl\x01', 'mqtt.del%7F.ctl%01'],
    ['ü/日本/\u{1F600}', 'mqtt.ü.日本.\u{1F600}'],
    ['a\\b/~/$', 'mqtt.a\\b.~.$'],
  ])('encodes %j as %j and back', (topic, subject) => {
    expect(codec.topicToSubject(topic)).toBe(subject);
    expect(codec.subjectToTopic(subject)).toBe(topic);
    expect(isValidNatsSubject(subject, true)).toBe(true);
  });

  it('leaves ordinary levels untouched (no copy of a level that needs no escape)', () => {
    expect(escapeLevel('telemetry')).toBe('telemetry');
    expect(escapeLevel('')).toBe(EMPTY_LEVEL_TOKEN);
    expect(escapeLevel('a.b.c')).toBe('a%2Eb%2Ec');
  });

  it('uses another prefix, made of one or more tokens', () => {
    const c = new SubjectCodec('fleet.mqtt');
    expect(c.topicToSubject('a/b')).toBe('fleet.mqtt.a.b');
    expect(c.subjectToTopic('fleet.mqtt.a.b')).toBe('a/b');
    expect(() => c.subjectToTopic('mqtt.a.b')).toThrow(SubjectCodecError);
  });

  it.each(['', '.', 'mqtt.', '.mqtt', 'a..b', 'a.*', '>', 'sp ace', 'tab\t'])('refuses the prefix %j', (prefix) => {
    expect(() => new SubjectCodec(prefix)).toThrow(SubjectCodecError);
  });

  it.each([
    ['outside the prefix', 'other.a'],
    ['the bare prefix', 'mqtt'],
    ['an empty token', 'mqtt.a..b'],
    ['a trailing dot', 'mqtt.a.'],
    ['a wildcard token', 'mqtt.a.*'],
    ['a full wildcard', 'mqtt.>'],
    ['a lone percent inside a token', 'mqtt.a%'],
    ['a short escape', 'mqtt.a%2'],
    ['lower-case hex', 'mqtt.a%2e'],
    ['an escape of a byte that is never escaped', 'mqtt.%41'],
    ['non-hex digits', 'mqtt.%G0'],
    ['a raw space', 'mqtt.a b'],
    ['a raw star inside a token', 'mqtt.a*b'],
    ['a raw plus', 'mqtt.a+'],
  ])('refuses to decode a subject with %s', (_what, subject) => {
    expect(() => codec.subjectToTopic(subject)).toThrow(SubjectCodecError);
  });

  it('round-trips a topic of 65535 UTF-8 bytes, escapes included', () => {
    const unit = 'ab.c d/%*>/日/'; // 19 bytes
    const topic = unit.repeat(Math.floor(65535 / Buffer.byteLength(unit))).slice(0, -1);
    const padded = topic + 'x'.repeat(65535 - Buffer.byteLength(topic));
    expect(Buffer.byteLength(padded)).toBe(65535);
    expect(isValidTopicName(padded)).toBe(true);
    const subject = codec.topicToSubject(padded);
    expect(isValidNatsSubject(subject, true)).toBe(true);
    expect(codec.subjectToTopic(subject)).toBe(padded);
    expect(subjectFits(subject, 4096)).toBe(false);
    expect(subjectFits(subject, 1 << 20)).toBe(true);
  });

  it('measures subjects in UTF-8 bytes', () => {
    expect(subjectFits('mqtt.a', 6)).toBe(true);
    expect(subjectFits('mqtt.a', 5)).toBe(false);
    expect(subjectFits('mqtt.日本', 11)).toBe(true);
    expect(subjectFits('mqtt.日本', 10)).toBe(false);
  });
});

describe('SubjectCodec: filters', () => {
  it.each([
    ['fleet/+/telemetry', 'mqtt.fleet.*.telemetry', ['mqtt.fleet.*.telemetry']],
    ['fleet/#', 'mqtt.fleet.>', ['mqtt.fleet', 'mqtt.fleet.>']],
    ['#', 'mqtt.>', ['mqtt.>']],
    ['+', 'mqtt.*', ['mqtt.*']],
    ['+/#', 'mqtt.*.>', ['mqtt.*', 'mqtt.*.>']],
    ['/#', 'mqtt.%.>', ['mqtt.%', 'mqtt.%.>']],
    ['$SYS/#', 'mqtt.$SYS.>', ['mqtt.$SYS', 'mqtt.$SYS.>']],
    ['*/>/+', 'mqtt.%2A.%3E.*', ['mqtt.%2A.%3E.*']],
    ['a//+', 'mqtt.a.%.*', ['mqtt.a.%.*']],
  ])('encodes %j as %j, subscribing to %j', (filter, subject, interest) => {
    expect(codec.filterToSubject(filter)).toBe(subject);
    expect(codec.subjectToFilter(subject)).toBe(filter);
    expect(codec.interestSubjects(filter)).toEqual(interest);
    for (const s of interest) expect(isValidNatsSubject(s, false)).toBe(true);
  });

  it("refuses a '>' that is not the last token", () => {
    expect(() => codec.subjectToFilter('mqtt.>.a')).toThrow(SubjectCodecError);
  });

  it('knows which filters start with a wildcard', () => {
    expect(['+', '#', '+/a', '#'].map(leadingWildcard)).toEqual([true, true, true, true]);
    expect(['a/+', '$SYS/#', '/+', 'a'].map(leadingWildcard)).toEqual([false, false, false, false]);
  });
});

// ---- Property tests ----

/** Characters that stress the codec: separators, wildcards, the escape, whitespace, controls, non-ASCII. */
const nastyChar = fc.constantFrom(
  'a', 'b', 'Z', '0', '2', 'E', 'F', '.', ' ', '*', '>', '%', '$', '/', '\\', '~', '-', '_',
  '\t', '\n', '\r', '\x01', '\x1f', '\x7f', '\u00a0', 'é', '日', '\u{1F600}', '\u2028',
);
const nastyTopic = fc.string({ unit: nastyChar, minLength: 1, maxLength: 24 }).filter(isValidTopicName);
/** Any code points at all (valid UTF-8 only, as MQTT requires), to leave no gap in the alphabet. */
const anyTopic = fc.string({ unit: 'binary', minLength: 1, maxLength: 16 }).filter(isValidTopicName);
const topicArb = fc.oneof(nastyTopic, anyTopic);

/** A small alphabet of levels, so that random filters and topics often match. */
const level = fc.constantFrom('a', 'b', '', '.', '*', '>', '%', '%2E', 'a b', '$SYS', '$', '日', '\t');
const topicFromLevels = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join('/')).filter(isValidTopicName);
const filterFromLevels = fc
  .tuple(fc.array(fc.oneof(level, fc.constant('+')), { minLength: 0, maxLength: 5 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .filter(isValidTopicFilter);

/** A filter derived from a topic: levels kept, replaced by '+', changed, cut by '#'. */
const topicAndDerivedFilter = topicFromLevels.chain((topic) => {
  const levels = topic.split('/');
  return fc
    .tuple(
      fc.array(fc.constantFrom('keep', 'keep', 'plus', 'other'), { minLength: levels.length, maxLength: levels.length }),
      fc.integer({ min: 0, max: levels.length + 1 }),
      level,
    )
    .map(([ops, cut, other]) => {
      let fl = levels.map((l, i) => (ops[i] === 'plus' ? '+' : ops[i] === 'other' ? other : l));
      if (cut <= levels.length) fl = [...fl.slice(0, cut), '#'];
      return { topic, filter: fl.join('/') };
    })
    .filter(({ filter }) => isValidTopicFilter(filter));
});

/** What a node gets: a NATS match on one of its interest subjects, then the '$' re-check. */
function deliveredOverNats(filter: string, topic: string): { natsMatches: number; delivered: boolean } {
  const subject = codec.topicToSubject(topic);
  const natsMatches = codec.interestSubjects(filter).filter((s) => natsSubjectMatches(s, subject)).length;
  const recheckDrops = leadingWildcard(filter) && topic.startsWith('$');
  return { natsMatches, delivered: natsMatches > 0 && !recheckDrops };
}

describe('SubjectCodec properties', () => {
  it('the test matcher agrees with nats-server semantics on known cases', () => {
    // guards the emulation: if it were wrong, the agreement property would prove nothing
    const cases: Array<[string, string, boolean]> = [
      ['a.*', 'a.b', true],
      ['a.*', 'a', false],
      ['a.*', 'a.b.c', false],
      ['a.>', 'a', false],
      ['a.>', 'a.b', true],
      ['a.>', 'a.b.c', true],
      ['>', 'a', true],
      ['*.b', 'a.b', true],
      ['a.b', 'a.b', true],
      ['a.b', 'a.bb', false],
      ['a.b*', 'a.bc', false], // '*' inside a token is literal
    ];
    for (const [pattern, subject, expected] of cases) expect(natsSubjectMatches(pattern, subject)).toBe(expected);
  });

  it('round-trips every valid topic, through a valid literal NATS subject', () => {
    fc.assert(
      fc.property(topicArb, (topic) => {
        const subject = codec.topicToSubject(topic);
        expect(isValidNatsSubject(subject, true)).toBe(true);
        expect(subject.split('.').length).toBe(1 + topic.split('/').length);
        expect(codec.subjectToTopic(subject)).toBe(topic);
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips every valid filter, through valid NATS subjects', () => {
    const anyFilter = fc
      .tuple(fc.array(fc.oneof(fc.string({ unit: nastyChar, maxLength: 6 }), fc.constant('+')), { maxLength: 5 }), fc.boolean())
      .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
      .filter(isValidTopicFilter);
    fc.assert(
      fc.property(fc.oneof(anyFilter, filterFromLevels), (filter) => {
        const subject = codec.filterToSubject(filter);
        expect(codec.subjectToFilter(subject)).toBe(filter);
        for (const s of codec.interestSubjects(filter)) expect(isValidNatsSubject(s, false)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('decodes only what it encodes: any decodable string re-encodes to itself', () => {
    const subjectish = fc
      .string({ unit: fc.constantFrom('a', '.', '%', '2', 'E', 'e', '5', ' ', '*', '>', '日'), maxLength: 12 })
      .map((s) => 'mqtt.' + s);
    fc.assert(
      fc.property(subjectish, (subject) => {
        let topic: string;
        try {
          topic = codec.subjectToTopic(subject);
        } catch (err) {
          expect(err).toBeInstanceOf(SubjectCodecError);
          return;
        }
        expect(codec.topicToSubject(topic)).toBe(subject);
      }),
      { numRuns: 3000 },
    );
  });

  it('level escaping is reversible for any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 10 }), (s) => {
        expect(unescapeToken(escapeLevel(s))).toBe(s);
      }),
      { numRuns: 2000 },
    );
  });

  const agreement = (filter: string, topic: string): void => {
    const { natsMatches, delivered } = deliveredOverNats(filter, topic);
    expect(delivered).toBe(topicMatches(filter, topic));
    // the interest subjects of one filter never both match: one delivery per filter
    expect(natsMatches).toBeLessThanOrEqual(1);
    // the '$' rule is the only place NATS matching alone is wrong
    const natsAlone = natsMatches > 0;
    if (natsAlone !== topicMatches(filter, topic)) {
      expect(topic.startsWith('$') && leadingWildcard(filter)).toBe(true);
    }
  };

  it('NATS matching of encoded subjects, plus the local re-check, agrees with MQTT matching (random pairs)', () => {
    fc.assert(fc.property(filterFromLevels, topicFromLevels, agreement), { numRuns: 3000 });
  });

  it('NATS matching of encoded subjects, plus the local re-check, agrees with MQTT matching (derived pairs)', () => {
    let matched = 0;
    let dollarDrops = 0;
    fc.assert(
      fc.property(topicAndDerivedFilter, ({ topic, filter }) => {
        agreement(filter, topic);
        if (topicMatches(filter, topic)) matched++;
        if (topic.startsWith('$') && leadingWildcard(filter)) dollarDrops++;
      }),
      { numRuns: 3000 },
    );
    // the generator exercises both outcomes and the '$' rule, so the agreement is not vacuous
    expect(matched).toBeGreaterThan(300);
    expect(dollarDrops).toBeGreaterThan(10);
  });
});
