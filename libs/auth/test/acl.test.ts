import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isValidTopicFilter, topicMatches } from '@fleetmq/protocol';
import { Acl, filterCovers, isReservedTopic, substitute, type AclAction, type AuthIdentity } from '@fleetmq/auth';

const user = (username: string, extra: Partial<AuthIdentity> = {}): AuthIdentity => ({ provider: 'password-file', username, groups: [], ...extra });
const anonymous: AuthIdentity = { provider: 'anonymous', username: undefined, groups: [] };

// Mosquitto's aclfile.example plus the man page's `pattern write sensor/%u/data`.
const EXAMPLE = [
  '# This affects access control for clients with no username.',
  'topic read $SYS/#',
  '# This only affects clients with username "roger".',
  'user roger',
  'topic foo/bar',
  '# This affects all clients.',
  'pattern write $SYS/broker/connection/%c/state',
  'pattern write sensor/%u/data',
].join('\n');

describe('Mosquitto’s documented example', () => {
  const acl = Acl.parse(EXAMPLE);
  const cases: [string, AuthIdentity | undefined, string, AclAction, string, boolean][] = [
    // rules before the first `user` line are the anonymous client's
    ['anonymous reads $SYS', anonymous, 'c1', 'read', '$SYS/broker/load/messages', true],
    ['anonymous subscribes $SYS/#', anonymous, 'c1', 'subscribe', '$SYS/#', true],
    ['anonymous cannot publish to $SYS', anonymous, 'c1', 'publish', '$SYS/broker/load', false],
    ['anonymous cannot subscribe #', anonymous, 'c1', 'subscribe', '#', false],
    ['anonymous cannot read foo/bar', anonymous, 'c1', 'read', 'foo/bar', false],
    ['no identity at all counts as anonymous', undefined, 'c1', 'read', '$SYS/broker/uptime', true],
    // roger's section; the anonymous rules do not apply to him
    ['roger publishes foo/bar (no access word = readwrite)', user('roger'), 'r1', 'publish', 'foo/bar', true],
    ['roger reads foo/bar', user('roger'), 'r1', 'read', 'foo/bar', true],
    ['roger subscribes foo/bar', user('roger'), 'r1', 'subscribe', 'foo/bar', true],
    ['roger cannot subscribe foo/# (wider than his rule)', user('roger'), 'r1', 'subscribe', 'foo/#', false],
    ['roger cannot read $SYS (anonymous rules are not his)', user('roger'), 'r1', 'read', '$SYS/broker/load', false],
    ['roger cannot publish foo/baz', user('roger'), 'r1', 'publish', 'foo/baz', false],
    // patterns apply to everyone, %c and %u substituted
    ['roger writes his connection state (%c)', user('roger'), 'r1', 'publish', '$SYS/broker/connection/r1/state', true],
    ['roger cannot write another client’s state', user('roger'), 'r1', 'publish', '$SYS/broker/connection/r2/state', false],
    ['anonymous writes its connection state', anonymous, 'c1', 'publish', '$SYS/broker/connection/c1/state', true],
    ['a write pattern does not grant read', user('roger'), 'r1', 'read', '$SYS/broker/connection/r1/state', false],
    ['fred (no section) writes sensor/fred/data (%u)', user('fred'), 'f1', 'publish', 'sensor/fred/data', true],
    ['fred cannot write sensor/roger/data', user('fred'), 'f1', 'publish', 'sensor/roger/data', false],
    ['%u patterns skip clients without a username', anonymous, 'c1', 'publish', 'sensor/%u/data', false],
    ['%u patterns skip clients without a username (literal)', anonymous, 'c1', 'publish', 'sensor/undefined/data', false],
  ];
  it.each(cases)('%s', (_name, identity, clientId, action, topic, allowed) => {
    expect(acl.check(identity, clientId, action, topic)).toBe(allowed);
  });
});

