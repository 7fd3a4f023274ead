import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isValidTopicFilter, isValidTopicName, topicMatches } from '@fleetmq/protocol';

// ---- An independent reference: filter -> regular expression. ----

function escapeRegExp(s: string): string {
  // the syntax characters of ECMAScript regular expressions, and '/'; valid escapes in 'u' mode
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

/** Builds a regular expression for a *valid* topic filter, from the spec's prose. */
function filterToRegExp(filter: string): RegExp {
  const levels = filter.split('/');
  const multi = levels[levels.length - 1] === '#';
  const fixed = multi ? levels.slice(0, -1) : levels;
  const body = fixed.map((l) => (l === '+' ? '[^/]*' : escapeRegExp(l))).join('/');
  let source: string;
  if (!multi) source = body;
  else if (fixed.length === 0) source = '[\\s\\S]*'; // '#' alone: everything
  else source = `${body}(?:/[\\s\\S]*)?`; // the parent level itself, or anything below it
  return new RegExp(`^${source}$`, 'u');
}

function referenceMatches(filter: string, topic: string): boolean {
  // [MQTT-4.7.2-1]: a filter starting with a wildcard does not match a topic starting with '$'
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  return filterToRegExp(filter).test(topic);
}

/** Reference validity, per level: plain text, or exactly '+', or exactly '#' as the last level. */
function referenceValidFilter(filter: string): boolean {
  if (filter.length === 0) return false;
  const levels = filter.split('/');
  return levels.every((l, i) => {
    if (l === '+') return true;
    if (l === '#') return i === levels.length - 1;
    return !l.includes('+') && !l.includes('#');
  });
}

// ---- Generators over a small alphabet so that collisions (matches) are frequent. ----

// Plain levels, including the empty level and characters that are special in regular
// expressions, so a careless reference or implementation would be caught.
const plainLevels = ['a', 'b', 'ab', '', 'a.b', 'a*', '(x)', '\\', ' ', '\u00e9', '\u{1F600}', 'x$', '$'];
const firstOnlyLevels = ['$SYS', '$a', '$'];

const plainLevel = fc.constantFrom(...plainLevels);
const firstLevel = fc.oneof(
  { weight: 3, arbitrary: plainLevel },
  { weight: 1, arbitrary: fc.constantFrom(...firstOnlyLevels) },
);

/** A valid topic name: one or more levels, none with a wildcard, not empty. */
const topicArb = fc
  .tuple(firstLevel, fc.array(plainLevel, { maxLength: 4 }))
  .map(([first, rest]) => [first, ...rest].join('/'))
  .filter((t) => t.length > 0);

/** A valid topic filter: '+' anywhere as a whole level, '#' only as the last level. */
const filterLevel = fc.oneof(
  { weight: 3, arbitrary: plainLevel },
  { weight: 2, arbitrary: fc.constant('+') },
);
const validFilterArb = fc
  .tuple(
    fc.oneof({ weight: 3, arbitrary: filterLevel }, { weight: 1, arbitrary: fc.constantFrom(...firstOnlyLevels) }),
    fc.array(filterLevel, { maxLength: 4 }),
    fc.boolean(),
    fc.boolean(),
  )
  .map(([first, rest, hash, hashAlone]) => {
    if (hash && hashAlone) return '#';
    const levels = [first, ...rest];
    if (hash) levels.push('#');
    return levels.join('/');
  })
  .filter((f) => f.length > 0);

/** Any string made of levels that may misuse wildcards (for validity checks). */
const anyFilterArb = fc
  .array(fc.constantFrom('a', '', '+', '#', 'a+', '#a', '++', '$SYS', 'b#', '+b'), { minLength: 1, maxLength: 5 })
  .map((levels) => levels.join('/'));

describe('topic matching properties', () => {
  it('the generators produce valid names and filters', () => {
    fc.assert(
      fc.property(topicArb, validFilterArb, (topic, filter) => {
        expect(isValidTopicName(topic)).toBe(true);
        expect(isValidTopicFilter(filter)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('topicMatches agrees with a regular-expression reference matcher', () => {
    fc.assert(
      fc.property(validFilterArb, topicArb, (filter, topic) => {
        expect(topicMatches(filter, topic)).toBe(referenceMatches(filter, topic));
      }),
      { numRuns: 500 },
    );
  });

  it('topicMatches agrees with the reference when the filter is derived from the topic', () => {
    // Random filters rarely match random topics; deriving one from the other keeps
    // both outcomes frequent. Each level may be kept, replaced by '+', or changed.
    const derived = topicArb.chain((topic) => {
      const levels = topic.split('/');
      return fc
        .tuple(
          fc.array(fc.constantFrom<'keep' | 'plus' | 'other'>('keep', 'keep', 'plus', 'other'), {
            minLength: levels.length,
            maxLength: levels.length,
          }),
          fc.integer({ min: 0, max: levels.length + 1 }),
          fc.integer({ min: 0, max: levels.length + 1 }),
          plainLevel,
        )
        .map(([ops, cut, extra, other]) => {
          let fl = levels.map((l, i) => (ops[i] === 'plus' ? '+' : ops[i] === 'other' ? other : l));
          if (extra > levels.length) fl = [...fl, other]; // one level too many
          if (cut < fl.length) fl = [...fl.slice(0, cut), '#'];
          return { topic, filter: fl.join('/') };
        })
        .filter(({ filter }) => filter.length > 0); // a single level changed to '' is no filter
    });
    fc.assert(
      fc.property(derived, ({ topic, filter }) => {
        expect(isValidTopicFilter(filter)).toBe(true);
        expect(topicMatches(filter, topic)).toBe(referenceMatches(filter, topic));
      }),
      { numRuns: 500 },
    );
  });

  it("every filter made by replacing levels with '+' or truncating with '#' is valid and matches", () => {
    const arb = topicArb.chain((topic) => {
      const n = topic.split('/').length;
      return fc.record({
        topic: fc.constant(topic),
        plus: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
        // cut in 0..n: keep the first `cut` levels then '#'; n+1: no '#'
        cut: fc.integer({ min: 0, max: n + 1 }),
      });
    });
    fc.assert(
      fc.property(arb, ({ topic, plus, cut }) => {
        const levels = topic.split('/');
        let fl = levels.map((l, i) => (plus[i] ? '+' : l));
        if (cut <= levels.length) fl = [...fl.slice(0, cut), '#'];
        const filter = fl.join('/');
        expect(isValidTopicFilter(filter)).toBe(true);
        const leadingWildcard = fl[0] === '+' || fl[0] === '#';
        const expected = !(topic.startsWith('$') && leadingWildcard);
        expect(topicMatches(filter, topic)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('a topic name always matches itself as a filter', () => {
    fc.assert(
      fc.property(topicArb, (topic) => {
        expect(isValidTopicFilter(topic)).toBe(true);
        expect(topicMatches(topic, topic)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('isValidTopicFilter agrees with a per-level reference', () => {
    fc.assert(
      fc.property(anyFilterArb, (filter) => {
        expect(isValidTopicFilter(filter)).toBe(referenceValidFilter(filter));
      }),
      { numRuns: 500 },
    );
  });

  it('isValidTopicName rejects exactly the empty string and the strings with a wildcard character', () => {
    fc.assert(
      fc.property(anyFilterArb, (s) => {
        expect(isValidTopicName(s)).toBe(s.length > 0 && !s.includes('+') && !s.includes('#'));
      }),
      { numRuns: 300 },
    );
  });

  it('the reference matcher itself agrees with the specification examples', () => {
    // Guards the reference: if it were wrong, the agreement properties would prove nothing.
    const cases: Array<[string, string, boolean]> = [
      ['sport/tennis/player1/#', 'sport/tennis/player1', true],
      ['sport/#', 'sport', true],
      ['sport/+', 'sport', false],
      ['+/+', '/finance', true],
      ['/+', '/finance', true],
      ['+', '/finance', false],
      ['#', '$SYS/x', false],
      ['$SYS/#', '$SYS', true],
      ['+/monitor/Clients', '$SYS/monitor/Clients', false],
      ['a.b', 'axb', false],
      ['a*', 'aaa', false],
      ['(x)/+', '(x)/y', true],
    ];
    for (const [filter, topic, expected] of cases) expect(referenceMatches(filter, topic)).toBe(expected);
  });
});
