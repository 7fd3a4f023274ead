import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startDynamo,
  startMosquitto,
  startNatsServer,
  startRedisServer,
  type DynamoFixture,
  type MosquittoFixture,
  type NatsFixture,
  type RedisFixture,
} from '@fleetmq/testkit';
import { Inbox, connectMqtt, endMqttClients, quietPeriod, waitUntil } from '../support/clients.js';
import { startCluster, type Cluster, type ClusterNode, type LogEvent } from '../support/cluster.js';

// Once per cluster: three edge-node processes (real nats-server, redis-server, dynalite) all
// configured with the same bridge to a real mosquitto. Exactly one node holds the Redis lease
// `bridge:cloud` and runs the bridge: one connection at mosquitto, not three. Draining that
// node releases the lease and another takes over; killing the next holder lets the lease
// expire and the last node takes over.

const LEASE_TTL = 1_500;

let nats: NatsFixture;
let redis: RedisFixture;
let dynamo: DynamoFixture;
let remote: MosquittoFixture;
let cluster: Cluster;
let dir: string;

const acquired = (e: LogEvent): boolean => e.msg === 'bridge_lease_acquired' && e.bridge === 'cloud';
/** mosquitto's log line for each connection of the bridge (it connects with the bridge bit). */
const BRIDGE_CONNECTED = /New bridge connected from [^ ]+ as cloud /g;

function connectionsAtRemote(): number {
  return remote.output().match(BRIDGE_CONNECTED)?.length ?? 0;
}

function holders(nodes: readonly ClusterNode[]): ClusterNode[] {
  return nodes.filter((n) => n.events.some(acquired));
}

beforeAll(async () => {
  [nats, redis, dynamo, remote] = await Promise.all([startNatsServer(), startRedisServer(), startDynamo(), startMosquitto()]);
  dir = mkdtempSync(join(tmpdir(), 'fleetmq-bridge-cluster-'));
  const config = join(dir, 'fleetmq.yaml');
  writeFileSync(
    config,
    [
      'bridges:',
      '  - name: cloud',
      `    addresses: 127.0.0.1:${remote.port}`,
      `    leaseTtl: ${LEASE_TTL}`,
      '    reconnectDelay: { base: 100, cap: 500 }',
      '    topics:',
      '      - up/# out 1 "" site/',
      '      - down/# in 1 "" site/',
      '',
    ].join('\n'),
  );
  cluster = await startCluster({ nodes: 3, nats, dynamo, redis, env: { FLEETMQ_CONFIG: config, FLEETMQ_DRAIN__GRACE_PERIOD: '5000' } });
});

afterAll(async () => {
  await endMqttClients();
  await cluster?.stop();
  await Promise.allSettled([nats?.stop(), redis?.stop(), dynamo?.stop(), remote?.stop()]);
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** A message published on `from` reaches mosquitto through whichever node runs the bridge, and back. */
async function roundTrip(from: ClusterNode, to: ClusterNode, tag: string): Promise<void> {
  const watcher = await connectMqtt(`mqtt://127.0.0.1:${remote.port}`, { clientId: `watch-${tag}` });
  const remoteInbox = new Inbox(watcher);
  await watcher.subscribeAsync('site/up/#', { qos: 1 });
  const publisher = await connectMqtt(from.url, { clientId: `pub-${tag}` });
  await publisher.publishAsync(`up/${tag}`, tag, { qos: 1 });
  const [out] = await remoteInbox.wait(1, 8_000);
  expect([out!.topic, out!.payload]).toEqual([`site/up/${tag}`, tag]);

  const subscriber = await connectMqtt(to.url, { clientId: `sub-${tag}` });
  const localInbox = new Inbox(subscriber);
  await subscriber.subscribeAsync('down/#', { qos: 1 });
  await watcher.publishAsync(`site/down/${tag}`, tag, { qos: 1 });
  const [inbound] = await localInbox.wait(1, 8_000);
  expect([inbound!.topic, inbound!.payload]).toEqual([`down/${tag}`, tag]);
  await endMqttClients();
}

describe('a bridge in a three-node cluster', () => {
  it('runs on exactly one node: one connection at the remote, not three', async () => {
    await remote.waitForOutput(BRIDGE_CONNECTED, 1, 10_000);
    // several renewal rounds pass: nobody else connects, nobody is kicked
    await quietPeriod(500);
    await waitUntil(() => holders(cluster.nodes).length === 1, 2_000, 'one lease holder');
    await new Promise((resolve) => setTimeout(resolve, LEASE_TTL));
    expect(connectionsAtRemote()).toBe(1);
    expect(holders(cluster.nodes)).toHaveLength(1);
    expect(remote.output()).not.toMatch(/already connected, closing old connection/);
    const [holder] = holders(cluster.nodes);
    const others = cluster.nodes.filter((n) => n !== holder);
    // a node without the bridge reaches the remote through the node that has it, both ways
    await roundTrip(others[0]!, others[1]!, 'first');
  });

  it('fails over when its node is drained, and again when the next holder dies', async () => {
    const [first] = holders(cluster.nodes);
    const drained = await first!.terminate(10_000);
    expect(drained).toMatchObject({ code: 0, killed: false });
    expect(first!.events.some((e) => e.msg === 'bridge_lease_released' && e.bridge === 'cloud')).toBe(true);
    const live = cluster.nodes.filter((n) => n !== first);
    // released, not expired: another node takes it within a third of the TTL (plus a connect)
    await remote.waitForOutput(BRIDGE_CONNECTED, 2, LEASE_TTL);
    await waitUntil(() => holders(live).length === 1, 2_000, 'a new holder');
    const [second] = holders(live);
    const last = live.find((n) => n !== second)!;
    await roundTrip(last, last, 'after-drain');

    // the second holder dies without a word: its lease expires, the last node takes over
    process.kill(second!.pid, 'SIGKILL');
    await second!.exited;
    await remote.waitForOutput(BRIDGE_CONNECTED, 3, LEASE_TTL * 3);
    await waitUntil(() => last.events.some(acquired), 2_000, 'the last node holds the lease');
    await roundTrip(last, last, 'after-death');
    expect(connectionsAtRemote()).toBe(3);
    expect(remote.output()).not.toMatch(/already connected, closing old connection/);
  });
});
