import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@fleetmq/protocol';
import { defaultBrokerOptions } from '@fleetmq/broker';
import { loadConfig, parseConfig, parseListenerUrls, redactSecrets } from '../src/config.js';

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

function writeTemp(name: string, text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fleetmq-config-'));
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('parseConfig defaults', () => {
  it('gives a working local broker with nothing configured: 127.0.0.1:1883, anonymous allowed', () => {
    const config = parseConfig({});
    expect(config.listeners).toEqual([{ type: 'tcp', name: 'tcp-1883', host: '127.0.0.1', port: 1883, path: '/mqtt', proxyProtocol: false }]);
    expect(config.auth.allowAnonymous).toBe(true);
    expect(config.log.level).toBe('info');
    expect(config.nodeId).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
  });

  it('takes its MQTT defaults from the broker, the one source of truth', () => {
    const { mqtt } = parseConfig({});
    for (const [key, value] of Object.entries(defaultBrokerOptions)) expect(mqtt[key as keyof typeof mqtt]).toBe(value);
  });

  it('treats an empty YAML document as no config', () => {
    expect(parseConfig(null).listeners).toHaveLength(1);
  });

  it('keeps given values and fills the rest', () => {
    const config = parseConfig({ mqtt: { maxPacketSize: 2048 }, listeners: [{ type: 'ws', port: 9001 }] });
    expect(config.mqtt.maxPacketSize).toBe(2048);
    expect(config.mqtt.receiveMaximum).toBe(defaultBrokerOptions.receiveMaximum);
    expect(config.listeners[0]).toEqual({ type: 'ws', name: 'ws-9001', host: '127.0.0.1', port: 9001, path: '/mqtt', proxyProtocol: false });
  });
});

describe('parseConfig errors name the key, the value and the fix', () => {
  it('an unknown key with a near miss suggests the right one', () => {
    const err = errorOf(() => parseConfig({ mqtt: { maxPaketSize: 10 } }));
    expect(err.key).toBe('mqtt.maxPaketSize');
    expect(err.message).toContain('unknown key');
    expect(err.hint).toBe('did you mean maxPacketSize?');
  });

  it('an unknown key far from any lists the known ones', () => {
    const err = errorOf(() => parseConfig({ log: { colour: true } }));
    expect(err.key).toBe('log.colour');
    expect(err.hint).toContain('known keys here: level');
  });

  it('an unknown top-level key', () => {
    expect(errorOf(() => parseConfig({ listener: [] })).hint).toBe('did you mean listeners?');
  });

  it('an unknown key inside a listener names its index', () => {
    expect(errorOf(() => parseConfig({ listeners: [{ type: 'tcp', port: 1, hots: 'x' }] })).key).toBe('listeners[0].hots');
  });

  it('a value out of range', () => {
    const err = errorOf(() => parseConfig({ mqtt: { receiveMaximum: 0 } }));
    expect(err.key).toBe('mqtt.receiveMaximum');
    expect(err.message).toContain('0 is invalid');
  });

  it('a value of the wrong type', () => {
    const err = errorOf(() => parseConfig({ mqtt: { retainAvailable: 'yes' } }));
    expect(err.key).toBe('mqtt.retainAvailable');
    expect(err.message).toContain('"yes" is invalid');
  });

  it('an enum value lists the choices', () => {
    const err = errorOf(() => parseConfig({ log: { level: 'verbose' } }));
    expect(err.key).toBe('log.level');
    expect(err.hint).toBe('use one of fatal, error, warn, info, debug, trace, silent');
  });

  it('a missing required key', () => {
    const err = errorOf(() => parseConfig({ listeners: [{ type: 'tcp' }] }));
    expect(err.key).toBe('listeners[0].port');
    expect(err.message).toContain('missing');
  });

  it('a tls listener takes its certificate files, with TLS 1.2 and 1.3 by default', () => {
    const config = parseConfig({ listeners: [{ type: 'tls', port: 8883, proxyProtocol: true, tls: { certFile: 'c.pem', keyFile: 'k.pem' } }] });
    expect(config.listeners[0]).toMatchObject({
      type: 'tls',
      name: 'tls-8883',
      proxyProtocol: true,
      tls: { certFile: 'c.pem', keyFile: 'k.pem', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', clientCertificate: 'none' },
    });
  });

  it('a tls or wss listener without certificate files names the tls key', () => {
    const err = errorOf(() => parseConfig({ listeners: [{ type: 'wss', port: 8084 }] }));
    expect(err.key).toBe('listeners[0].tls');
    expect(err.message).toContain('a wss listener needs tls.certFile and tls.keyFile');
  });

  it('tls settings on a plain listener, and PROXY protocol on secure WebSocket, are refused; PROXY protocol on plain WebSocket is taken', () => {
    expect(errorOf(() => parseConfig({ listeners: [{ type: 'tcp', port: 1, tls: { certFile: 'c', keyFile: 'k' } }] })).key).toBe('listeners[0].tls');
    const wss = errorOf(() => parseConfig({ listeners: [{ type: 'wss', port: 1, proxyProtocol: true, tls: { certFile: 'c', keyFile: 'k' } }] }));
    expect(wss.key).toBe('listeners[0].proxyProtocol');
    expect(wss.message).toContain('forward to a ws listener with proxyProtocol');
    expect(parseConfig({ listeners: [{ type: 'ws', port: 1, proxyProtocol: true }] }).listeners[0]).toMatchObject({ type: 'ws', proxyProtocol: true });
  });

  it('other brokers\' names for TLS get the right type as the fix', () => {
    const err = errorOf(() => parseConfig({ listeners: [{ type: 'ssl', port: 8883 }] }));
    expect(err.key).toBe('listeners[0].type');
    expect(err.hint).toBe('use tls (MQTT over TLS) or wss (secure WebSocket)');
  });

  it('a TLS version outside the list names the choices', () => {
    const err = errorOf(() => parseConfig({ listeners: [{ type: 'tls', port: 1, tls: { certFile: 'c', keyFile: 'k', minVersion: 'SSLv3' } }] }));
    expect(err.key).toBe('listeners[0].tls.minVersion');
    expect(err.hint).toBe('use one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3');
  });

  it('two listeners with one name', () => {
    const err = errorOf(() =>
      parseConfig({ listeners: [{ type: 'tcp', port: 1883, name: 'a' }, { type: 'ws', port: 8083, name: 'a' }] }),
    );
    expect(err.key).toBe('listeners[1].name');
  });

  it('a root that is not a mapping', () => {
    expect(errorOf(() => parseConfig(['a'])).key).toBe('(root)');
  });
});

describe('loadConfig', () => {
  it('reads YAML and applies environment overrides on top', () => {
    const file = writeTemp('a.yaml', 'nodeId: from-file\nmqtt:\n  maxPacketSize: 4096\n  receiveMaximum: 10\n');
    const config = loadConfig({
      file,
      env: {
        FLEETMQ_NODE_ID: 'from-env',
        FLEETMQ_MQTT__MAX_PACKET_SIZE: '8192',
        FLEETMQ_AUTH__ALLOW_ANONYMOUS: 'false',
        FLEETMQ_LOG_LEVEL: 'warn',
      },
    });
    expect(config.nodeId).toBe('from-env');
    expect(config.mqtt.maxPacketSize).toBe(8192);
    expect(config.mqtt.receiveMaximum).toBe(10);
    expect(config.auth.allowAnonymous).toBe(false);
    expect(config.log.level).toBe('warn');
  });

  it('finds the file through FLEETMQ_CONFIG', () => {
    const file = writeTemp('b.yaml', 'nodeId: via-env-file\n');
    expect(loadConfig({ env: { FLEETMQ_CONFIG: file } }).nodeId).toBe('via-env-file');
  });

  it('an environment override with a bad name is reported under its config key', () => {
    const err = errorOf(() => loadConfig({ env: { FLEETMQ_MQTT__MAX_PACKT_SIZE: '1' } }));
    expect(err.key).toBe('mqtt.maxPacktSize');
    expect(err.hint).toBe('did you mean maxPacketSize?');
  });

  it('a missing file names the path', () => {
    const err = errorOf(() => loadConfig({ file: '/nonexistent/fleetmq.yaml', env: {} }));
    expect(err.message).toContain('/nonexistent/fleetmq.yaml');
    expect(err.message).toContain('ENOENT');
  });

  it('invalid YAML is reported as such', () => {
    const file = writeTemp('c.yaml', 'mqtt: [unclosed\n');
    expect(errorOf(() => loadConfig({ file, env: {} })).message).toContain('not valid YAML');
  });
});

describe('cluster backends', () => {
  it('are absent by default: the embedded node needs nothing', () => {
    const config = parseConfig({});
    expect(config.cluster.nats).toBeUndefined();
    expect(config.dynamodb).toBeUndefined();
  });

  it('take NATS servers as a list or a comma-separated string from the environment', () => {
    const open = { allowAnonymous: true };
    expect(parseConfig({ cluster: { nats: { servers: ['nats://a:4222'] } }, auth: open }).cluster.nats?.servers).toEqual(['nats://a:4222']);
    const config = loadConfig({ env: { FLEETMQ_CLUSTER__NATS__SERVERS: 'nats://a:4222, nats://b:4222', FLEETMQ_AUTH__ALLOW_ANONYMOUS: 'true' } });
    expect(config.cluster.nats).toEqual({ servers: ['nats://a:4222', 'nats://b:4222'], reconnectTimeWait: 1000 });
  });

  it('fill DynamoDB defaults and check the endpoint', () => {
    expect(loadConfig({ env: { FLEETMQ_DYNAMODB__ENDPOINT: 'http://localhost:8000' } }).dynamodb).toEqual({
      endpoint: 'http://localhost:8000',
      region: 'us-east-1',
      tablePrefix: 'fleetmq-',
      createTables: false,
    });
    const err = errorOf(() => parseConfig({ dynamodb: { endpoint: 'localhost' } }));
    expect(err.key).toBe('dynamodb.endpoint');
    expect(err.hint).toContain('http://localhost:8000');
  });

  it('an empty server list is refused', () => {
    expect(errorOf(() => parseConfig({ cluster: { nats: { servers: [] } } })).key).toBe('cluster.nats.servers');
  });

  it.each([
    ['NATS', { nats: { servers: ['nats://a:4222'] } }, 'cluster.nats'],
    ['Redis', { redis: { url: 'redis://r:6379' } }, 'cluster.redis'],
  ])('with %s and no auth provider, refuse to start unless auth.allowAnonymous: true says so', (_name, cluster, key) => {
    const err = errorOf(() => parseConfig({ cluster }));
    expect(err.key).toBe('auth.allowAnonymous');
    expect(err.message).toContain(`${key} is configured with no auth provider`);
    expect(err.hint).toContain('auth.passwordFile');
    expect(err.hint).toContain('set auth.allowAnonymous: true');
    expect(parseConfig({ cluster, auth: { allowAnonymous: true } }).auth.allowAnonymous).toBe(true);
    // a provider: anonymous is off, nothing to refuse
    expect(parseConfig({ cluster, auth: { passwordFile: '/etc/fleetmq/passwd' } }).auth.allowAnonymous).toBe(false);
    // said explicitly off with no provider: nobody gets in, but by decision, not by accident
    expect(parseConfig({ cluster, auth: { allowAnonymous: false } }).auth.allowAnonymous).toBe(false);
  });

  it('the environment says it as well: FLEETMQ_AUTH__ALLOW_ANONYMOUS=true', () => {
    const env = { FLEETMQ_CLUSTER__REDIS__URL: 'redis://r:6379' };
    expect(errorOf(() => loadConfig({ env })).key).toBe('auth.allowAnonymous');
    expect(loadConfig({ env: { ...env, FLEETMQ_AUTH__ALLOW_ANONYMOUS: 'true' } }).auth.allowAnonymous).toBe(true);
  });

  it('one node alone (DynamoDB included) stays open like Mosquitto on localhost', () => {
    expect(loadConfig({ env: { FLEETMQ_DYNAMODB__ENDPOINT: 'http://localhost:8000' } }).auth.allowAnonymous).toBe(true);
  });
});

describe('parseListenerUrls', () => {
  it('parses tcp and ws URLs with default ports and paths', () => {
    expect(parseListenerUrls('tcp://0.0.0.0:1883, ws://0.0.0.0:9001/mqtt,tcp://[::1]')).toEqual([
      { type: 'tcp', host: '0.0.0.0', port: 1883 },
      { type: 'ws', host: '0.0.0.0', port: 9001, path: '/mqtt' },
      { type: 'tcp', host: '::1', port: 1883 },
    ]);
  });

  it('feeds the listener schema, so a bad scheme is a config error', () => {
    const err = errorOf(() => loadConfig({ env: { FLEETMQ_LISTENERS: 'udp://0.0.0.0:1883' } }));
    expect(err.key).toBe('listeners[0].type');
  });

  it('refuses what is not a URL', () => {
    expect(errorOf(() => parseListenerUrls('1883')).key).toBe('FLEETMQ_LISTENERS');
  });
});

describe('auth and limits', () => {
  it('default to anonymous access, no ACL and no limits beyond the mqtt section', () => {
    const { auth, limits } = parseConfig({});
    expect(auth).toEqual({ allowAnonymous: true, watchFiles: true, aclSubscribe: 'covered', failureThrottle: { burst: 10, perSecond: 0.2 } });
    expect(limits).toEqual({ maximumQoS: 2, retain: 'allowed' });
  });

  it('turn anonymous access off by default once a provider is configured; an explicit value wins', () => {
    expect(parseConfig({ auth: { passwordFile: '/etc/fleetmq/passwd' } }).auth.allowAnonymous).toBe(false);
    expect(parseConfig({ auth: { usernameFromCertificate: 'CN' } }).auth.allowAnonymous).toBe(false);
    expect(parseConfig({ auth: { passwordFile: '/etc/fleetmq/passwd', allowAnonymous: true } }).auth.allowAnonymous).toBe(true);
    expect(parseConfig({ auth: { aclFile: '/etc/fleetmq/acl' } }).auth.allowAnonymous).toBe(true); // an ACL alone authenticates nobody
  });

  it('fill JWT defaults', () => {
    expect(parseConfig({ auth: { jwt: { publicKeyFile: '/k.pem', audience: 'mqtt' } } }).auth.jwt).toEqual({
      publicKeyFile: '/k.pem',
      audience: 'mqtt',
      usernameClaim: 'sub',
      groupsClaim: 'groups',
      aclClaim: 'acl',
      requireClientIdClaim: false,
      requireExpiry: true,
      clockToleranceSeconds: 0,
    });
  });

  it('a JWT section needs exactly one key source, and never prints the secret', () => {
    const none = errorOf(() => parseConfig({ auth: { jwt: { audience: 'x' } } }));
    expect(none.key).toBe('auth.jwt');
    expect(none.message).toContain('no key given');
    expect(none.hint).toBe('give exactly one of jwt.secret, jwt.secretFile, jwt.publicKeyFile, jwt.jwksFile');
    const two = errorOf(() => parseConfig({ auth: { jwt: { secret: 'top-secret-value-top-secret-value', jwksFile: '/j.json' } } }));
    expect(two.key).toBe('auth.jwt');
    expect(two.message).toContain('secret and jwksFile given together');
    expect(two.message).not.toContain('top-secret-value');
    const badSecret = errorOf(() => parseConfig({ auth: { jwt: { secret: 12345 } } }));
    expect(badSecret.key).toBe('auth.jwt.secret');
    expect(badSecret.message).not.toContain('12345');
  });

  it('requireClientIdClaim needs clientIdClaim', () => {
    const err = errorOf(() => parseConfig({ auth: { jwt: { secretFile: '/s', requireClientIdClaim: true } } }));
    expect(err.key).toBe('auth.jwt.requireClientIdClaim');
    expect(err.hint).toContain('clientIdClaim');
  });

  it('shared access needs keys; device tokens need their file', () => {
    expect(errorOf(() => parseConfig({ auth: { sharedAccess: { resource: 'hub/devices/%c' } } })).key).toBe('auth.sharedAccess');
    expect(errorOf(() => parseConfig({ auth: { deviceTokens: {} } })).key).toBe('auth.deviceTokens.tokensFile');
    expect(parseConfig({ auth: { deviceTokens: { tokensFile: '/t' } } }).auth.deviceTokens).toEqual({ tokensFile: '/t', username: 'use-token-auth' });
  });

  it('a misspelt auth key suggests the right one', () => {
    const err = errorOf(() => parseConfig({ auth: { passwdFile: '/p' } }));
    expect(err.key).toBe('auth.passwdFile');
    expect(err.hint).toBe('did you mean passwordFile?');
  });

  it('usernameFromCertificate takes an attribute name', () => {
    expect(parseConfig({ auth: { usernameFromCertificate: 'serialNumber' } }).auth.usernameFromCertificate).toBe('serialNumber');
    expect(errorOf(() => parseConfig({ auth: { usernameFromCertificate: 'C N' } })).hint).toBe('use a subject attribute name such as CN or serialNumber');
  });

  it('limits: retain, payload size and publish rate, with the burst defaulting to the rate rounded up', () => {
    const { limits } = parseConfig({ limits: { retain: 'stripped', maxPayloadSize: 131072, publishRate: { perSecond: 2.5 } } });
    expect(limits).toEqual({ maximumQoS: 2, retain: 'stripped', maxPayloadSize: 131072, publishRate: { perSecond: 2.5, burst: 3 } });
    expect(parseConfig({ limits: { publishRate: { perSecond: 0.1 } } }).limits.publishRate).toEqual({ perSecond: 0.1, burst: 1 });
    expect(parseConfig({ limits: { publishRate: { perSecond: 10, burst: 50 } } }).limits.publishRate).toEqual({ perSecond: 10, burst: 50 });
  });

  it('limits errors name the key and the fix', () => {
    const retain = errorOf(() => parseConfig({ limits: { retain: 'drop' } }));
    expect(retain.key).toBe('limits.retain');
    expect(retain.hint).toBe('use allowed or stripped');
    const rate = errorOf(() => parseConfig({ limits: { publishRate: { perSecond: 0 } } }));
    expect(rate.key).toBe('limits.publishRate.perSecond');
    expect(rate.hint).toContain('per second');
    expect(errorOf(() => parseConfig({ limits: { maxPayloadSize: -1 } })).key).toBe('limits.maxPayloadSize');
    expect(errorOf(() => parseConfig({ limits: { publishRate: { perSecond: 1, burst: 0.5 } } })).key).toBe('limits.publishRate.burst');
  });

  it('maximum QoS: mqtt.maximumQoS is the ceiling (policies may not pass it); limits.maximumQoS shows what applies', () => {
    const a = parseConfig({ limits: { maximumQoS: 1 } });
    expect([a.mqtt.maximumQoS, a.limits.maximumQoS]).toEqual([2, 1]);
    const b = parseConfig({ mqtt: { maximumQoS: 0 }, limits: { maximumQoS: 2 } });
    expect([b.mqtt.maximumQoS, b.limits.maximumQoS]).toEqual([0, 0]);
  });

  it('come from the environment like every key', () => {
    const config = loadConfig({
      env: { FLEETMQ_LIMITS__PUBLISH_RATE__PER_SECOND: '4', FLEETMQ_LIMITS__RETAIN: 'stripped', FLEETMQ_AUTH__JWT__SECRET: 'x'.repeat(40) },
    });
    expect(config.limits).toMatchObject({ retain: 'stripped', publishRate: { perSecond: 4, burst: 4 } });
    expect(config.auth.jwt?.secret).toBe('x'.repeat(40));
    expect(config.auth.allowAnonymous).toBe(false);
  });

  it('redactSecrets hides the JWT secret and shared-access keys for printing', () => {
    const config = parseConfig({ auth: { jwt: { secret: 's'.repeat(40) }, sharedAccess: { keys: { 'dev-1': 'a2V5' }, policies: { svc: 'cG9s' } } } });
    const shown = JSON.stringify(redactSecrets(config));
    expect(shown).not.toContain('s'.repeat(40));
    expect(shown).not.toContain('a2V5');
    expect(shown).not.toContain('cG9s');
    expect(redactSecrets(config).auth.sharedAccess?.keys).toEqual({ 'dev-1': '[redacted]' });
    expect(config.auth.jwt?.secret).toBe('s'.repeat(40)); // the config itself is unchanged
  });
});

describe('policies and connection limits', () => {
  const listeners = [
    { type: 'tcp', name: 'public', port: 1883, maxConnections: 1000, connectionRate: { perSecond: 50 } },
    { type: 'tcp', name: 'internal', port: 1884 },
  ];

  it('take limits per listener, user, group and client ID, with bursts filled in', () => {
    const config = parseConfig({
      listeners,
      groups: { gateways: ['gw-1'] },
      policies: [
        { name: 'gateways', match: { groups: ['gateways'] }, limits: { maxInflight: 100, publishRate: { perSecond: 2.5 } } },
        { match: { listeners: ['public'], clientIds: ['sensor-*'] }, limits: { maximumQoS: 1, maxPacketSize: 4096, maxQueued: 10, retain: 'stripped' } },
      ],
    });
    expect(config.listeners[0]).toMatchObject({ name: 'public', maxConnections: 1000, connectionRate: { perSecond: 50, burst: 50 } });
    expect(config.listeners[1]!.connectionRate).toBeUndefined();
    expect(config.groups).toEqual({ gateways: ['gw-1'] });
    expect(config.policies[0]!.limits).toEqual({ maxInflight: 100, publishRate: { perSecond: 2.5, burst: 3 } });
    expect(config.policies[1]!.match).toEqual({ listeners: ['public'], clientIds: ['sensor-*'] });
    expect(parseConfig({}).policies).toEqual([]);
  });

  it('errors name the key and the fix', () => {
    const noMatch = errorOf(() => parseConfig({ policies: [{ match: {}, limits: { maxQueued: 1 } }] }));
    expect(noMatch.key).toBe('policies[0].match');
    expect(noMatch.message).toContain('give listeners, users, groups or clientIds');
    const listener = errorOf(() => parseConfig({ listeners, policies: [{ match: { listeners: ['publik'] }, limits: {} }] }));
    expect(listener.key).toBe('policies[0].match.listeners[0]');
    expect(listener.hint).toBe('use one of public, internal (listeners[].name)');
    expect(parseConfig({ listeners, policies: [{ match: { listeners: ['pub*'] }, limits: {} }] }).policies).toHaveLength(1);
    const unknown = errorOf(() => parseConfig({ policies: [{ match: { users: ['a'] }, limits: { maxInflights: 3 } }] }));
    expect(unknown.key).toBe('policies[0].limits.maxInflights');
    expect(unknown.hint).toBe('did you mean maxInflight?');
    const qos = errorOf(() => parseConfig({ policies: [{ match: { users: ['a'] }, limits: { maximumQoS: 3 } }] }));
    expect(qos.message).toContain('3 is invalid'); // policy values are shown: they are not secrets
    expect(qos.hint).toBe('use 0, 1 or 2');
    expect(errorOf(() => parseConfig({ listeners: [{ type: 'tcp', port: 1, maxConnections: 0 }] })).key).toBe('listeners[0].maxConnections');
    expect(errorOf(() => parseConfig({ listeners: [{ type: 'tcp', port: 1, connectionRate: { perSecond: 0 } }] })).hint).toContain('new connections per second');
  });
});
