import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { topicMatches } from '@fleetmq/protocol';
// Imported from the source file: the package index may be changing under other work.
import { TopicTrie } from '../src/topic-trie.js';

function matched<K, V>(trie: TopicTrie<K, V>, topic: string): string[] {
  const out: string[] = [];
  trie.match(topic, (filter) => out.push(filter));
  return out;
}

function allFilters<K, V>(trie: TopicTrie<K, V>): Map<string, Map<K, V>> {
  const out = new Map<string, Map<K, V>>();
  trie.forEach((filter, entries) => {
    expect(out.has(filter)).toBe(false); // each filter once
    out.set(filter, new Map(entries));
  });
  return out;
}

/** Node count below the root, through the private field; for checking that remove prunes. */
function nodeCount(trie: TopicTrie<unknown, unknown>): number {
  interface N {
    children: Map<string, N>;
  }
  const root = (trie as unknown as { root: N }).root;
  let n = 0;
  const stack: N[] = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    for (const c of node.children.values()) {
      n++;
      stack.push(c);
    }
  }
  return n;
}

describe('TopicTrie: add / get / entriesOf / size', () => {
  it('starts empty', () => {
    const trie = new TopicTrie<string, number>();
    expect(trie.size).toBe(0);
    expect(matched(trie, 'a')).toEqual([]);
    expect(allFilters(trie).size).toBe(0);
    expect(trie.entriesOf('a')).toBeUndefined();
    expect(trie.get('a', 'k')).toBeUndefined();
  });

  it('add returns true only when the filter is new', () => {
    const trie = new TopicTrie<string, number>();
    expect(trie.add('a/b', 'c1', 1)).toBe(true);
    expect(trie.add('a/b', 'c2', 2)).toBe(false);
    expect(trie.add('a/b', 'c1', 3)).toBe(false); // replace
    expect(trie.add('a', 'c1', 4)).toBe(true); // prefix of an existing filter
    expect(trie.add('a/b/c', 'c1', 5)).toBe(true); // extension of an existing filter
    expect(trie.add('a/+', 'c1', 6)).toBe(true);
    expect(trie.add('a/#', 'c1', 7)).toBe(true);
    expect(trie.size).toBe(5);
  });

  it('add replaces the value for an existing key without changing size', () => {
    const trie = new TopicTrie<string, number>();
    trie.add('x', 'k', 1);
    trie.add('x', 'k', 2);
    expect(trie.size).toBe(1);
    expect(trie.get('x', 'k')).toBe(2);
    expect([...trie.entriesOf('x')!]).toEqual([['k', 2]]);
  });

  it('entriesOf gives the exact filter only, not prefixes or matches', () => {
    const trie = new TopicTrie<string, number>();
    trie.add('a/b', 'c1', 1);
    trie.add('a/b', 'c2', 2);
    trie.add('a/+', 'c3', 3);
    expect(new Map(trie.entriesOf('a/b'))).toEqual(
      new Map([
        ['c1', 1],
        ['c2', 2],
      ]),
    );
    expect(new Map(trie.entriesOf('a/+'))).toEqual(new Map([['c3', 3]]));
    expect(trie.entriesOf('a')).toBeUndefined(); // an inner node, no entries
    expect(trie.entriesOf('a/b/c')).toBeUndefined();
    expect(trie.entriesOf('a/c')).toBeUndefined();
    expect(trie.get('a/b', 'c3')).toBeUndefined();
    expect(trie.get('a/+', 'c3')).toBe(3);
  });

  it('distinguishes empty levels', () => {
    const trie = new TopicTrie<string, string>();
    expect(trie.add('/', 'k', 'slash')).toBe(true);
    expect(trie.add('a', 'k', 'a')).toBe(true);
    expect(trie.add('/a', 'k', '/a')).toBe(true);
    expect(trie.add('a/', 'k', 'a/')).toBe(true);
    expect(trie.add('a//b', 'k', 'a//b')).toBe(true);
    expect(trie.size).toBe(5);
    expect(matched(trie, '/')).toEqual(['/']);
    expect(matched(trie, 'a')).toEqual(['a']);
    expect(matched(trie, '/a')).toEqual(['/a']);
    expect(matched(trie, 'a/')).toEqual(['a/']);
    expect(matched(trie, 'a//b')).toEqual(['a//b']);
    expect(matched(trie, 'a/b')).toEqual([]);
  });
});

