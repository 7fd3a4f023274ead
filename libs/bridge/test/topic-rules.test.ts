import { describe, expect, it } from 'vitest';
import {
  TopicRuleError,
  localSubscriptions,
  parseTopicRule,
  remoteSubscriptions,
  toLocalTopic,
  toRemoteTopic,
  type TopicRule,
} from '../src/index.js';

describe('parseTopicRule: the mosquitto.conf one-line form', () => {
  it('fills in Mosquitto defaults: direction out, QoS 0, no prefixes', () => {
    expect(parseTopicRule('sensors/#')).toEqual({ pattern: 'sensors/#', direction: 'out', qos: 0, localPrefix: '', remotePrefix: '' });
    expect(parseTopicRule('topic supla/# in')).toEqual({ pattern: 'supla/#', direction: 'in', qos: 0, localPrefix: '', remotePrefix: '' });
    expect(parseTopicRule('topic # both 2 local/topic/ remote/topic/')).toEqual({
      pattern: '#',
      direction: 'both',
      qos: 2,
      localPrefix: 'local/topic/',
      remotePrefix: 'remote/topic/',
    });
  });

  it('reads "" as empty, for the pattern and each prefix', () => {
    expect(parseTopicRule('topic clients/total in 0 test/mosquitto/org/ $SYS/broker/')).toMatchObject({ localPrefix: 'test/mosquitto/org/', remotePrefix: '$SYS/broker/' });
    expect(parseTopicRule('x/# out 1 "" cloud/')).toMatchObject({ localPrefix: '', remotePrefix: 'cloud/' });
    expect(parseTopicRule('"" in 0 local/state remote/state')).toMatchObject({ pattern: '', localPrefix: 'local/state', remotePrefix: 'remote/state' });
  });

  it('refuses what Mosquitto refuses, with the reason', () => {
    const bad: [string, RegExp][] = [
      ['', /needs a pattern/],
      ['x/# sideways', /direction "sideways"/],
      ['x/# in 3', /QoS "3"/],
      ['x/#/y in', /not a valid topic filter/],
      ['x/# in 0 lo+cal/ r/', /may not contain wildcards/],
      ['"" in 0 local ""', /needs both a local and a remote prefix/],
      ['"" in 0 "" remote', /needs both/],
      ['"" in 0 "" ""', /needs both/],
      ['a in 0 b c d', /too many words/],
    ];
    for (const [line, reason] of bad) expect(() => parseTopicRule(line), line).toThrow(reason);
    expect(() => parseTopicRule('x/# in 7')).toThrow(TopicRuleError);
  });
});

describe('topic mapping (the mosquitto.conf(5) table)', () => {
  const rules: TopicRule[] = [
    parseTopicRule('pattern/# out 0 L/ R/'),
    parseTopicRule('a/# in 1 L/ ""'),
    parseTopicRule('b/# both 2 "" R/'),
    parseTopicRule('"" out 1 local/one remote/one'),
    parseTopicRule('c/# both 1'),
  ];

  it('out: the local prefix comes off, the remote prefix goes on', () => {
    expect(toRemoteTopic(rules, 'L/pattern/x')).toBe('R/pattern/x');
    expect(toRemoteTopic(rules, 'b/y')).toBe('R/b/y');
    expect(toRemoteTopic(rules, 'local/one')).toBe('remote/one');
    expect(toRemoteTopic(rules, 'c/z')).toBe('c/z');
    // in-only rules and unmatched topics do not go out
    expect(toRemoteTopic(rules, 'L/a/x')).toBeUndefined();
    expect(toRemoteTopic(rules, 'pattern/x')).toBeUndefined();
  });

  it('in: the remote prefix comes off, the local prefix goes on', () => {
    expect(toLocalTopic(rules, 'a/x')).toBe('L/a/x');
    expect(toLocalTopic(rules, 'R/b/y')).toBe('b/y');
    expect(toLocalTopic(rules, 'c/z')).toBe('c/z');
    expect(toLocalTopic(rules, 'R/pattern/x')).toBeUndefined();
    expect(toLocalTopic(rules, 'remote/one')).toBeUndefined();
  });

  it('subscribes once per filter, at the highest QoS of its rules', () => {
    const subs = [parseTopicRule('x/# both 0'), parseTopicRule('x/# out 2'), parseTopicRule('y/+ in 1 "" r/')];
    expect([...localSubscriptions(subs)]).toEqual([['x/#', 2]]);
    expect([...remoteSubscriptions(subs)]).toEqual([['x/#', 0], ['r/y/+', 1]]);
    expect([...localSubscriptions(rules)].map(([f]) => f)).toEqual(['L/pattern/#', 'b/#', 'local/one', 'c/#']);
    expect([...remoteSubscriptions(rules)].map(([f]) => f)).toEqual(['a/#', 'R/b/#', 'c/#']);
  });
});
