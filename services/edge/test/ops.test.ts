/**
 * The ops server of a running edge node (in-process, memory backends): /healthz, /readyz,
 * /metrics after real mqtt.js traffic, and every admin API action with its authentication.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { IDisconnectPacket, MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashPassword, upsertUser, writePasswordFile } from '@fleetmq/auth';
import { freePort, makePki } from '@fleetmq/testkit';
import { loadConfig, parseConfig, redactSecrets } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startNode, type RunningNode } from '../src/main.js';
import { adminCli } from '../src/ops/admin-cli.js';
import { Inbox, connectMqtt, createMqtt, endMqttClients, once } from '../../../test/support/clients.js';
import { Ops, sampleKey, sampleOf, type Samples } from './ops-support.js';

const TOKEN = 'ops-test-admin-token-0123456789';
const USERS = { alice: 'alice-pw', bob: 'bob-pw' } as const;

/** Every metric family of the ops contract (README "Operations"). */
const CONTRACT_METRICS = [
  'fleetmq_connections',
  'fleetmq_connections_accepted_total',
  'fleetmq_connections_refused_total',
  'fleetmq_sessions',
  'fleetmq_messages_received_total',
  'fleetmq_messages_sent_total',
  'fleetmq_bytes_received_total',
  'fleetmq_bytes_sent_total',
  'fleetmq_messages_dropped_total',
  'fleetmq_queued_messages',
  'fleetmq_inflight_messages',
  'fleetmq_offline_queued_total',
  'fleetmq_takeovers_total',
  'fleetmq_sessions_expired_total',
  'fleetmq_wills_published_total',
  'fleetmq_sessions_adopted_total',
  'fleetmq_sessions_lost_total',
  'fleetmq_auth_expired_total',
  'fleetmq_auth_reloads_total',
  'fleetmq_auth_attempts_total',
  'fleetmq_authz_denied_total',
  'fleetmq_limit_hits_total',
  'fleetmq_protocol_errors_total',
  'fleetmq_bus_messages_received_total',
  'fleetmq_bus_messages_published_total',
  'fleetmq_backend_request_duration_seconds',
  'fleetmq_backend_errors_total',
  'fleetmq_backend_up',
  'fleetmq_ready',
  'fleetmq_draining',
  'fleetmq_tls_certificate_reloads_total',
  'process_cpu_user_seconds_total',
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_eventloop_lag_seconds',
  'nodejs_heap_size_used_bytes',
];

let dir: string;
let passwordFile: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fleetmq-ops-'));
  passwordFile = path.join(dir, 'passwd');
  let text = '';
  for (const [user, pw] of Object.entries(USERS)) text = upsertUser(text, user, await hashPassword(pw, { iterations: 1 }));
  await writePasswordFile(passwordFile, text);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => endMqttClients());

