/**
 * End to end: an edge node started from config with a Mosquitto password file made by
 * Debian's real mosquitto_passwd, an acl_file, an HS256 JWT provider and policy limits,
 * driven by mosquitto_pub / mosquitto_sub and mqtt.js.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import type { IDisconnectPacket } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSasToken, hashPassword } from '@fleetmq/auth';
import { defaultClientLimits, type ClientInfo, type ConnectionInfo } from '@fleetmq/broker';
import { ConfigError } from '@fleetmq/protocol';
import { makePki, type TestPki } from '@fleetmq/testkit';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startNode, type RunningNode } from '../src/main.js';
import { brokerSecurity } from '../src/security.js';
import {
  Inbox,
  MosquittoSub,
  connectMqtt,
  createMqtt,
  endMqttClients,
  killSpawned,
  mosquittoPub,
  once,
  quietPeriod,
  subackCodes,
  type MosquittoVersion,
} from '../../../test/support/clients.js';

const JWT_SECRET = 'a test secret that is at least 32 bytes long';
const AUDIENCE = 'fleetmq-test';

const ACL = `# Mosquitto acl_file
user alice
topic readwrite fleet/alice/#
topic read fleet/public/#

user bob
topic readwrite fleet/bob/#

user watcher
topic read fleet/#
topic read $SYS/#

pattern readwrite devices/%c/#
`;


describe('edge node security from config (password file, acl_file, JWT, limits)', () => {
  let dir: string;
  let node: RunningNode;
  let port: number;
  let url: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'fleetmq-security-'));
    const passwd = path.join(dir, 'passwd');
    // Debian's mosquitto_passwd writes the file ($7$, 101 rounds)
    execFileSync('/usr/bin/mosquitto_passwd', ['-b', '-c', passwd, 'alice', 'alice-pw']);
    execFileSync('/usr/bin/mosquitto_passwd', ['-b', passwd, 'bob', 'bob-pw']);
    execFileSync('/usr/bin/mosquitto_passwd', ['-b', passwd, 'watcher', 'watcher-pw']);
    const aclFile = path.join(dir, 'acl');
    writeFileSync(aclFile, ACL);
    const config = parseConfig({
      nodeId: 'security-node',
      log: { level: process.env.FLEETMQ_TEST_LOG ?? 'silent' },
      ops: { port: 0 },
      listeners: [{ type: 'tcp', name: 'tcp', host: '127.0.0.1', port: 0 }],
      auth: {
        passwordFile: passwd,
        aclFile,
        jwt: { secret: JWT_SECRET, audience: AUDIENCE, clientIdClaim: 'client_id' },
        failureThrottle: false, // this file makes many failed attempts from 127.0.0.1 on purpose
      },
      limits: { retain: 'stripped', publishRate: { perSecond: 5, burst: 20 } },
    });
    expect(config.auth.allowAnonymous).toBe(false); // providers configured: anonymous off by default
    node = await startNode(config, createLogger(config.log.level, process.stderr));
    port = node.addresses()[0]!.port;
    url = `mqtt://127.0.0.1:${port}`;
  });

  afterEach(async () => {
    killSpawned();
    await endMqttClients();
  });

  afterAll(async () => {
    await node?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const pub = (version: MosquittoVersion, user: string | undefined, password: string | undefined, topic: string, qos: 0 | 1 | 2 = 1, extra: string[] = []) =>
    mosquittoPub({
      port,
      version,
      topic,
      message: `${user ?? 'anonymous'} says hi`,
      qos,
      extra: [...(user !== undefined ? ['-u', user] : []), ...(password !== undefined ? ['-P', password] : []), ...extra],
    });

  async function watcher(filters: string[]): Promise<Inbox> {
    const w = await connectMqtt(url, { protocolVersion: 5, clientId: `watcher-${Math.random().toString(36).slice(2)}`, username: 'watcher', password: 'watcher-pw' });
    const inbox = new Inbox(w);
    await w.subscribeAsync(filters, { qos: 1, rap: true });
    return inbox;
  }

  describe('authentication with the mosquitto_passwd file', () => {
    it.each([
      ['mqttv311', 'alice', 'alice-pw', 0, ''],
      ['mqttv5', 'alice', 'alice-pw', 0, ''],
      ['mqttv311', 'alice', 'wrong', 4, 'Connection Refused: bad user name or password.'],
      ['mqttv5', 'alice', 'wrong', 0x86, 'Bad User Name or Password'],
      ['mqttv311', 'mallory', 'x', 4, 'Connection Refused: bad user name or password.'],
      ['mqttv311', undefined, undefined, 5, 'Connection Refused: not authorised.'],
      ['mqttv5', undefined, undefined, 0x87, 'Not authorized'],
    ] as const)('%s user %s password %s → CONNACK %i', async (version, user, password, connack, message) => {
      const r = await pub(version, user, password, 'fleet/alice/hello');
      // mosquitto_pub exits with the CONNACK code when refused
      expect(r.exit.code).toBe(connack);
      expect(r.stdout).toContain(`received CONNACK (${connack})`);
      if (connack !== 0) expect(r.stderr).toContain(message);
    });
  });

  describe('the acl_file', () => {
    it.each(['mqttv311', 'mqttv5'] as const)('%s: a denied PUBLISH is not delivered (3.1.1 acknowledged, 5.0 PUBACK 0x87)', async (version) => {
      const inbox = await watcher(['fleet/#']);
      const denied = await pub(version, 'alice', 'alice-pw', 'fleet/bob/status');
      expect(denied.stdout).toContain(version === 'mqttv5' ? 'received PUBACK (Mid: 1, RC:135)' : 'received PUBACK (Mid: 1, RC:0)');
      if (version === 'mqttv5') expect(denied.stderr).toContain('Publish 1 failed: Not authorized.');
      const allowed = await pub(version, 'alice', 'alice-pw', 'fleet/alice/status');
      expect(allowed.exit.code).toBe(0);
      const [m] = await inbox.wait(1);
      await quietPeriod(200);
      expect(inbox.messages.map((x) => x.topic)).toEqual(['fleet/alice/status']);
      expect(m!.payload).toBe('alice says hi');
    });

    it('pattern %c: a client reads and writes its own device topics, not another one\'s', async () => {
      const dev7 = await connectMqtt(url, { protocolVersion: 4, clientId: 'dev-7', username: 'bob', password: 'bob-pw' });
      const inbox = new Inbox(dev7);
      expect(await subackCodes(dev7, { 'devices/dev-7/#': { qos: 1 }, 'devices/dev-8/#': { qos: 1 } })).toEqual([1, 0x80]);
      const other = await pub('mqttv311', 'bob', 'bob-pw', 'devices/dev-7/cmd', 1, ['-i', 'dev-8']);
      expect(other.stdout).toContain('received PUBACK (Mid: 1, RC:0)'); // acknowledged and dropped
      await dev7.publishAsync('devices/dev-7/echo', 'mine', { qos: 1 });
      await inbox.wait(1);
      await quietPeriod(200);
      expect(inbox.messages.map((m) => [m.topic, m.payload])).toEqual([['devices/dev-7/echo', 'mine']]);
    });

    it.each([
      [4, 0x80],
      [5, 0x87],
    ] as const)('MQTT %i: a denied SUBSCRIBE gets %i, an allowed filter in the same packet is granted', async (protocolVersion, failure) => {
      const c = await connectMqtt(url, { protocolVersion, clientId: `sub-${protocolVersion}`, username: 'alice', password: 'alice-pw' });
      expect(await subackCodes(c, { 'fleet/bob/#': { qos: 1 }, 'fleet/public/#': { qos: 1 } })).toEqual([failure, 1]);
    });

    it('mosquitto_sub 3.1.1 sees SUBACK 0x80 for a filter the ACL does not cover', async () => {
      const sub = new MosquittoSub({ port, version: 'mqttv311', topics: ['fleet/bob/#'], qos: 1, timeoutSec: 3, extra: ['-u', 'alice', '-P', 'alice-pw'] });
      // mosquitto_sub prints "received SUBACK" and then, on a line of its own, the granted codes
      await sub.waitForLines((l) => l.startsWith('Subscribed (mid: 1)'));
      expect(sub.lines.join('\n')).toMatch(/Subscribed \(mid: 1\): 128/);
    });

    it('$SYS/x cannot be published, even by a client the ACL lets read $SYS', async () => {
      const inbox = await watcher(['$SYS/#']);
      const c = await connectMqtt(url, { protocolVersion: 5, clientId: 'sys-forger', username: 'watcher', password: 'watcher-pw' });
      await expect(c.publishAsync('$SYS/x', 'forged', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
      const r = await pub('mqttv311', 'alice', 'alice-pw', '$SYS/x');
      expect(r.stdout).toContain('received PUBACK (Mid: 1, RC:0)'); // 3.1.1: acknowledged and dropped
      await quietPeriod(300);
      expect(inbox.messages).toEqual([]);
    });
  });

  describe('JWT (HS256) as the password', () => {
    const token = (claims: Record<string, unknown>, expiresIn: string | number = '10m') =>
      new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setAudience(AUDIENCE).setIssuedAt().setExpirationTime(expiresIn).sign(new TextEncoder().encode(JWT_SECRET));

    it('lets the device in; the ACL claim and the acl_file patterns decide its topics', async () => {
      const jwt = await token({ sub: 'device-9', client_id: 'device-9', acl: { pub: ['telemetry/device-9/#'], sub: ['commands/device-9/#'] } });
      const c = await connectMqtt(url, { protocolVersion: 5, clientId: 'device-9', username: 'device-9', password: jwt });
      await c.publishAsync('telemetry/device-9/temp', '20', { qos: 1 });
      await c.publishAsync('devices/device-9/state', 'on', { qos: 1 }); // pattern readwrite devices/%c/#
      await expect(c.publishAsync('fleet/alice/x', 'no', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
      expect(await subackCodes(c, { 'commands/device-9/#': { qos: 1 }, 'telemetry/#': { qos: 1 } })).toEqual([1, 0x87]);
      // mosquitto_pub with the token as its password works too
      const r = await pub('mqttv5', 'device-9', jwt, 'telemetry/device-9/temp', 1, ['-i', 'device-9']);
      expect(r.exit.code).toBe(0);
      expect(r.stdout).toContain('received PUBACK (Mid: 1, RC:0)');
    });

    it('an expired token, one signed with another secret and one for another client ID are refused', async () => {
      const expired = await token({ sub: 'device-9' }, Math.floor(Date.now() / 1000) - 60);
      expect((await pub('mqttv5', 'device-9', expired, 'telemetry/device-9/t')).exit.code).toBe(0x86);
      const forged = await new SignJWT({ sub: 'device-9' })
        .setProtectedHeader({ alg: 'HS256' })
        .setAudience(AUDIENCE)
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode('another secret that is also long enough!!'));
      expect((await pub('mqttv311', 'device-9', forged, 'telemetry/device-9/t')).exit.code).toBe(4);
      const otherClient = await token({ sub: 'device-9', client_id: 'device-9' });
      expect((await pub('mqttv5', 'device-9', otherClient, 'telemetry/device-9/t', 1, ['-i', 'device-10'])).exit.code).toBe(0x87);
    });
  });

  describe('policy limits', () => {
    it('publishing faster than limits.publishRate ends in DISCONNECT 0x96', async () => {
      const c = createMqtt(url, { protocolVersion: 5, clientId: 'too-fast', username: 'bob', password: 'bob-pw', reconnectPeriod: 0 });
      await once(c, 'connect');
      const disconnected = once<[IDisconnectPacket]>(c, 'disconnect');
      for (let i = 0; i < 40; i++) c.publish('fleet/bob/fast', String(i), { qos: 0 });
      const [packet] = await disconnected;
      expect(packet.reasonCode).toBe(0x96);
    });

    it('a retained PUBLISH is acknowledged, delivered without the retain flag, and not kept (retain: stripped)', async () => {
      const live = await watcher(['fleet/alice/retained']);
      const r = await pub('mqttv311', 'alice', 'alice-pw', 'fleet/alice/retained', 1, ['-r']);
      expect(r.stdout).toContain('received PUBACK (Mid: 1, RC:0)');
      const [m] = await live.wait(1);
      expect(m!.packet.retain).toBe(false); // the live subscriber asked for Retain As Published
      const late = new MosquittoSub({ port, version: 'mqttv311', topics: ['fleet/alice/retained'], qos: 1, timeoutSec: 2, extra: ['-u', 'alice', '-P', 'alice-pw'] });
      await late.subscribed();
      await late.waitExit(5000);
      expect(late.messages).toEqual([]);
    });
  });
});

describe('brokerSecurity: building the chain and the ACL from config', () => {
  const log = createLogger('silent');
  const dirs: string[] = [];
  const temp = (name: string, text: string): string => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fleetmq-security-unit-'));
    dirs.push(dir);
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const client = (over: Partial<Omit<ClientInfo, 'password'>> & { password?: string }): ClientInfo => {
    const { password, ...rest } = over;
    return {
      clientId: 'dev-1',
      username: undefined,
      protocolVersion: 5,
      transport: 'tcp',
      listener: 'tcp',
      remoteAddress: '192.0.2.1',
      ...rest,
      password: password === undefined ? undefined : Buffer.from(password),
    };
  };
  const info: ConnectionInfo = { transport: 'tcp', listener: 'tcp', remoteAddress: '192.0.2.1', remotePort: 1 };

  function configError(raw: Record<string, unknown>): ConfigError {
    try {
      brokerSecurity(parseConfig(raw), log);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return err as ConfigError;
    }
    throw new Error('expected a ConfigError');
  }

  it('without providers and with anonymous access: everyone in, every topic but reserved ones', async () => {
    const s = brokerSecurity(parseConfig({}), log);
    expect(await s.authenticator.authenticate(client({}))).toEqual({ ok: true });
    expect(s.authorizer.forClient(undefined, 'c', info).check('publish', 'any/topic')).toBe(true);
    expect(s.limits).toEqual({ ...defaultClientLimits });
    expect(s.policy).toBeUndefined();
    expect(s.listenerLimits).toEqual({});
    expect(s.usernameFromCertificate).toBeUndefined();
  });

  it('with anonymous access off and no provider, everyone is refused', async () => {
    const s = brokerSecurity(parseConfig({ auth: { allowAnonymous: false } }), log);
    expect(await s.authenticator.authenticate(client({}))).toMatchObject({ ok: false, reasonCode: 0x87 });
  });

  it('shared access signatures with per-device keys and the resource template', async () => {
    const key = Buffer.alloc(32, 7);
    const s = brokerSecurity(parseConfig({ auth: { sharedAccess: { keys: { 'dev-1': key.toString('base64') }, resource: 'hub.example/devices/%c' } } }), log);
    const token = createSasToken({ resource: 'hub.example/devices/dev-1', key, expiry: Math.floor(Date.now() / 1000) + 600 });
    expect(await s.authenticator.authenticate(client({ password: token }))).toMatchObject({ ok: true, identity: { provider: 'sas-token', username: 'dev-1' } });
    expect(await s.authenticator.authenticate(client({ clientId: 'dev-2', password: token }))).toMatchObject({ ok: false, reasonCode: 0x86 });
  });

  it('device tokens from a YAML map of IBM client IDs to a $7$ hash or a plain token', async () => {
    const hash = await hashPassword('tok-1', { iterations: 10 });
    const file = temp('tokens.yaml', `"d:org:type:dev-1": "${hash}"\n"d:org:type:dev-2": plain-token-2\n`);
    const s = brokerSecurity(parseConfig({ auth: { deviceTokens: { tokensFile: file } } }), log);
    const as = (clientId: string, password: string) => s.authenticator.authenticate(client({ clientId, username: 'use-token-auth', password }));
    expect(await as('d:org:type:dev-1', 'tok-1')).toMatchObject({ ok: true, identity: { provider: 'device-token', username: 'd:org:type:dev-1' } });
    expect(await as('d:org:type:dev-2', 'plain-token-2')).toMatchObject({ ok: true, identity: { username: 'd:org:type:dev-2' } });
    expect(await as('d:org:type:dev-1', 'tok-2')).toMatchObject({ ok: false, reasonCode: 0x86 });
    expect(await as('d:org:type:dev-1', 'plain-token-2')).toMatchObject({ ok: false, reasonCode: 0x86 });
    const broken = configError({ auth: { deviceTokens: { tokensFile: temp('bad.yaml', '"d:o:t:x": "$7$zz$bad"\n') } } });
    expect(broken.key).toBe('auth.deviceTokens.tokensFile "d:o:t:x"');
    expect(broken.message).not.toContain('$7$zz$bad');
  });

  it('without an acl_file, a token with an ACL claim gets exactly its claim; other clients every topic', () => {
    const s = brokerSecurity(parseConfig({ auth: { jwt: { secret: JWT_SECRET } } }), log);
    const device = s.authorizer.forClient({ provider: 'jwt', username: 'd', groups: [], acl: { pub: ['up/d'], sub: [], all: [] } }, 'd', info);
    expect([device.check('publish', 'up/d'), device.check('publish', 'up/e'), device.check('read', 'up/d')]).toEqual([true, false, false]);
    const plain = s.authorizer.forClient({ provider: 'jwt', username: 'p', groups: [] }, 'p', info);
    expect(plain.check('publish', 'up/e')).toBe(true);
  });

  it('file errors name the key, the path and the fix', () => {
    const missing = configError({ auth: { passwordFile: '/nonexistent/passwd' } });
    expect(missing.key).toBe('auth.passwordFile');
    expect(missing.message).toContain('/nonexistent/passwd (ENOENT)');
    expect(missing.hint).toContain('fleetmq passwd -c');
    const acl = configError({ auth: { aclFile: temp('acl', 'user a\ntopic readwrite ok/#\ntopic sometimes x/y\n') } });
    expect(acl.key).toBe('auth.aclFile');
    expect(acl.message).toContain('line 3');
    expect(configError({ auth: { jwt: { jwksFile: temp('jwks.json', '{"nokeys": true}') } } }).message).toContain('no "keys" array');
    expect(configError({ auth: { jwt: { publicKeyFile: temp('k.pem', 'not a key') } } }).key).toBe('auth.jwt.publicKeyFile');
  });

  it('secrets do not appear in errors: a short JWT secret, a key that is not base64', () => {
    const short = configError({ auth: { jwt: { secret: 'short-secret-value' } } });
    expect(short.key).toBe('auth.jwt.secret');
    expect(short.message).toContain('at least 32 bytes');
    expect(short.message).not.toContain('short-secret-value');
    const key = configError({ auth: { sharedAccess: { keys: { 'dev-1': 'not base64 at all!' } } } });
    expect(key.key).toBe('auth.sharedAccess.keys.dev-1');
    expect(key.message).not.toContain('not base64 at all');
  });

  it('a node whose password file is missing fails at start with that ConfigError', async () => {
    const config = parseConfig({ log: { level: 'silent' }, listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], auth: { passwordFile: '/nonexistent/passwd' }, ops: { port: 0 } });
    await expect(startNode(config, log)).rejects.toMatchObject({ key: 'auth.passwordFile' });
  });
});

describe('mutual TLS: the certificate CN becomes the username (auth.usernameFromCertificate)', () => {
  let pki: TestPki;
  let node: RunningNode;
  let port: number;
  beforeAll(async () => {
    pki = makePki();
    const aclFile = path.join(pki.dir, 'acl');
    writeFileSync(aclFile, 'user device-1\ntopic readwrite devices/device-1/#\n');
    const config = parseConfig({
      nodeId: 'mtls-node',
      log: { level: process.env.FLEETMQ_TEST_LOG ?? 'silent' },
      ops: { port: 0 },
      listeners: [
        { type: 'tls', name: 'mtls', host: '127.0.0.1', port: 0, tls: { certFile: pki.server.cert, keyFile: pki.server.key, caFile: pki.ca, clientCertificate: 'optional' } },
      ],
      auth: { usernameFromCertificate: 'CN', aclFile, failureThrottle: false },
    });
    node = await startNode(config, createLogger(config.log.level, process.stderr));
    port = node.addresses()[0]!.port;
  });
  afterEach(async () => {
    killSpawned();
    await endMqttClients();
  });
  afterAll(async () => {
    await node?.stop();
    pki?.cleanup();
  });

  it('a client with a certificate (CN=device-1) is let in without a password and gets device-1’s ACL', async () => {
    const c = await connectMqtt(`mqtts://localhost:${port}`, {
      protocolVersion: 5,
      clientId: 'any-id',
      username: 'admin', // replaced by the certificate's CN
      ca: readFileSync(pki.ca),
      cert: readFileSync(pki.client.cert),
      key: readFileSync(pki.client.key),
    });
    await c.publishAsync('devices/device-1/temp', '20', { qos: 1 });
    await expect(c.publishAsync('devices/device-2/temp', '20', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    const r = await mosquittoPub({
      port,
      version: 'mqttv5',
      topic: 'devices/device-1/temp',
      message: 'from mosquitto_pub',
      qos: 1,
      extra: ['-h', 'localhost', '--cafile', pki.ca, '--cert', pki.client.cert, '--key', pki.client.key],
    });
    expect(r.exit.code).toBe(0);
    expect(r.stdout).toContain('received PUBACK (Mid: 1, RC:0)');
  });

  it('a client without a certificate and without credentials is refused 0x87 (anonymous access is off)', async () => {
    const r = await mosquittoPub({ port, version: 'mqttv5', topic: 'devices/device-1/temp', message: 'x', extra: ['-h', 'localhost', '--cafile', pki.ca] });
    expect(r.exit.code).toBe(0x87);
  });
});
