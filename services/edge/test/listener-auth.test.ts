import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '@fleetmq/auth';
import { ConfigError } from '@fleetmq/protocol';
import { connectMqtt, createMqtt, endMqttClients, once } from '../../../test/support/clients.js';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startNode, type RunningNode } from '../src/main.js';

// Issue "Security" item 3: a chain of authentication providers per listener. One node, three
// listeners: `devices` takes JWTs only, `gateways` the node's whole chain (password file and
// JWT), `local` lets anonymous clients in (a sidecar on the pod's loopback).

const JWT_SECRET = 'a shared secret of at least thirty-two bytes!';
let dir: string;
let node: RunningNode;
const url: Record<string, string> = {};

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fleetmq-listener-auth-'));
  const passwordFile = path.join(dir, 'passwd');
  writeFileSync(passwordFile, `gateway:${await hashPassword('gateway-pw', { iterations: 10 })}\n`);
  const config = parseConfig({
    nodeId: 'listener-auth',
    log: { level: process.env.FLEETMQ_TEST_LOG ?? 'silent' },
    listeners: [
      { type: 'tcp', name: 'devices', port: 0, auth: { providers: ['jwt'] } },
      { type: 'tcp', name: 'gateways', port: 0 },
      { type: 'tcp', name: 'local', port: 0, auth: { providers: [], allowAnonymous: true } },
    ],
    auth: { passwordFile, jwt: { secret: JWT_SECRET }, failureThrottle: false },
    ops: { enabled: false },
  });
  node = await startNode(config, createLogger(config.log.level, process.stderr));
  for (const a of node.addresses()) url[a.name] = `mqtt://127.0.0.1:${a.port}`;
});

afterEach(async () => {
  await endMqttClients();
});

afterAll(async () => {
  await node?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const jwt = (sub: string) =>
  new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('10m').sign(new TextEncoder().encode(JWT_SECRET));

/** Resolves with the CONNACK code of a client that must be refused (5.0 reason code, 3.1.1 return code). */
async function refused(listener: string, opts: Record<string, unknown>): Promise<number> {
  const client = createMqtt(url[listener]!, opts);
  client.once('connect', () => client.emit('error', Object.assign(new Error('accepted'), { code: -1 })));
  const [err] = await once<[Error & { code?: number }]>(client, 'error');
  return err.code ?? -1;
}

describe('authentication per listener', () => {
  it('a listener that names its providers takes only those: a JWT gets in on devices, the password file user does not', async () => {
    await connectMqtt(url.devices!, { protocolVersion: 5, clientId: 'dev-1', username: 'dev-1', password: await jwt('dev-1') });
    expect(await refused('devices', { protocolVersion: 5, clientId: 'gw-1', username: 'gateway', password: 'gateway-pw' })).toBe(0x86);
    expect(await refused('devices', { protocolVersion: 4, clientId: 'gw-1', username: 'gateway', password: 'gateway-pw' })).toBe(4);
  });

  it('a listener without an auth section uses the node chain: password and JWT both get in, anonymous does not', async () => {
    await connectMqtt(url.gateways!, { protocolVersion: 5, clientId: 'gw-1', username: 'gateway', password: 'gateway-pw' });
    await connectMqtt(url.gateways!, { protocolVersion: 4, clientId: 'dev-2', username: 'dev-2', password: await jwt('dev-2') });
    expect(await refused('gateways', { protocolVersion: 5, clientId: 'anon' })).toBe(0x87);
    expect(await refused('gateways', { protocolVersion: 4, clientId: 'anon' })).toBe(5);
  });

  it('a listener may let anonymous clients in where the node does not', async () => {
    await connectMqtt(url.local!, { protocolVersion: 5, clientId: 'sidecar' });
    expect(await refused('devices', { protocolVersion: 5, clientId: 'anon' })).toBe(0x87);
  });

  it('refuses at start a listener naming a provider the auth section does not configure, naming the key', () => {
    const bad = () => parseConfig({ listeners: [{ type: 'tcp', port: 1883, auth: { providers: ['sharedAccess'] } }], auth: { jwt: { secret: JWT_SECRET } } });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/listeners\[0\]\.auth\.providers\[0\]/);
  });
});