async function start(overrides: Record<string, unknown>): Promise<RunningNode> {
  const config = parseConfig({
    nodeId: 'ops-node',
    log: { level: process.env.FLEETMQ_TEST_LOG ?? 'silent' },
    listeners: [
      { type: 'tcp', name: 'tcp', host: '127.0.0.1', port: 0 },
      { type: 'ws', name: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
    ],
    auth: { passwordFile, failureThrottle: false },
    ...overrides,
  });
  return startNode(config, createLogger(config.log.level, process.stderr));
}

/** How much a counter grew; a labelled series that did not exist before counts from 0. */
function delta(before: Samples, after: Samples, name: string, labels: Record<string, string | number> = {}): number {
  return sampleOf(after, name, labels) - (before.get(sampleKey(name, labels)) ?? 0);
}

describe('ops server of a running node', () => {
  let node: RunningNode;
  let ops: Ops;
  let tcp: string;
  let ws: string;
  beforeAll(async () => {
    node = await start({ limits: { maxPayloadSize: 1000 }, ops: { port: 0, adminToken: TOKEN } });
    ops = new Ops(node, TOKEN);
    const port = (name: string) => node.addresses().find((a) => a.name === name)!.port;
    tcp = `mqtt://127.0.0.1:${port('tcp')}`;
    ws = `ws://127.0.0.1:${port('ws')}/mqtt`;
  });
  afterAll(() => node?.stop());

  const client = (id: string, opts: Parameters<typeof connectMqtt>[1] = {}, url = tcp): Promise<MqttClient> =>
    connectMqtt(url, { clientId: id, username: 'alice', password: USERS.alice, protocolVersion: 5, ...opts });
  /** Gauges follow connections closing a moment later: wait for the expected value. */
  const gaugeIs = (name: string, labels: Record<string, string | number>, value: number) =>
    vi.waitFor(async () => expect(await ops.value(name, labels)).toBe(value), { timeout: 3000, interval: 20 });

  it('answers /healthz and /readyz, and refuses other methods and unknown routes', async () => {
    expect(node.opsAddress()).toMatchObject({ host: '127.0.0.1' });
    expect(await ops.json('/healthz', 200)).toEqual({ status: 'ok' });
    expect(await ops.json('/readyz', 200)).toEqual({ status: 'ready' });
    expect((await ops.fetch('/readyz', { method: 'HEAD' })).status).toBe(200);
    const post = await ops.fetch('/healthz', { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect(await ops.json('/nothing-here', 404)).toMatchObject({ error: 'not_found' });
    const big = await ops.fetch('/api/v1/node/drain', { method: 'POST', body: 'x'.repeat(100_000) });
    expect(big.status).toBe(413);
    expect(node.draining()).toBe(false);
  });

  it('serves every metric of the contract in Prometheus text format', async () => {
    const res = await ops.fetch('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    for (const name of CONTRACT_METRICS) expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    const samples = await ops.metrics();
    expect(sampleOf(samples, 'fleetmq_ready')).toBe(1);
    expect(sampleOf(samples, 'fleetmq_draining')).toBe(0);
    // a node alone has no backends: no backend series
    expect([...samples.keys()].some((k) => k.startsWith('fleetmq_backend_up{'))).toBe(false);
  });

  it('counts connections, messages by QoS, bytes and bus traffic from real clients', async () => {
    const before = await ops.metrics();
    const sub = await client('traffic-sub', {}, ws);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync('traffic/#', { qos: 2 });
    const pub = await client('traffic-pub', { protocolVersion: 4, username: 'bob', password: USERS.bob });
    await gaugeIs('fleetmq_connections', { listener: 'tcp', protocol: '3.1.1' }, 1);
    await gaugeIs('fleetmq_connections', { listener: 'ws', protocol: '5.0' }, 1);
    await gaugeIs('fleetmq_sessions', { state: 'connected' }, 2);
    const payload = 'p'.repeat(200);
    await pub.publishAsync('traffic/a', payload, { qos: 0 });
    await pub.publishAsync('traffic/a', payload, { qos: 1 });
    await pub.publishAsync('traffic/a', payload, { qos: 2 });
    await inbox.wait(3);
    const after = await ops.metrics();
    for (const qos of [0, 1, 2]) {
      expect(delta(before, after, 'fleetmq_messages_received_total', { qos }), `received qos ${qos}`).toBe(1);
      expect(delta(before, after, 'fleetmq_messages_sent_total', { qos }), `sent qos ${qos}`).toBe(1);
    }
    expect(delta(before, after, 'fleetmq_bytes_received_total')).toBeGreaterThan(3 * payload.length);
    expect(delta(before, after, 'fleetmq_bytes_sent_total')).toBeGreaterThan(3 * payload.length);
    expect(delta(before, after, 'fleetmq_bus_messages_published_total')).toBe(3);
    expect(delta(before, after, 'fleetmq_bus_messages_received_total')).toBe(3);
    expect(delta(before, after, 'fleetmq_connections_accepted_total', { listener: 'tcp' })).toBe(1);
    expect(delta(before, after, 'fleetmq_connections_accepted_total', { listener: 'ws' })).toBe(1);
    expect(delta(before, after, 'fleetmq_auth_attempts_total', { result: 'accepted' })).toBe(2);
    expect(sampleOf(after, 'fleetmq_connections', { listener: 'tcp', protocol: '5.0' })).toBe(0);
    await endMqttClients();
    await gaugeIs('fleetmq_sessions', { state: 'connected' }, 0);
    await gaugeIs('fleetmq_connections', { listener: 'ws', protocol: '5.0' }, 0);
  });

  it('shows inflight and queued messages of a client that does not acknowledge', async () => {
    // Receive Maximum 1 and no PUBACK: one message in flight, the others queued
    const slow = await client('slow-reader', { properties: { receiveMaximum: 1 }, customHandleAcks: () => undefined });
    await slow.subscribeAsync('slow/#', { qos: 1 });
    const pub = await client('slow-pub');
    for (let i = 0; i < 4; i++) await pub.publishAsync('slow/x', `m${i}`, { qos: 1 });
    await gaugeIs('fleetmq_inflight_messages', {}, 1);
    await gaugeIs('fleetmq_queued_messages', {}, 3);
  });

  it('counts refused logins, protocol errors, authorization refusals and limit hits', async () => {
    const before = await ops.metrics();
    for (let i = 0; i < 2; i++) {
      const bad = createMqtt(tcp, { clientId: `bad-${i}`, username: 'alice', password: 'wrong', protocolVersion: 5 });
      const [err] = await once<[Error & { code?: number }]>(bad, 'error');
      expect(err.code).toBe(0x86);
    }
    const c = await client('limited');
    // 5.0: a payload over limits.maxPayloadSize is refused with PUBACK 0x97
    await expect(c.publishAsync('limits/x', Buffer.alloc(2000), { qos: 1 })).rejects.toMatchObject({ code: 0x97 });
    await expect(c.publishAsync('$SYS/x', 'no', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    const after = await ops.metrics();
    expect(delta(before, after, 'fleetmq_auth_attempts_total', { result: 'refused' })).toBe(2);
    expect(delta(before, after, 'fleetmq_auth_attempts_total', { result: 'throttled' })).toBe(0);
    expect(delta(before, after, 'fleetmq_protocol_errors_total')).toBe(2);
    expect(delta(before, after, 'fleetmq_connections_refused_total', { listener: 'tcp', reason: 'bad_user_name_or_password' })).toBe(2);
    expect(delta(before, after, 'fleetmq_connections_refused_total', { listener: 'tcp', reason: 'connections' })).toBe(0);
    expect(delta(before, after, 'fleetmq_limit_hits_total', { limit: 'payload_size' })).toBe(1);
    expect(delta(before, after, 'fleetmq_authz_denied_total', { action: 'publish' })).toBe(1);
  });

  it('counts takeovers and messages kept for offline sessions', async () => {
    const before = await ops.metrics();
    await client('twice', { clean: false, properties: { sessionExpiryInterval: 600 } });
    const second = await client('twice', { clean: false, properties: { sessionExpiryInterval: 600 } });
    await second.subscribeAsync('offline/#', { qos: 1 });
    await second.endAsync();
    const pub = await client('offline-pub');
    await pub.publishAsync('offline/x', 'kept', { qos: 1 });
    await vi.waitFor(async () => expect(delta(before, await ops.metrics(), 'fleetmq_offline_queued_total')).toBe(1), { timeout: 3000 });
    const after = await ops.metrics();
    expect(delta(before, after, 'fleetmq_takeovers_total')).toBe(1);
    expect(sampleOf(after, 'fleetmq_sessions', { state: 'detached' })).toBeGreaterThanOrEqual(1);
    await ops.json('/api/v1/sessions/twice', 200, { method: 'DELETE' });
  });

  it('authenticates the admin API: 401 without or with a wrong token', async () => {
    const none = await ops.fetch('/api/v1/clients', { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="fleetmq-admin"');
    expect(await ops.json('/api/v1/clients', 401, { token: 'not-the-admin-token-at-all' })).toMatchObject({ error: 'unauthorized', message: 'admin token refused' });
    expect(await ops.json('/api/v1/node/drain', 401, { method: 'POST', token: 'x' })).toMatchObject({ error: 'unauthorized' });
    expect(await ops.json('/api/v1/clients', 401, { headers: { Authorization: `Basic ${TOKEN}` }, token: null })).toMatchObject({ error: 'unauthorized' });
    expect(await ops.json('/api/v1/clients', 200)).toMatchObject({ items: [] });
    expect(node.draining()).toBe(false);
  });

  it('lists connected clients page by page', async () => {
    for (const id of ['page-c', 'page-a', 'page-b']) await client(id);
    await client('other-1', { protocolVersion: 4 });
    type Page = { items: { clientId: string; protocol: string; listener: string; username: string }[]; nextCursor: string | null };
    const first = await ops.json<Page>('/api/v1/clients?prefix=page-&limit=2', 200);
    expect(first.items.map((c) => c.clientId)).toEqual(['page-a', 'page-b']);
    expect(first.items[0]).toMatchObject({ protocol: '5.0', listener: 'tcp', username: 'alice', subscriptions: 0 });
    expect(first.nextCursor).not.toBeNull();
    const second = await ops.json<Page>(`/api/v1/clients?prefix=page-&limit=2&cursor=${first.nextCursor}`, 200);
    expect(second).toEqual({ items: [expect.objectContaining({ clientId: 'page-c' })], nextCursor: null });
    const all = await ops.json<Page>('/api/v1/clients', 200);
    expect(all.items.map((c) => c.clientId)).toEqual(['other-1', 'page-a', 'page-b', 'page-c']);
    expect(all.items[0]!.protocol).toBe('3.1.1');
    expect(await ops.json('/api/v1/clients?limit=0', 400)).toMatchObject({ error: 'bad_request' });
    expect(await ops.json('/api/v1/clients?limit=abc', 400)).toMatchObject({ error: 'bad_request' });
    expect(await ops.json('/api/v1/clients?cursor=%25%25', 400)).toMatchObject({ error: 'bad_request' });
    expect((await ops.fetch('/api/v1/clients', { method: 'DELETE' })).status).toBe(405);
  });

  it('lists and shows sessions, connected and detached', async () => {
    const gone = await client('sess-detached', { clean: false, properties: { sessionExpiryInterval: 3600 } });
    await gone.subscribeAsync(['sess/a', 'sess/b/#'], { qos: 1 });
    await gone.endAsync();
    const live = await client('sess-live', { will: { topic: 'sess/will', payload: Buffer.from('bye'), qos: 1, retain: false } });
    await live.subscribeAsync('sess/live', { qos: 0 });
    await vi.waitFor(async () => expect(await ops.value('fleetmq_sessions', { state: 'detached' })).toBe(1), { timeout: 3000 });
    const pub = await client('sess-pub');
    await pub.publishAsync('sess/a', 'while away', { qos: 1 });

    type Page = { items: { clientId: string; state: string; subscriptions: number; expiresAt?: string | null }[]; nextCursor: string | null };
    const list = await ops.json<Page>('/api/v1/sessions?prefix=sess-', 200);
    expect(list.items.map((s) => [s.clientId, s.state, s.subscriptions])).toEqual([
      ['sess-detached', 'detached', 2],
      ['sess-live', 'connected', 1],
      ['sess-pub', 'connected', 0],
    ]);
    expect(Date.parse(list.items[0]!.expiresAt!)).toBeGreaterThan(Date.now() + 3500_000);

    const detached = await vi.waitFor(async () => {
      const s = await ops.json<{ offlineQueued: number }>('/api/v1/sessions/sess-detached', 200);
      expect(s.offlineQueued).toBe(1);
      return s;
    });
    expect(detached).toMatchObject({
      clientId: 'sess-detached',
      state: 'detached',
      node: 'ops-node',
      protocol: '5.0',
      expiryInterval: 3600,
      inflight: 0,
      subscriptionList: [
        { filter: 'sess/a', qos: 1 },
        { filter: 'sess/b/#', qos: 1 },
      ],
      will: null,
    });
    expect(await ops.json('/api/v1/sessions/sess-live', 200)).toMatchObject({
      state: 'connected',
      listener: 'tcp',
      expiryInterval: 0,
      subscriptionList: [{ filter: 'sess/live', qos: 0 }],
      will: { topic: 'sess/will', qos: 1, retain: false, delayInterval: 0 },
    });
    expect(await ops.json('/api/v1/sessions/nobody-here', 404)).toMatchObject({ error: 'not_found' });
    expect((await ops.fetch('/api/v1/sessions/sess-live', { method: 'POST' })).status).toBe(405);
    await ops.json('/api/v1/sessions/sess-detached', 200, { method: 'DELETE' });
  });

  it('kicks a 5.0 client with DISCONNECT 0x98 and a 3.1.1 client by closing; the session stays', async () => {
    const v5 = await client('kick-v5', { clean: false, properties: { sessionExpiryInterval: 600 } });
    await v5.subscribeAsync('kick/#', { qos: 1 });
    const v3 = await client('kick/v3 odd id', { protocolVersion: 4 });
    const disconnect = once<[IDisconnectPacket]>(v5, 'disconnect');
    expect(await ops.json('/api/v1/clients/kick-v5/kick', 200, { method: 'POST' })).toEqual({ clientId: 'kick-v5', kicked: true });
    const [packet] = await disconnect;
    expect(packet.reasonCode).toBe(0x98);
    const closed = once(v3, 'close');
    await ops.json(`/api/v1/clients/${encodeURIComponent('kick/v3 odd id')}/kick`, 200, { method: 'POST' });
    await closed;
    expect(await ops.json('/api/v1/clients/kick-v5/kick', 404, { method: 'POST' })).toMatchObject({ error: 'not_found' });
    await vi.waitFor(async () => expect(await ops.json('/api/v1/sessions/kick-v5', 200)).toMatchObject({ state: 'detached', subscriptions: 1 }), { timeout: 3000 });
    expect((await ops.fetch('/api/v1/clients/kick-v5/kick', { method: 'GET' })).status).toBe(405);
    await ops.json('/api/v1/sessions/kick-v5', 200, { method: 'DELETE' });
  });

  it('discards a session: the client is disconnected and its stored session and queue are gone', async () => {
    const c = await client('discard-me', { clean: false, properties: { sessionExpiryInterval: 600 } });
    await c.subscribeAsync('discard/#', { qos: 1 });
    const disconnect = once<[IDisconnectPacket]>(c, 'disconnect');
    expect(await ops.json('/api/v1/sessions/discard-me', 200, { method: 'DELETE' })).toEqual({ clientId: 'discard-me', kicked: true, discarded: true });
    expect((await disconnect)[0].reasonCode).toBe(0x98);
    expect(await ops.json('/api/v1/sessions/discard-me', 404)).toMatchObject({ error: 'not_found' });
    // back with clean start 0: no session present, no subscription left
    const back = createMqtt(tcp, { clientId: 'discard-me', username: 'alice', password: USERS.alice, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } });
    const [connack] = await once<[{ sessionPresent: boolean }]>(back, 'connect');
    expect(connack.sessionPresent).toBe(false);
    expect(await ops.json('/api/v1/sessions/discard-me', 200)).toMatchObject({ state: 'connected', subscriptions: 0 });
    await back.endAsync();
    // a detached session is discarded without a client to kick
    expect(await ops.json('/api/v1/sessions/discard-me', 200, { method: 'DELETE' })).toEqual({ clientId: 'discard-me', kicked: false, discarded: true });
    expect(await ops.json('/api/v1/sessions/discard-me', 404, { method: 'DELETE' })).toMatchObject({ error: 'not_found' });
  });

  it('lists retained messages matching a filter', async () => {
    const c = await client('retainer');
    await c.publishAsync('ret/a', 'first', { qos: 1, retain: true });
    await c.publishAsync('ret/b', Buffer.from([0xff, 0xfe]), { qos: 0, retain: true });
    await c.publishAsync('elsewhere/c', 'x', { qos: 1, retain: true });
    type Retained = { items: { topic: string; qos: number; payloadBytes: number; payload: string | null }[]; truncated: boolean };
    const found = await vi.waitFor(async () => {
      const r = await ops.json<Retained>(`/api/v1/retained?filter=${encodeURIComponent('ret/#')}`, 200);
      expect(r.items).toHaveLength(2);
      return r;
    });
    expect([...found.items].sort((a, b) => a.topic.localeCompare(b.topic))).toEqual([
      expect.objectContaining({ topic: 'ret/a', qos: 1, payloadBytes: 5, payload: 'first' }),
      expect.objectContaining({ topic: 'ret/b', qos: 0, payloadBytes: 2, payload: null }),
    ]);
    expect(found.truncated).toBe(false);
    const one = await ops.json<Retained>('/api/v1/retained?limit=1', 200);
    expect(one.items).toHaveLength(1);
    expect(one.truncated).toBe(true);
    expect((await ops.json<Retained>('/api/v1/retained', 200)).items.length).toBeGreaterThanOrEqual(3);
    expect(await ops.json(`/api/v1/retained?filter=${encodeURIComponent('a/#/b')}`, 400)).toMatchObject({ error: 'bad_request' });
    expect(await ops.json('/api/v1/retained?limit=5000', 400)).toMatchObject({ error: 'bad_request' });
  });

  it('drives the admin API from the fleetmq CLI verbs', async () => {
    await client('cli-client', { clean: false, properties: { sessionExpiryInterval: 600 } });
    const run = async (...argv: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await adminCli(argv, { FLEETMQ_ADMIN_URL: ops.base, FLEETMQ_ADMIN_TOKEN: TOKEN }, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
      return { code, stdout, stderr };
    };
    const list = await run('clients', 'list', '--prefix', 'cli-');
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^clientId\s+username\s+protocol/);
    expect(list.stdout).toMatch(/^cli-client\s+alice\s+5\.0\s+tcp/m);
    expect(JSON.parse((await run('clients', 'show', 'cli-client')).stdout)).toMatchObject({ clientId: 'cli-client', protocol: '5.0' });
    expect(JSON.parse((await run('clients', 'show', 'cli-client', '--json')).stdout)).toMatchObject({ clientId: 'cli-client', listener: 'tcp' });
    expect(await run('clients', 'show', 'cli-')).toMatchObject({ code: 1, stderr: 'fleetmq: client "cli-" is not connected to this node\n' });
    expect(JSON.parse((await run('sessions', 'show', 'cli-client')).stdout)).toMatchObject({ state: 'connected' });
    expect((await run('sessions', 'list', '--json')).stdout).toContain('"clientId": "cli-client"');
    expect(await run('kick', 'cli-client')).toMatchObject({ code: 0, stdout: 'client cli-client disconnected\n' });
    await vi.waitFor(async () => expect((await run('sessions', 'list', '--prefix', 'cli-')).stdout).toMatch(/^cli-client\s+detached/m), { timeout: 3000 });
    expect(await run('sessions', 'discard', 'cli-client')).toMatchObject({ code: 0, stdout: 'session cli-client discarded\n' });
    expect(await run('sessions', 'show', 'cli-client')).toMatchObject({ code: 1, stderr: 'fleetmq: no session for client "cli-client"\n' });
    expect((await run('retained', 'list', '--filter', 'ret/#')).stdout).toMatch(/^ret\/a\s+1\s+5\s+first/m);
    // wrong token, no token, nobody listening, a bad verb
    const wrong = await adminCli(['clients', 'list', '--url', ops.base, '--token', 'wrong-token-wrong-token'], {}, { stdout: () => undefined, stderr: () => undefined });
    expect(wrong).toBe(1);
    let stderr = '';
    expect(await adminCli(['clients', 'list', '--url', ops.base], {}, { stdout: () => undefined, stderr: (t) => (stderr += t) })).toBe(1);
    expect(stderr).toBe('fleetmq: send Authorization: Bearer <admin token> (give --token or FLEETMQ_ADMIN_TOKEN)\n');
    stderr = '';
    const closed = await freePort();
    expect(await adminCli(['drain', '--url', `http://127.0.0.1:${closed}`, '--token', TOKEN], {}, { stdout: () => undefined, stderr: (t) => (stderr += t) })).toBe(1);
    expect(stderr).toMatch(new RegExp(`^fleetmq: cannot reach the admin API at http://127\\.0\\.0\\.1:${closed} \\(ECONNREFUSED\\)`));
    expect(await run('clients', 'frobnicate')).toMatchObject({ code: 2 });
    expect(await run('kick')).toMatchObject({ code: 2 });
    expect(node.draining()).toBe(false);
  });
});

describe('ops server without an admin token, with a failure throttle', () => {
  let node: RunningNode;
  let ops: Ops;
  beforeAll(async () => {
    node = await start({ auth: { passwordFile, failureThrottle: { burst: 1, perSecond: 0.01 } }, ops: { port: 0 } });
    ops = new Ops(node);
  });
  afterAll(() => node?.stop());

  it('answers the admin API with 404, token or not', async () => {
    expect(await ops.json('/api/v1/clients', 404)).toMatchObject({ error: 'admin_api_disabled' });
    expect(await ops.json('/api/v1/node/drain', 404, { method: 'POST', token: TOKEN })).toMatchObject({ error: 'admin_api_disabled' });
    expect(node.draining()).toBe(false);
    expect(await ops.json('/readyz', 200)).toEqual({ status: 'ready' });
  });

  it('counts throttled logins apart from refused ones', async () => {
    const url = `mqtt://127.0.0.1:${node.addresses()[0]!.port}`;
    const codes: number[] = [];
    for (let i = 0; i < 2; i++) {
      const bad = createMqtt(url, { clientId: `t-${i}`, username: 'bob', password: 'wrong', protocolVersion: 5 });
      codes.push((await once<[Error & { code: number }]>(bad, 'error'))[0].code);
    }
    expect(codes).toEqual([0x86, 0x9f]);
    const samples = await ops.metrics();
    expect(sampleOf(samples, 'fleetmq_auth_attempts_total', { result: 'refused' })).toBe(1);
    expect(sampleOf(samples, 'fleetmq_auth_attempts_total', { result: 'throttled' })).toBe(1);
    expect(sampleOf(samples, 'fleetmq_auth_attempts_total', { result: 'accepted' })).toBe(0);
    expect(sampleOf(samples, 'fleetmq_connections_refused_total', { listener: 'tcp', reason: 'bad_user_name_or_password' })).toBe(1);
    expect(sampleOf(samples, 'fleetmq_connections_refused_total', { listener: 'tcp', reason: 'connection_rate' })).toBe(1);
  });
});

describe('ops config', () => {
  it('defaults to 127.0.0.1:8081, takes FLEETMQ_OPS__* overrides and never prints the token', () => {
    expect(parseConfig({}).ops).toEqual({ enabled: true, host: '127.0.0.1', port: 8081 });
    const config = loadConfig({ env: { FLEETMQ_OPS__HOST: '0.0.0.0', FLEETMQ_OPS__PORT: '9181', FLEETMQ_OPS__ADMIN_TOKEN: TOKEN } });
    expect(config.ops).toEqual({ enabled: true, host: '0.0.0.0', port: 9181, adminToken: TOKEN });
    expect(JSON.stringify(redactSecrets(config))).not.toContain(TOKEN);
    expect(redactSecrets(config).ops.adminToken).toBe('[redacted]');
    let message = '';
    try {
      parseConfig({ ops: { adminToken: 'too-short' } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^config ops\.adminToken: the value \(not shown\) is invalid/);
    expect(message).not.toContain('too-short');
    expect(() => parseConfig({ ops: { port: 70000 } })).toThrow(/ops\.port/);
  });

  it('fails to start when the ops port is taken, and closes what it opened', async () => {
    const first = await start({ ops: { port: 0 } });
    try {
      const taken = first.opsAddress()!.port;
      const err = await start({ ops: { port: taken } }).then(
        () => undefined,
        (e: unknown) => e as Error & { key?: string; cause?: { code?: string } },
      );
      expect(err).toMatchObject({ key: 'ops.port', cause: { code: 'EADDRINUSE' } });
      expect(err!.message).toContain(`cannot listen on 127.0.0.1:${taken} (EADDRINUSE)`);
    } finally {
      await first.stop();
    }
  });

  it('runs without an ops server when ops.enabled is false', async () => {
    const n = await start({ ops: { enabled: false } });
    try {
      expect(n.opsAddress()).toBeUndefined();
      expect(n.ready()).toBe(true);
    } finally {
      await n.stop();
    }
  });

  it('reads the admin token from ops.adminTokenFile, and names the key when it cannot', async () => {
    const file = path.join(dir, 'admin-token');
    await writePasswordFile(file, `${TOKEN}\n`);
    const n = await start({ ops: { port: 0, adminTokenFile: file } });
    try {
      expect(await new Ops(n, TOKEN).json('/api/v1/sessions', 200)).toMatchObject({ items: [] });
    } finally {
      await n.stop();
    }
    await expect(start({ ops: { port: 0, adminTokenFile: path.join(dir, 'missing') } })).rejects.toMatchObject({ key: 'ops.adminTokenFile' });
    expect(() => parseConfig({ ops: { adminToken: 'short' } })).toThrow(/ops\.adminToken/);
    expect(() => parseConfig({ ops: { adminToken: TOKEN, adminTokenFile: file } })).toThrow(/together/);
  });
});

describe('listener limits in the metrics', () => {
  it('counts a connection a full listener refused, as a limit hit and a refusal by reason', async () => {
    const node = await start({
      listeners: [{ type: 'tcp', name: 'small', host: '127.0.0.1', port: 0, maxConnections: 1 }],
      ops: { port: 0 },
    });
    try {
      const ops = new Ops(node);
      const url = `mqtt://127.0.0.1:${node.addresses()[0]!.port}`;
      await connectMqtt(url, { clientId: 'first', username: 'alice', password: USERS.alice, protocolVersion: 5 });
      const second = createMqtt(url, { clientId: 'second', username: 'alice', password: USERS.alice, protocolVersion: 5 });
      expect((await once<[Error & { code: number }]>(second, 'error'))[0].code).toBe(0x97);
      const samples = await ops.metrics();
      expect(sampleOf(samples, 'fleetmq_limit_hits_total', { limit: 'connections' })).toBe(1);
      expect(sampleOf(samples, 'fleetmq_connections_refused_total', { listener: 'small', reason: 'connections' })).toBe(1);
      expect(sampleOf(samples, 'fleetmq_connections_refused_total', { listener: 'small', reason: 'connection_rate' })).toBe(0);
      expect(sampleOf(samples, 'fleetmq_connections_accepted_total', { listener: 'small' })).toBe(2);
      expect(sampleOf(samples, 'fleetmq_connections', { listener: 'small', protocol: '5.0' })).toBe(1);
    } finally {
      await node.stop();
    }
  });
});

describe('TLS certificate reloads in the metrics', () => {
  it('counts a reload that worked and one that failed, per listener', async () => {
    const pki = makePki();
    const cert = path.join(dir, 'tls.crt');
    const key = path.join(dir, 'tls.key');
    copyFileSync(pki.server.cert, cert);
    copyFileSync(pki.server.key, key);
    const node = await start({ listeners: [{ type: 'tls', name: 'tls', host: '127.0.0.1', port: 0, tls: { certFile: cert, keyFile: key } }], ops: { port: 0 } });
    try {
      const ops = new Ops(node);
      const reload = () => (node.listeners[0] as unknown as { reloadCertificates(): Promise<boolean> }).reloadCertificates();
      expect(await ops.value('fleetmq_tls_certificate_reloads_total', { listener: 'tls', result: 'success' })).toBe(0);
      copyFileSync(pki.server2.cert, cert);
      copyFileSync(pki.server2.key, key);
      expect(await reload()).toBe(true);
      writeFileSync(cert, 'not a certificate');
      expect(await reload()).toBe(false);
      const samples = await ops.metrics();
      expect(sampleOf(samples, 'fleetmq_tls_certificate_reloads_total', { listener: 'tls', result: 'success' })).toBe(1);
      expect(sampleOf(samples, 'fleetmq_tls_certificate_reloads_total', { listener: 'tls', result: 'failure' })).toBe(1);
    } finally {
      await node.stop();
      pki.cleanup();
    }
  });
});

describe('drain through the admin API', () => {
  it('answers 202, disconnects clients with 0x8B and stops the node', async () => {
    const node = await start({ ops: { port: 0, adminToken: TOKEN } });
    const ops = new Ops(node, TOKEN);
    const base = ops.base;
    const url = `mqtt://127.0.0.1:${node.addresses()[0]!.port}`;
    const c = await connectMqtt(url, { clientId: 'drained', username: 'alice', password: USERS.alice, protocolVersion: 5 });
    const disconnect = once<[IDisconnectPacket]>(c, 'disconnect');
    expect(await ops.json('/api/v1/node/drain', 202, { method: 'POST' })).toEqual({ nodeId: 'ops-node', draining: true });
    expect(node.draining()).toBe(true);
    expect(node.ready()).toBe(false);
    expect((await disconnect)[0].reasonCode).toBe(0x8b);
    await node.stopped();
    expect(node.opsAddress()).toBeUndefined();
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});
