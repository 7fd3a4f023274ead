import { describe, expect, it } from 'vitest';
import { defaultClientLimits, type ClientIdentity, type ConnectionInfo } from '@fleetmq/broker';
import { PolicyTable, isGlob } from '../src/policies.js';

const on = (listener: string): ConnectionInfo => ({ transport: 'tcp', listener, remoteAddress: '10.0.0.1', remotePort: 5000 });
const user = (username: string | undefined, groups: string[] = []): ClientIdentity => ({ provider: 'test', username, groups });

const table = new PolicyTable({
  defaults: { ...defaultClientLimits, maxPayloadSize: 131072, publishRate: { perSecond: 10, burst: 10 } },
  groups: { gateways: ['gw-1', 'gw-2'], ops: ['alice'] },
  policies: [
    { name: 'admins', match: { users: ['admin'] }, limits: { publishRate: { perSecond: 1000, burst: 1000 } } },
    { name: 'gateways', match: { groups: ['gateways'] }, limits: { maxPayloadSize: 1_048_576, maxInflight: 100 } },
    { name: 'public-sensors', match: { listeners: ['public'], clientIds: ['sensor-*'] }, limits: { maximumQoS: 1, retain: 'stripped', maxQueued: 10 } },
    { name: 'public', match: { listeners: ['public', 'public-ws'] }, limits: { maxPayloadSize: 4096 } },
  ],
});

describe('PolicyTable', () => {
  it.each([
    ['a user by name', user('admin'), 'x', 'public', 'admins'],
    ['a group from the groups map', user('gw-2'), 'x', 'internal', 'gateways'],
    ['a group from the credential (JWT groups claim)', user('device-9', ['gateways']), 'x', 'internal', 'gateways'],
    ['listener and client ID glob together', user(undefined), 'sensor-17', 'public', 'public-sensors'],
    ['the listener alone when the client ID does not match', user(undefined), 'meter-17', 'public', 'public'],
    ['another listener in the same list', user('bob'), 'x', 'public-ws', 'public'],
    ['no policy: the node-wide limits', user('bob'), 'sensor-1', 'internal', undefined],
    ['first match wins: a gateway on the public listener is a gateway', user('gw-1'), 'sensor-1', 'public', 'gateways'],
    ['users never matches an anonymous client', user(undefined), 'admin', 'internal', undefined],
  ] as const)('%s', (_what, identity, clientId, listener, expected) => {
    expect(table.policyName(identity, clientId, listener)).toBe(expected);
  });

  it('merges the matching policy over the node-wide limits, built once', () => {
    const sensor = table.limitsFor(user(undefined), 'sensor-1', on('public'));
    expect(sensor).toEqual({
      ...defaultClientLimits,
      maxPayloadSize: 131072,
      publishRate: { perSecond: 10, burst: 10 },
      maximumQoS: 1,
      retain: 'stripped',
      maxQueued: 10,
    });
    expect(table.limitsFor(user(undefined), 'sensor-2', on('public'))).toBe(sensor);
    expect(table.limitsFor(user('bob'), 'b', on('internal'))).toMatchObject({ maxPayloadSize: 131072, maxInflight: undefined });
    expect(table.limitsFor(user('gw-1'), 'g', on('internal'))).toMatchObject({ maxPayloadSize: 1_048_576, maxInflight: 100, publishRate: { perSecond: 10, burst: 10 } });
  });

  it('groups of a client: its credential\'s plus the map\'s, once each', () => {
    expect(table.groupsFor(user('alice', ['ops', 'dev']))).toEqual(['ops', 'dev']);
    expect(table.groupsFor(user('gw-1'))).toEqual(['gateways']);
    expect(table.groupsFor(user(undefined, ['x']))).toEqual(['x']);
  });

  it('globs: * and ? only; other characters are literal', () => {
    const t = new PolicyTable({
      defaults: defaultClientLimits,
      policies: [{ match: { clientIds: ['d:acme:*', 'a.b?'] }, limits: { maxQueued: 1 } }],
    });
    expect(t.policyName(undefined, 'd:acme:meter:7', 'l')).toBe('policies[0]');
    expect(t.policyName(undefined, 'a.bc', 'l')).toBe('policies[0]');
    expect(t.policyName(undefined, 'axbc', 'l')).toBeUndefined();
    expect(t.policyName(undefined, 'd:acmeX', 'l')).toBeUndefined();
    expect([isGlob('a*'), isGlob('a?'), isGlob('a.b')]).toEqual([true, true, false]);
  });

  it('refuses a policy whose limits are unusable, naming it', () => {
    expect(
      () => new PolicyTable({ defaults: defaultClientLimits, policies: [{ name: 'bad', match: { users: ['x'] }, limits: { maxInflight: 0 } }] }),
    ).toThrow('bad.limits.maxInflight must be an integer >= 1');
  });
});
