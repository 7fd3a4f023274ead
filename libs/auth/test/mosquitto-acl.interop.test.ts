import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Acl, formatPasswordFile, hashPassword, type AclAction } from '@fleetmq/auth';
import { startMosquitto, tempDir, type MosquittoBroker } from './support.js';

// A differential test: the same acl_file in Debian's real mosquitto 2.0.11 and in FleetMQ's
// Acl, asked the same questions. Publish: an MQTT 5 client's PUBACK carries 0x87 when
// Mosquitto denies the write. Read: the client subscribes to the probe topic (Mosquitto
// 2.0 accepts every subscription), an admin publishes the probe and then a sentinel the
// client may always read; the probe arrives first exactly when Mosquitto allows the read.

const ACL_FILE = [
  '# rules for alice',
  'user alice',
  'topic readwrite home/#',
  'topic deny home/secret',
  'topic read status/+',
  'topic write cmd/alice',
  'user roger',
  'topic foo/bar',
  'topic read $SYS/broker/connection/#',
  'user admin',
  'topic readwrite #',
  'topic readwrite $SYS/#',
  '# patterns apply to everyone',
  'pattern write $SYS/broker/connection/%c/state',
  'pattern write sensor/%u/data',
  'pattern read sentinel/%c',
  'pattern readwrite devices/%c/#',
  'pattern deny devices/%c/locked',
  'pattern deny home/%c/private',
].join('\n');

const PASSWORD = 'interop-pw';
type Case = readonly [username: string, clientId: string, action: Exclude<AclAction, 'subscribe'>, topic: string];

const CASES: readonly Case[] = [
  ['alice', 'a1', 'publish', 'home/kitchen'],
  ['alice', 'a1', 'publish', 'home/secret'],
  ['alice', 'a1', 'publish', 'status/x'],
  ['alice', 'a1', 'publish', 'cmd/alice'],
  ['alice', 'a1', 'publish', 'devices/a1/t'],
  ['alice', 'a1', 'publish', 'devices/a1/locked'],
  ['alice', 'a1', 'publish', 'devices/a2/t'],
  ['alice', 'a1', 'publish', 'sensor/alice/data'],
  ['alice', 'a1', 'publish', 'sensor/bob/data'],
  ['alice', 'a1', 'publish', '$SYS/broker/connection/a1/state'],
  ['alice', 'a1', 'publish', '$SYS/broker/connection/a2/state'],
  ['alice', 'a1', 'publish', 'other'],
  ['roger', 'r1', 'publish', 'foo/bar'],
  ['roger', 'r1', 'publish', 'foo/baz'],
  ['roger', 'r1', 'publish', '$SYS/broker/connection/r1/state'],
  ['fred', 'f1', 'publish', 'sensor/fred/data'],
  ['fred', 'f1', 'publish', 'foo/bar'],
  ['fred', 'f1', 'publish', 'devices/f1/x'],
  ['admin', 'adm', 'publish', 'anything/at/all'],
  ['admin', 'adm', 'publish', '$SYS/broker/load'],
  ['alice', 'a1', 'read', 'home/kitchen'],
  ['alice', 'a1', 'read', 'home/secret'],
  ['alice', 'a1', 'read', 'status/x'],
  ['alice', 'a1', 'read', 'status/x/y'],
  ['alice', 'a1', 'read', 'cmd/alice'],
  ['alice', 'a1', 'read', 'devices/a1/t'],
  ['alice', 'a1', 'read', 'devices/a1/locked'],
  ['alice', 'a1', 'read', 'devices/a2/t'],
  ['alice', 'a1', 'read', '$SYS/broker/connection/a1/state'],
  ['roger', 'r1', 'read', 'foo/bar'],
  ['roger', 'r1', 'read', '$SYS/broker/connection/zz/state'],
  ['roger', 'r1', 'read', 'sensor/roger/data'],
  ['fred', 'f1', 'read', 'devices/f1/q'],
  ['fred', 'f1', 'read', 'devices/f2/q'],
];

