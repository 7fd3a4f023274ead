import { describe, expect, it } from 'vitest';
import { ConfigError } from '@fleetmq/protocol';
import { bridgeOptions, parseBridgeAddress } from '../src/bridge-config.js';
import { parseConfig, redactSecrets } from '../src/config.js';

/** The ConfigError a config with these bridges gets. */
function refusal(...bridges: Record<string, unknown>[]): ConfigError {
  const result = (() => {
    try {
      return parseConfig({ bridges });
    } catch (err) {
      return err;
    }
  })();
  expect(result).toBeInstanceOf(ConfigError);
  return result as ConfigError;
}

const minimal = { name: 'cloud', addresses: 'mqtt.example.com:8883', topics: ['supla/# in'] };

describe('bridges config', () => {
  it('has none by default', () => {
    expect(parseConfig({}).bridges).toEqual([]);
  });

  it("fills in Mosquitto's defaults", () => {
    const [b] = parseConfig({ bridges: [minimal] }).bridges;
    const o = bridgeOptions(b!);
    expect(o).toMatchObject({
      name: 'cloud',
      addresses: [{ host: 'mqtt.example.com', port: 8883 }],
      remoteClientId: 'cloud',
      localClientId: 'local.cloud',
      cleanSession: false,
      localCleanSession: false,
      keepAlive: 60,
      protocolVersion: 4,
      tryPrivate: true,
      notifications: true,
      notificationsLocalOnly: false,
      notificationTopic: '$SYS/broker/connection/cloud/state',
      outgoingRetain: true,
      roundRobin: false,
      maxQueued: 1000,
      maxInflight: 20,
      reconnect: { baseMs: 5000, capMs: 30000 },
      leaseTtlMs: 15000,
    });
    expect(o.topics).toEqual([{ pattern: 'supla/#', direction: 'in', qos: 0, localPrefix: '', remotePrefix: '' }]);
  });

  it('takes topic rules as Mosquitto lines or as objects, and address lists either way', () => {
    const [b] = parseConfig({
      bridges: [
        {
          ...minimal,
          addresses: ['a.example.com', '[::1]:1884'],
          protocolVersion: 'mqttv50',
          remoteClientId: 'gw-1.cloud',
          topics: ['topic supla/+/devices/+/channels/+/execute_action out 1', { pattern: 'x/#', direction: 'both', qos: 2, remotePrefix: 'site/' }],
        },
      ],
    }).bridges;
    const o = bridgeOptions(b!);
    expect(o.addresses).toEqual([
      { host: 'a.example.com', port: 1883 },
      { host: '::1', port: 1884 },
    ]);
    expect(o.protocolVersion).toBe(5);
    expect(o.localClientId).toBe('local.gw-1.cloud');
    expect(o.notificationTopic).toBe('$SYS/broker/connection/gw-1.cloud/state');
    expect(o.topics).toEqual([
      { pattern: 'supla/+/devices/+/channels/+/execute_action', direction: 'out', qos: 1, localPrefix: '', remotePrefix: '' },
      { pattern: 'x/#', direction: 'both', qos: 2, localPrefix: '', remotePrefix: 'site/' },
    ]);
    expect(parseBridgeAddress('host:99999')).toBeUndefined();
  });

  it('names the key and the reason of a bad rule', () => {
    const err = refusal({ ...minimal, topics: ['ok/# in', 'bad/# sideways'] });
    expect(err.key).toBe('bridges[0].topics[1]');
    expect(err.message).toMatch(/direction "sideways"/);
    expect(err.hint).toMatch(/Bridges to other brokers/);
    expect(refusal({ ...minimal, topics: [{ pattern: '', localPrefix: 'a' }] }).message).toMatch(/needs both/);
    expect(refusal({ ...minimal, topics: [{ pattern: 'x/#', direction: 'up' }] }).key).toBe('bridges[0].topics[0].direction');
    expect(refusal({ ...minimal, protocolVersion: 6 }).key).toBe('bridges[0].protocolVersion');
    expect(refusal({ ...minimal, addresses: 'a:b' }).key).toBe('bridges[0].addresses[0]');
    expect(refusal({ ...minimal, tls: { certFile: '/c.pem' } }).key).toBe('bridges[0].tls');
    expect(refusal({ ...minimal, remotePassword: 'x' }).key).toBe('bridges[0].remotePassword');
    expect(refusal(minimal, minimal).key).toBe('bridges[1].name');
  });

  it('never prints the passwords', () => {
    const config = parseConfig({ bridges: [{ ...minimal, username: 'gw', password: 'hunter2-remote', localUsername: 'bridge', localPassword: 'hunter2-local' }] });
    const printed = JSON.stringify(redactSecrets(config));
    expect(printed).not.toMatch(/hunter2/);
    expect(printed).toMatch(/"password":"\[redacted\]"/);
    const err = refusal({ ...minimal, password: 'hunter2', username: 7 });
    expect(err.message).not.toMatch(/hunter2/);
  });
});