describe('TopicTrie: remove', () => {
  it('returns true only when the last entry of the filter goes', () => {
    const trie = new TopicTrie<string, number>();
    trie.add('a/b', 'c1', 1);
    trie.add('a/b', 'c2', 2);
    expect(trie.remove('a/b', 'c1')).toBe(false); // c2 left
    expect(trie.size).toBe(1);
    expect(trie.get('a/b', 'c1')).toBeUndefined();
    expect(trie.get('a/b', 'c2')).toBe(2);
    expect(trie.remove('a/b', 'c2')).toBe(true);
    expect(trie.size).toBe(0);
    expect(trie.entriesOf('a/b')).toBeUndefined();
    expect(matched(trie, 'a/b')).toEqual([]);
  });

  it('returns false for an unknown filter, an inner node or an unknown key, and changes nothing', () => {
    const trie = new TopicTrie<string, number>();
    trie.add('a/b', 'c1', 1);
    expect(trie.remove('x', 'c1')).toBe(false);
    expect(trie.remove('a/b/c', 'c1')).toBe(false);
    expect(trie.remove('a', 'c1')).toBe(false); // inner node without entries
    expect(trie.remove('a/b', 'nobody')).toBe(false);
    expect(trie.size).toBe(1);
    expect(trie.get('a/b', 'c1')).toBe(1);
  });

  it('removing twice returns false the second time', () => {
    const trie = new TopicTrie<string, number>();
    trie.add('a/#', 'c1', 1);
    expect(trie.remove('a/#', 'c1')).toBe(true);
    expect(trie.remove('a/#', 'c1')).toBe(false);
    expect(trie.size).toBe(0);
  });

  it('prunes empty nodes back to the root', () => {
    const trie = new TopicTrie<string, number>();
    trie.add('a/b/c/d', 'k', 1);
    expect(nodeCount(trie)).toBe(4);
    trie.remove('a/b/c/d', 'k');
    expect(nodeCount(trie)).toBe(0);
  });

  it('keeps nodes still used by another filter, or holding entries', () => {
    const trie = new TopicTrie<string, number>();
    trie.add('a/b/c/d', 'k', 1);
    trie.add('a/b', 'k', 2);
    trie.add('a/x', 'k', 3);
    expect(nodeCount(trie)).toBe(5); // a, a/b, a/b/c, a/b/c/d, a/x
    expect(trie.remove('a/b/c/d', 'k')).toBe(true);
    expect(nodeCount(trie)).toBe(3); // c and d pruned, a/b holds an entry
    expect(trie.get('a/b', 'k')).toBe(2);
    expect(trie.remove('a/b', 'k')).toBe(true);
    expect(nodeCount(trie)).toBe(2); // a kept for a/x
    expect(trie.remove('a/x', 'k')).toBe(true);
    expect(nodeCount(trie)).toBe(0);
    expect(trie.size).toBe(0);
  });

  it('removing a parent filter keeps its children', () => {
    const trie = new TopicTrie<string, number>();
    trie.add('a', 'k', 1);
    trie.add('a/b', 'k', 2);
    expect(trie.remove('a', 'k')).toBe(true);
    expect(trie.get('a/b', 'k')).toBe(2);
    expect(matched(trie, 'a/b')).toEqual(['a/b']);
    expect(matched(trie, 'a')).toEqual([]);
    expect(nodeCount(trie)).toBe(2);
  });

  it('a filter can be added again after removal, and is new again', () => {
    const trie = new TopicTrie<string, number>();
    trie.add('a/+', 'k', 1);
    trie.remove('a/+', 'k');
    expect(trie.add('a/+', 'k', 2)).toBe(true);
    expect(trie.size).toBe(1);
    expect(matched(trie, 'a/z')).toEqual(['a/+']);
  });
});

describe('TopicTrie: forEach', () => {
  it('visits every filter with entries, once, with its entries', () => {
    const trie = new TopicTrie<string, number>();
    trie.add('a/b', 'c1', 1);
    trie.add('a/b', 'c2', 2);
    trie.add('a', 'c1', 3);
    trie.add('#', 'c3', 4);
    trie.add('+/b/#', 'c4', 5);
    trie.add('x/y/z', 'c5', 6);
    trie.remove('x/y/z', 'c5');
    const all = allFilters(trie);
    expect(all).toEqual(
      new Map([
        [
          'a/b',
          new Map([
            ['c1', 1],
            ['c2', 2],
          ]),
        ],
        ['a', new Map([['c1', 3]])],
        ['#', new Map([['c3', 4]])],
        ['+/b/#', new Map([['c4', 5]])],
      ]),
    );
    expect(all.size).toBe(trie.size);
  });
});

describe('TopicTrie: match', () => {
  const filters = [
    'sport/tennis/player1/#',
    'sport/#',
    'sport/+',
    'sport/tennis/+',
    '+/+',
    '/+',
    '+',
    '#',
    '$SYS/#',
    '$SYS/monitor/+',
    '+/monitor/Clients',
    'sport/tennis/player1',
  ];
  const trie = new TopicTrie<number, string>();
  filters.forEach((f, i) => trie.add(f, i, f));

  it.each<[string, string[]]>([
    ['sport/tennis/player1', ['sport/tennis/player1/#', 'sport/#', 'sport/tennis/+', '#', 'sport/tennis/player1']],
    ['sport/tennis/player1/ranking', ['sport/tennis/player1/#', 'sport/#', '#']],
    ['sport', ['sport/#', '+', '#']],
    ['sport/', ['sport/#', 'sport/+', '+/+', '#']],
    ['/finance', ['+/+', '/+', '#']],
    ['finance', ['+', '#']],
    ['$SYS', ['$SYS/#']],
    ['$SYS/x', ['$SYS/#']],
    ['$SYS/monitor/Clients', ['$SYS/#', '$SYS/monitor/+']],
    ['a/monitor/Clients', ['+/monitor/Clients', '#']],
  ])('%j matches exactly %j', (topic, expected) => {
    const got = matched(trie, topic);
    expect(got.length).toBe(new Set(got).size); // each once
    expect(new Set(got)).toEqual(new Set(expected));
    expect(new Set(got)).toEqual(new Set(filters.filter((f) => topicMatches(f, topic))));
  });

  it('hands each visit the entries of that filter', () => {
    const t = new TopicTrie<string, number>();
    t.add('a/+', 'c1', 1);
    t.add('a/+', 'c2', 2);
    t.add('a/#', 'c3', 3);
    const seen = new Map<string, Map<string, number>>();
    t.match('a/b', (filter, entries) => seen.set(filter, new Map(entries)));
    expect(seen).toEqual(
      new Map([
        [
          'a/+',
          new Map([
            ['c1', 1],
            ['c2', 2],
          ]),
        ],
        ['a/#', new Map([['c3', 3]])],
      ]),
    );
  });
});