let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
let broker: MosquittoBroker;
let admin: MqttClient;
const acl = Acl.parse(ACL_FILE);
const clients: MqttClient[] = [];

async function connect(username: string, clientId: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, {
    protocolVersion: 5,
    clientId,
    username,
    password: PASSWORD,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  clients.push(c);
  return c;
}

async function mosquittoAllowsPublish(username: string, clientId: string, topic: string): Promise<boolean> {
  const c = await connect(username, clientId);
  try {
    await c.publishAsync(topic, 'probe', { qos: 1 });
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === 0x87) return false;
    throw err;
  } finally {
    await c.endAsync();
  }
}

async function mosquittoAllowsRead(username: string, clientId: string, topic: string): Promise<boolean> {
  const c = await connect(username, clientId);
  const got: string[] = [];
  const sentinel = `sentinel/${clientId}`;
  const done = new Promise<void>((resolve) => {
    c.on('message', (t) => {
      got.push(t);
      if (t === sentinel) resolve();
    });
  });
  await c.subscribeAsync([topic, sentinel], { qos: 1 });
  await admin.publishAsync(topic, 'probe', { qos: 1 });
  await admin.publishAsync(sentinel, 'end', { qos: 1 });
  await done;
  await c.endAsync();
  return got[0] === topic;
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  const passwordFile = join(dir, 'passwd');
  const aclFile = join(dir, 'acl');
  const hash = await hashPassword(PASSWORD, { iterations: 101 });
  await writeFile(passwordFile, formatPasswordFile(['alice', 'roger', 'fred', 'admin'].map((username) => ({ username, hash }))), { mode: 0o600 });
  await writeFile(aclFile, `${ACL_FILE}\n`, { mode: 0o600 });
  broker = await startMosquitto(dir, { passwordFile, aclFile });
  admin = await connect('admin', 'adm-publisher');
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
  await broker?.stop();
  await cleanup();
});

const user = (username: string) => ({ provider: 'password-file', username, groups: [] as string[] });

describe('the same acl_file: mosquitto 2.0.11 and FleetMQ agree', () => {
  it.each(CASES)('%s (%s) %s %s', async (username, clientId, action, topic) => {
    const mosquitto = action === 'publish' ? await mosquittoAllowsPublish(username, clientId, topic) : await mosquittoAllowsRead(username, clientId, topic);
    expect(acl.check(user(username), clientId, action, topic)).toBe(mosquitto);
  });

  it('the table exercises both answers', () => {
    const answers = CASES.map(([u, c, a, t]) => acl.check(user(u), c, a, t));
    expect(answers.filter(Boolean).length).toBeGreaterThanOrEqual(12);
    expect(answers.filter((x) => !x).length).toBeGreaterThanOrEqual(12);
  });
});

describe('where FleetMQ is deliberately stricter', () => {
  it('a deny pattern beats a user grant: Mosquitto checks the user section first and allows', async () => {
    expect(await mosquittoAllowsPublish('alice', 'a1', 'home/a1/private')).toBe(true);
    expect(acl.check(user('alice'), 'a1', 'publish', 'home/a1/private')).toBe(false);
  });

  it('SUBSCRIBE: Mosquitto 2.0 accepts any filter (it checks only delivery); FleetMQ refuses one no read rule covers', async () => {
    const c = await connect('alice', 'a-sub');
    const granted = await c.subscribeAsync('elsewhere/#', { qos: 1 });
    await c.endAsync();
    expect(granted[0]?.qos).toBe(1);
    expect(acl.check(user('alice'), 'a-sub', 'subscribe', 'elsewhere/#')).toBe(false);
    expect(Acl.parse(ACL_FILE, { subscribe: 'mosquitto' }).check(user('alice'), 'a-sub', 'subscribe', 'elsewhere/#')).toBe(true);
  });
});