describe('deny rules', () => {
  const acl = Acl.parse(
    ['user alice', 'topic readwrite home/#', 'topic deny home/secret', 'topic read $SYS/broker/#', 'pattern deny home/%c/private', 'pattern readwrite devices/%c/#'].join('\n'),
  );
  const alice = user('alice');

  it('a deny rule wins over a grant of the same section, on publish and on delivery', () => {
    expect(acl.check(alice, 'a1', 'publish', 'home/kitchen')).toBe(true);
    expect(acl.check(alice, 'a1', 'publish', 'home/secret')).toBe(false);
    expect(acl.check(alice, 'a1', 'read', 'home/secret')).toBe(false);
  });

  it('subscribe: refused when a deny rule covers the filter; allowed when it covers only part (delivery filters the rest)', () => {
    expect(acl.check(alice, 'a1', 'subscribe', 'home/secret')).toBe(false);
    expect(acl.check(alice, 'a1', 'subscribe', 'home/#')).toBe(true);
    expect(acl.check(alice, 'a1', 'subscribe', 'home/+')).toBe(true);
    expect(acl.check(alice, 'a1', 'read', 'home/secret')).toBe(false);
  });

  it('a deny pattern wins over a user grant (FleetMQ: any deny wins; Mosquitto checks the user section first)', () => {
    expect(acl.check(alice, 'a1', 'publish', 'home/a1/private')).toBe(false);
    expect(acl.check(alice, 'a2', 'publish', 'home/a1/private')).toBe(true);
  });

  it('$SYS only through a rule that names it', () => {
    expect(acl.check(alice, 'a1', 'read', '$SYS/broker/uptime')).toBe(true);
    expect(acl.check(alice, 'a1', 'read', '$SYS/other')).toBe(false);
    const all = Acl.parse('user root\ntopic readwrite #\ntopic readwrite +/#');
    expect(all.check(user('root'), 'x', 'read', 'anything/at/all')).toBe(true);
    expect(all.check(user('root'), 'x', 'read', '$SYS/broker/uptime')).toBe(false);
    expect(all.check(user('root'), 'x', 'subscribe', '$SYS/#')).toBe(false);
    expect(all.check(user('root'), 'x', 'publish', '$SYS/x')).toBe(false);
  });

  it('no rule lets a client publish to $SYS (but a bridge’s connection state) or to $share, as in Mosquitto', () => {
    const root = Acl.parse('user root\ntopic readwrite $SYS/#\ntopic readwrite $share/#\ntopic readwrite $SYSTEM/#');
    const r = user('root');
    expect(root.check(r, 'x', 'read', '$SYS/broker/uptime')).toBe(true);
    expect(root.check(r, 'x', 'publish', '$SYS/broker/uptime')).toBe(false);
    expect(root.check(r, 'x', 'publish', '$SYSTEM/x')).toBe(false); // Mosquitto compares the first four characters
    expect(root.check(r, 'x', 'publish', '$SYS/broker/connection/br-1/state')).toBe(true);
    expect(root.check(r, 'x', 'publish', '$share/g/t')).toBe(false);
    expect(isReservedTopic('$SYS/broker/connection/a/b/state')).toBe(true);
    expect(isReservedTopic('$other/x')).toBe(false);
    expect(isReservedTopic('SYS/x')).toBe(false);
  });

  it('a client ID or username with + or # gets no access from patterns; deny patterns still apply', () => {
    expect(acl.check(alice, 'a1', 'publish', 'devices/a1/t')).toBe(true);
    expect(acl.check(alice, '+', 'publish', 'devices/x/t')).toBe(false);
    expect(acl.check(alice, '#', 'publish', 'devices/x/t')).toBe(false);
    expect(acl.check(user('b+'), 'b1', 'publish', 'devices/b1/t')).toBe(false);
    // alice's own section still applies to her; the (widened) deny pattern still refuses
    expect(acl.check(alice, '+', 'publish', 'home/kitchen')).toBe(true);
    expect(acl.check(alice, '+', 'publish', 'home/any/private')).toBe(false);
  });

  it('with no rules at all for a client, everything is refused', () => {
    const only = Acl.parse('user alice\ntopic read a');
    expect(only.check(user('bob'), 'b', 'read', 'a')).toBe(false);
    expect(only.check(anonymous, 'b', 'read', 'a')).toBe(false);
  });
});

describe('subscribe checks', () => {
  const acl = Acl.parse('user u\ntopic read s/+/temp\ntopic read t/#\ntopic write w/#');
  const u = user('u');
  it.each([
    ['s/+/temp', true],
    ['s/k/temp', true],
    ['s/#', false],
    ['s/+/+', false],
    ['t/#', true],
    ['t', true], // t/# matches its parent
    ['t/+/x/#', true],
    ['w/#', false], // write does not grant subscribe
    ['$share/grp/t/a', true],
    ['$share/grp/s/#', false],
    ['$share/bad', false],
  ])('%s → %s', (filter, allowed) => {
    expect(acl.check(u, 'c', 'subscribe', filter)).toBe(allowed);
  });

  it("subscribe: 'mosquitto' allows every subscription, as Mosquitto 2.0's acl_file does; delivery is still checked", () => {
    const m = Acl.parse('user u\ntopic read t/#', { subscribe: 'mosquitto' });
    expect(m.check(u, 'c', 'subscribe', '#')).toBe(true);
    expect(m.check(u, 'c', 'read', 'x/y')).toBe(false);
    expect(m.check(u, 'c', 'read', 't/y')).toBe(true);
  });
});

