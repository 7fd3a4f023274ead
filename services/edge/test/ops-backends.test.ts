/**
 * The ops server of a node with real backends (nats-server, redis-server, dynalite): backend
 * latency, errors and up/down in the metrics, readiness while NATS is down, and the readiness
 * flip while a drain runs (the drain waits for a live peer that does not answer).
 */
import { randomBytes } from 'node:crypto';
import type { IDisconnectPacket } from 'mqtt';
import { connect as connectNats } from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisNodeRegistry } from '@fleetmq/adapter-redis';
import { TcpProxy, freePort, startDynamo, startNatsServer, startRedisServer, type DynamoFixture, type NatsFixture, type RedisFixture } from '@fleetmq/testkit';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startNode, type RunningNode } from '../src/main.js';
import { connectMqtt, endMqttClients, once } from '../../../test/support/clients.js';
import { Ops, sampleOf } from './ops-support.js';

const TOKEN = 'ops-backends-admin-token-0123456789';

describe('ops server of a node with NATS, Redis and DynamoDB', () => {
  let nats: NatsFixture;
  let redis: RedisFixture;
  let dynamo: DynamoFixture;
  /** The node reaches NATS through it: stopped, NATS is down for the node. */
  let natsProxy: TcpProxy;
  let node: RunningNode;
  let ops: Ops;
  let url: string;
  const keyPrefix = `ops-${randomBytes(4).toString('hex')}:`;

  beforeAll(async () => {
    [nats, redis, dynamo] = await Promise.all([startNatsServer(), startRedisServer(), startDynamo()]);
    natsProxy = new TcpProxy(await freePort(), nats.port, 'nats');
    await natsProxy.listen();
    process.env.AWS_ACCESS_KEY_ID = dynamo.credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = dynamo.credentials.secretAccessKey;
    const config = parseConfig({
      nodeId: 'ops-backend-node',
      log: { level: process.env.FLEETMQ_TEST_LOG ?? 'silent' },
      listeners: [{ type: 'tcp', name: 'tcp', host: '127.0.0.1', port: 0 }],
      auth: { allowAnonymous: true },
      cluster: { nats: { servers: [natsProxy.url], reconnectTimeWait: 100 }, redis: { url: redis.url, keyPrefix } },
      dynamodb: { endpoint: dynamo.endpoint, region: dynamo.region, tablePrefix: `${keyPrefix.replace(':', '-')}`, createTables: true },
      ops: { port: 0, adminToken: TOKEN },
    });
    node = await startNode(config, createLogger(config.log.level, process.stderr));
    ops = new Ops(node, TOKEN);
    url = `mqtt://127.0.0.1:${node.addresses()[0]!.port}`;
    await vi.waitFor(async () => expect((await ops.fetch('/readyz')).status).toBe(200), { timeout: 10_000, interval: 50 });
  }, 60_000);
  afterEach(() => endMqttClients());
  afterAll(async () => {
    await node?.stop();
    await Promise.allSettled([natsProxy?.stop(), nats?.stop(), redis?.stop(), dynamo?.stop()]);
  });

  it('times every backend request and reports each backend up', async () => {
    const c = await connectMqtt(url, { clientId: 'backend-client', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } });
    await c.subscribeAsync('backend/#', { qos: 1 });
    await c.publishAsync('backend/retained', 'kept', { qos: 1, retain: true });
    const samples = await ops.metrics();
    const count = (backend: string, operation: string) => sampleOf(samples, 'fleetmq_backend_request_duration_seconds_count', { backend, operation });
    expect(count('nats', 'publish')).toBeGreaterThanOrEqual(1);
    expect(count('nats', 'subscribe')).toBeGreaterThanOrEqual(1);
    expect(count('redis', 'claim')).toBeGreaterThanOrEqual(1);
    expect(count('dynamodb', 'save')).toBeGreaterThanOrEqual(1);
    expect(count('dynamodb', 'set')).toBe(1);
    const inf = sampleOf(samples, 'fleetmq_backend_request_duration_seconds_bucket', { backend: 'dynamodb', operation: 'set', le: '+Inf' });
    expect(inf).toBe(1);
    expect(sampleOf(samples, 'fleetmq_backend_request_duration_seconds_sum', { backend: 'dynamodb', operation: 'set' })).toBeGreaterThan(0);
    expect(sampleOf(samples, 'fleetmq_backend_errors_total', { backend: 'nats', operation: 'publish' })).toBe(0);
    for (const backend of ['nats', 'redis', 'dynamodb']) expect(sampleOf(samples, 'fleetmq_backend_up', { backend }), backend).toBe(1);
    expect(sampleOf(samples, 'fleetmq_ready')).toBe(1);
    // the session listing reads the store for a session no node holds in memory
    expect(await ops.json('/api/v1/sessions/backend-client', 200)).toMatchObject({ state: 'connected', node: 'ops-backend-node' });
    // discarded: gone from DynamoDB too
    await ops.json('/api/v1/sessions/backend-client', 200, { method: 'DELETE' });
    expect(await ops.json('/api/v1/sessions/backend-client', 404)).toMatchObject({ error: 'not_found' });
    expect(await ops.value('fleetmq_backend_request_duration_seconds_count', { backend: 'dynamodb', operation: 'delete' })).toBeGreaterThanOrEqual(1);
  });

  it('reports NATS down, counts the refused publish, and is not ready until NATS is back', async () => {
    const c = await connectMqtt(url, { clientId: 'outage-client', protocolVersion: 5 });
    const before = await ops.metrics();
    await natsProxy.stop();
    await vi.waitFor(async () => expect(await ops.value('fleetmq_backend_up', { backend: 'nats' })).toBe(0), { timeout: 5000, interval: 20 });
    expect(await ops.json('/readyz', 503)).toEqual({ status: 'not_ready' });
    expect(await ops.json('/healthz', 200)).toEqual({ status: 'ok' });
    // 5.0: refused with DISCONNECT 0x89 rather than acknowledged (DESIGN invariant 8)
    const closed = once<[IDisconnectPacket]>(c, 'disconnect');
    c.publish('outage/x', 'lost?', { qos: 1 });
    expect((await closed)[0].reasonCode).toBe(0x89);
    const errors = await ops.value('fleetmq_backend_errors_total', { backend: 'nats', operation: 'publish' });
    expect(errors - sampleOf(before, 'fleetmq_backend_errors_total', { backend: 'nats', operation: 'publish' })).toBe(1);
    await natsProxy.listen();
    await vi.waitFor(async () => expect((await ops.fetch('/readyz')).status).toBe(200), { timeout: 10_000, interval: 50 });
    expect(await ops.value('fleetmq_backend_up', { backend: 'nats' })).toBe(1);
  }, 30_000);

  it('is not ready while it drains, stays alive, and exits the drain once done', async () => {
    // a detached session to hand over, and a live peer that takes requests and never answers
    // (it listens on its node-link subject): the drain waits for its adopt request to time
    // out, long enough to watch readiness from outside
    const c = await connectMqtt(url, { clientId: 'drain-detached', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } });
    await c.subscribeAsync('drain/#', { qos: 1 });
    await c.endAsync();
    await vi.waitFor(async () => expect(await ops.value('fleetmq_sessions', { state: 'detached' })).toBeGreaterThanOrEqual(1), { timeout: 3000 });
    const peers = new RedisNodeRegistry({ url: redis.url, keyPrefix, name: 'ops-test-peers' });
    const silent = await connectNats({ servers: nats.url, name: 'silent-peer' });
    silent.subscribe('fleetmq.node.silent-peer');
    await silent.flush();
    try {
      await vi.waitFor(() => expect(peers.ready).toBe(true), { timeout: 5000 });
      await peers.register('silent-peer', { startedAt: Date.now() });
      expect(await ops.json('/api/v1/node/drain', 202, { method: 'POST' })).toEqual({ nodeId: 'ops-backend-node', draining: true });
      expect(await ops.json('/readyz', 503)).toEqual({ status: 'not_ready' });
      expect(await ops.json('/healthz', 200)).toEqual({ status: 'ok' });
      const samples = await ops.metrics();
      expect(sampleOf(samples, 'fleetmq_draining')).toBe(1);
      expect(sampleOf(samples, 'fleetmq_ready')).toBe(0);
      // asked again while draining: still 202, one drain
      expect(await ops.json('/api/v1/node/drain', 202, { method: 'POST' })).toMatchObject({ draining: true });
      await node.stopped();
      expect(node.opsAddress()).toBeUndefined();
    } finally {
      await peers.deregister('silent-peer').catch(() => undefined);
      await peers.close();
      await silent.close();
    }
  }, 30_000);
});