// ---- Property: the trie agrees with topicMatches. ----

const levelArb = fc.constantFrom('a', 'b', 'c', '', '$x');
const topicArb = fc
  .tuple(fc.oneof(levelArb, fc.constantFrom('$SYS', '$')), fc.array(levelArb, { maxLength: 4 }))
  .map(([first, rest]) => [first, ...rest].join('/'))
  .filter((t) => t.length > 0);
const filterArb = fc
  .tuple(
    fc.oneof(levelArb, fc.constant('+'), fc.constant('$SYS')),
    fc.array(fc.oneof(levelArb, fc.constant('+')), { maxLength: 4 }),
    fc.constantFrom('none', 'hash', 'alone'),
  )
  .map(([first, rest, hash]) => {
    if (hash === 'alone') return '#';
    const levels: string[] = [first, ...rest];
    if (hash === 'hash') levels.push('#');
    return levels.join('/');
  })
  .filter((f) => f.length > 0);

describe('TopicTrie: deep topics', () => {
  it('matches a topic of 32,767 levels (the most 65,535 bytes hold) without running out of stack', () => {
    const trie = new TopicTrie<string, number>();
    const topic = '/'.repeat(32_766); // 32,767 empty levels
    const deep = '+/'.repeat(32_766) + '+';
    for (const filter of [topic, deep, '#', '/#', '+/+/#', '+']) trie.add(filter, 'c', 1);
    expect(new Set(matched(trie, topic))).toEqual(new Set([topic, deep, '#', '/#', '+/+/#']));
    expect(new Set(matched(trie, topic + 'x'))).toEqual(new Set([deep, '#', '/#', '+/+/#']));
  });
});

describe('TopicTrie properties', () => {
  it('match visits exactly the filters for which topicMatches is true, each once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(filterArb, fc.integer({ min: 0, max: 3 })), { maxLength: 30 }),
        fc.array(topicArb, { minLength: 1, maxLength: 10 }),
        (subs, topics) => {
          const trie = new TopicTrie<number, true>();
          for (const [filter, key] of subs) trie.add(filter, key, true);
          const distinct = [...new Set(subs.map(([f]) => f))];
          expect(trie.size).toBe(distinct.length);
          for (const topic of topics) {
            const got = matched(trie, topic);
            expect(got.length).toBe(new Set(got).size);
            expect(new Set(got)).toEqual(new Set(distinct.filter((f) => topicMatches(f, topic))));
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('after random adds and removes, size, forEach and match agree with a model', () => {
    const op = fc.tuple(fc.boolean(), filterArb, fc.integer({ min: 0, max: 2 }));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.array(topicArb, { minLength: 1, maxLength: 6 }), (ops, topics) => {
        const trie = new TopicTrie<number, number>();
        const model = new Map<string, Map<number, number>>();
        ops.forEach(([isAdd, filter, key], step) => {
          if (isAdd) {
            const isNew = !model.has(filter);
            expect(trie.add(filter, key, step)).toBe(isNew);
            if (!model.has(filter)) model.set(filter, new Map());
            model.get(filter)!.set(key, step);
          } else {
            const entries = model.get(filter);
            const gone = entries !== undefined && entries.has(key) && entries.size === 1;
            expect(trie.remove(filter, key)).toBe(gone);
            entries?.delete(key);
            if (entries !== undefined && entries.size === 0) model.delete(filter);
          }
        });
        expect(trie.size).toBe(model.size);
        expect(allFilters(trie)).toEqual(model);
        for (const [filter, entries] of model) expect(new Map(trie.entriesOf(filter))).toEqual(entries);
        for (const topic of topics) {
          const got = matched(trie, topic);
          expect(got.length).toBe(new Set(got).size);
          expect(new Set(got)).toEqual(new Set([...model.keys()].filter((f) => topicMatches(f, topic))));
        }
        // removing everything prunes the trie completely
        for (const [filter, entries] of model) for (const key of [...entries.keys()]) trie.remove(filter, key);
        expect(trie.size).toBe(0);
        expect(nodeCount(trie)).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});