describe('rules from token claims', () => {
  const file = Acl.parse('user sensor-1\ntopic read config/sensor-1\ntopic deny fleet/locked/#');
  const claims = user('sensor-1', { provider: 'jwt', acl: { pub: ['telemetry/sensor-1/#', 'fleet/locked/x'], sub: ['cmd/sensor-1/+'], all: ['chat/sensor-1'] } });

  it('merge with the file’s: pub grants publish, sub grants subscribe and delivery, all grants both', () => {
    expect(file.check(claims, 'sensor-1', 'publish', 'telemetry/sensor-1/temp')).toBe(true);
    expect(file.check(claims, 'sensor-1', 'read', 'telemetry/sensor-1/temp')).toBe(false);
    expect(file.check(claims, 'sensor-1', 'subscribe', 'cmd/sensor-1/+')).toBe(true);
    expect(file.check(claims, 'sensor-1', 'read', 'cmd/sensor-1/reboot')).toBe(true);
    expect(file.check(claims, 'sensor-1', 'publish', 'cmd/sensor-1/reboot')).toBe(false);
    expect(file.check(claims, 'sensor-1', 'publish', 'chat/sensor-1')).toBe(true);
    expect(file.check(claims, 'sensor-1', 'read', 'chat/sensor-1')).toBe(true);
    expect(file.check(claims, 'sensor-1', 'read', 'config/sensor-1')).toBe(true); // the file's rule still applies
  });

  it('a file deny beats a claim grant', () => {
    expect(file.check(claims, 'sensor-1', 'publish', 'fleet/locked/x')).toBe(false);
  });

  it('Acl.empty(): only claims grant', () => {
    const empty = Acl.empty();
    expect(empty.check(claims, 'sensor-1', 'publish', 'telemetry/sensor-1/a')).toBe(true);
    expect(empty.check(claims, 'sensor-1', 'publish', 'config/sensor-1')).toBe(false);
    expect(empty.check(user('x'), 'x', 'read', 'a')).toBe(false);
  });
});

describe('forClient', () => {
  it('compiles a client’s rules once; checks agree with Acl.check', () => {
    const acl = Acl.parse(EXAMPLE);
    const c = acl.forClient(user('roger'), 'r9');
    expect(c.check('publish', '$SYS/broker/connection/r9/state')).toBe(true);
    expect(c.check('publish', 'foo/bar')).toBe(true);
    expect(c.check('subscribe', 'foo/+')).toBe(false);
  });
});

describe('substitute (Mosquitto’s %c / %u)', () => {
  it('substitutes anywhere in a level, leaves other % alone, %u only with a username', () => {
    expect(substitute('a/%c/%u', 'cid', 'usr')).toBe('a/cid/usr');
    expect(substitute('dev-%c/x', 'cid', undefined)).toBe('dev-cid/x');
    expect(substitute('%x/%%c/%', 'cid', undefined)).toBe('%x/%cid/%');
    expect(substitute('a/%u', 'cid', undefined)).toBe('a/%u');
    expect(substitute('%c%c', '%u', 'U')).toBe('%u%u'); // replacement text is not rescanned
  });

  const part = fc.string({ maxLength: 6, unit: fc.constantFrom('a', 'b', '/', '%', 'c', 'u', '-') });

  it('property: equals a left-to-right regular-expression replacement', () => {
    fc.assert(
      fc.property(part, part, fc.option(part, { nil: undefined }), (pattern, clientId, username) => {
        const reference = pattern.replace(/%[cu]/g, (m) => (m === '%c' ? clientId : (username ?? m)));
        expect(substitute(pattern, clientId, username)).toBe(reference);
      }),
      { numRuns: 1000 },
    );
  });

  it('property: with `pattern readwrite d/%c/#` a client reaches its own subtree and no other client’s', () => {
    const acl = Acl.parse('pattern readwrite d/%c/#\npattern read u/%u');
    const id = fc.string({ minLength: 1, maxLength: 8, unit: fc.constantFrom('a', 'b', 'Z', '0', '-', '.', ' ', 'é') });
    fc.assert(
      fc.property(id, id, id, fc.constantFrom<AclAction>('publish', 'read'), (clientId, other, username, action) => {
        const ident = user(username);
        expect(acl.check(ident, clientId, action, `d/${clientId}/x/y`)).toBe(true);
        expect(acl.check(ident, clientId, action, `d/${clientId}`)).toBe(true);
        expect(acl.check(ident, clientId, action, `d/${other}/x`)).toBe(other === clientId);
        expect(acl.check(ident, clientId, 'subscribe', `d/${clientId}/#`)).toBe(true);
        expect(acl.check(ident, clientId, 'subscribe', `d/+/#`)).toBe(false);
        expect(acl.check(ident, clientId, 'read', `u/${username}`)).toBe(true);
        expect(acl.check(ident, clientId, 'publish', `u/${username}`)).toBe(false);
        expect(acl.check(anonymous, clientId, 'read', `u/${username}`)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});

// ---- filterCovers against brute force, over a universe of topics that is exact for these filters:
// a counterexample needs at most one level more than the longest rule, and FRESH stands for any
// literal the filters do not name. ----

const LEVELS = ['a', 'b', '', '$x'];
const FRESH = 'z'; // a literal no filter uses: stands for every other level

/** Every topic of 1..4 levels over LEVELS ∪ {FRESH}. */
const UNIVERSE: string[] = (() => {
  const out: string[] = [];
  let layer: string[][] = [[]];
  for (let depth = 1; depth <= 4; depth++) {
    layer = layer.flatMap((prefix) => [...LEVELS, FRESH].map((l) => [...prefix, l]));
    for (const levels of layer) {
      const t = levels.join('/');
      if (t.length > 0) out.push(t);
    }
  }
  return out;
})();

const filterArb = fc
  .tuple(fc.array(fc.constantFrom(...LEVELS, '+'), { minLength: 0, maxLength: 3 }), fc.boolean())
  .map(([levels, hash]) => [...levels, ...(hash ? ['#'] : [])].join('/'))
  .filter((f) => isValidTopicFilter(f));

describe('filterCovers', () => {
  it('examples', () => {
    expect(filterCovers('a/#', 'a')).toBe(true);
    expect(filterCovers('a/#', 'a/+/b')).toBe(true);
    expect(filterCovers('a/+', 'a/#')).toBe(false);
    expect(filterCovers('+/#', '#')).toBe(true);
    expect(filterCovers('/+/#', '/#')).toBe(true); // '/#' has no parent topic: '' is not a topic
    expect(filterCovers('a/+/#', 'a/#')).toBe(false); // 'a/#' matches 'a'
    expect(filterCovers('#', '$SYS/#')).toBe(false);
    expect(filterCovers('$SYS/#', '$SYS/broker/+')).toBe(true);
    expect(filterCovers('a/+/#', 'a')).toBe(false);
  });

  it('covers(r, f) exactly when every topic f matches, r matches: all pairs of filters, exhaustively', () => {
    // every valid filter of up to three levels over LEVELS ∪ {'+'}, with or without a final '#'
    const filters: string[] = [];
    let layer: string[][] = [[]];
    for (let depth = 0; depth <= 3; depth++) {
      for (const levels of layer) {
        for (const f of [levels.join('/'), [...levels, '#'].join('/')]) if (isValidTopicFilter(f)) filters.push(f);
      }
      layer = layer.flatMap((prefix) => [...LEVELS, '+'].map((l) => [...prefix, l]));
    }
    const matched = filters.map((f) => UNIVERSE.map((t) => topicMatches(f, t)));
    let covered = 0;
    for (let r = 0; r < filters.length; r++) {
      for (let f = 0; f < filters.length; f++) {
        const reference = matched[f]!.every((m, t) => !m || matched[r]![t]!);
        if (filterCovers(filters[r]!, filters[f]!) !== reference) {
          expect({ rule: filters[r], filter: filters[f], covers: filterCovers(filters[r]!, filters[f]!) }).toEqual({
            rule: filters[r],
            filter: filters[f],
            covers: reference,
          });
        }
        if (reference) covered++;
      }
    }
    expect(filters.length).toBeGreaterThan(300);
    expect(covered).toBeGreaterThan(1000); // the check is not vacuous
  });

  it('property: an allowed subscription never receives what delivery refuses, unless a deny rule refuses it', () => {
    const ruleArb = fc.record({ access: fc.constantFrom('read', 'write', 'readwrite', 'deny'), topic: filterArb });
    fc.assert(
      fc.property(fc.array(ruleArb, { maxLength: 5 }), filterArb, (rules, filter) => {
        const text = ['user u', ...rules.map((r) => `topic ${r.access} ${r.topic}`)].join('\n');
        const acl = Acl.parse(text).forClient(user('u'), 'c');
        if (!acl.check('subscribe', filter)) return;
        for (const t of UNIVERSE) {
          if (!topicMatches(filter, t)) continue;
          const denied = rules.some((r) => r.access === 'deny' && topicMatches(r.topic, t));
          expect(acl.check('read', t) || denied).toBe(true);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
