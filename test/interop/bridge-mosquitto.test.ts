import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, parseConfig, startNode, type RunningNode } from '@fleetmq/edge';
import { freePort, makePki, startMosquitto, type MosquittoFixture, type TestPki } from '@fleetmq/testkit';
import { Inbox, connectMqtt, createMqtt, endMqttClients, quietPeriod, waitUntil } from '../support/clients.js';

// Bridges between FleetMQ and Debian's real mosquitto 2.0, both ways: FleetMQ's bridge to a
// mosquitto (plain TCP and TLS, prefixes, remote restarted mid-test) and mosquitto's own
// `connection` bridge into FleetMQ (try_private: protocol level 0x84).

const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await endMqttClients();
  for (const r of running.splice(0).reverse()) await r.stop();
});

let pki: TestPki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => pki?.cleanup());

/** An embedded FleetMQ node on a free port with these bridges (and extra config). */
const ADMIN_TOKEN = 'bridge-test-admin-token';

async function fleetmq(bridges: unknown[], extra: Record<string, unknown> = {}): Promise<{ node: RunningNode; port: number; url: string }> {
  const config = parseConfig({
    nodeId: 'bridge-test',
    listeners: [{ type: 'tcp', name: 'tcp', host: '127.0.0.1', port: 0 }],
    log: { level: process.env.FLEETMQ_TEST_LOG ?? 'silent' },
    ops: { port: 0, adminToken: ADMIN_TOKEN },
    bridges,
    ...extra,
  });
  const node = await startNode(config, createLogger(config.log.level, process.stderr));
  running.push(node);
  const port = node.addresses()[0]!.port;
  return { node, port, url: `mqtt://127.0.0.1:${port}` };
}

async function mosquitto(options: Parameters<typeof startMosquitto>[0] = {}): Promise<MosquittoFixture> {
  const m = await startMosquitto(options);
  running.push(m);
  return m;
}

function bridgeState(node: RunningNode, name: string): string | undefined {
  return node.bridges?.stats().find((s) => s.name === name)?.state;
}

/** A FleetMQ bridge config with quick reconnects. */
function bridge(name: string, port: number, rest: Record<string, unknown>): Record<string, unknown> {
  return { name, addresses: [`127.0.0.1:${port}`], reconnectDelay: { base: 100, cap: 400 }, ...rest };
}

describe('FleetMQ bridge to a real mosquitto', () => {
  it('shows each bridge in the admin API (GET /api/v1/bridges) and in /metrics', async () => {
    const remote = await mosquitto();
    const { node } = await fleetmq([bridge('cloud', remote.port, { topics: ['sensors/# out 1'] })]);
    await waitUntil(() => bridgeState(node, 'cloud') === 'connected', 10_000, 'the bridge to connect');
    const base = `http://127.0.0.1:${node.opsAddress()!.port}`;
    const res = await fetch(`${base}/api/v1/bridges`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { bridges: { name: string; state: string; address: string }[] };
    expect(body.bridges).toEqual([expect.objectContaining({ name: 'cloud', state: 'connected', address: `127.0.0.1:${remote.port}` })]);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^fleetmq_bridge_state\{bridge="cloud"\} 1$/m);
    expect(metrics).toMatch(/^fleetmq_bridge_queue_length\{bridge="cloud"\} 0$/m);
    expect(metrics).toMatch(/^fleetmq_bridge_messages_total\{bridge="cloud",direction="out"\} 0$/m);
  });

  for (const protocolVersion of [4, 5] as const) {
    it(`carries out and in with prefixes over plain TCP (MQTT ${protocolVersion === 5 ? '5.0' : '3.1.1'})`, async () => {
      const remote = await mosquitto();
      const { node, url } = await fleetmq([
        bridge('cloud', remote.port, {
          protocolVersion,
          topics: ['sensors/# out 1 site/ edge-1/', { pattern: 'cmd/#', direction: 'in', qos: 1, localPrefix: 'site/', remotePrefix: 'edge-1/' }],
        }),
      ]);
      await waitUntil(() => bridgeState(node, 'cloud') === 'connected', 5000, 'bridge connected');
      const remoteSub = await connectMqtt(`mqtt://127.0.0.1:${remote.port}`, { clientId: 'remote-watcher' });
      await remoteSub.subscribeAsync('edge-1/#', { qos: 1 });
      const remoteInbox = new Inbox(remoteSub);
      const localSub = await connectMqtt(url, { clientId: 'local-watcher' });
      await localSub.subscribeAsync('site/#', { qos: 1 });
      const localInbox = new Inbox(localSub);

      // out: the local prefix comes off, the remote prefix goes on
      await localSub.publishAsync('site/sensors/t1', '21.5', { qos: 1 });
      const [out] = await remoteInbox.wait(1, 5000, (m) => m.topic.startsWith('edge-1/sensors/'));
      expect([out!.topic, out!.payload, out!.packet.qos]).toEqual(['edge-1/sensors/t1', '21.5', 1]);

      // in: the remote prefix comes off, the local prefix goes on
      await remoteSub.publishAsync('edge-1/cmd/reboot', 'now', { qos: 1 });
      const [inbound] = await localInbox.wait(1, 5000, (m) => m.topic.startsWith('site/cmd/'));
      expect([inbound!.topic, inbound!.payload, inbound!.packet.qos]).toEqual(['site/cmd/reboot', 'now', 1]);

      // what matches no out rule stays here, and what came in does not go back out
      await localSub.publishAsync('site/other/x', 'stays', { qos: 1 });
      await quietPeriod(300);
      expect(remoteInbox.messages.map((m) => m.topic)).toEqual(['edge-1/sensors/t1', 'edge-1/cmd/reboot']);
      const stats = node.bridges!.stats()[0]!;
      expect(stats).toMatchObject({ name: 'cloud', state: 'connected', messagesOut: 1, messagesIn: 1, queued: 0, dropped: 0 });
    });
  }

  it('carries QoS 2, retained messages (retained at the other end too) and MQTT 5 properties both ways', async () => {
    const remote = await mosquitto();
    const { node, url } = await fleetmq([bridge('rich', remote.port, { protocolVersion: 5, topics: ['rich/# both 2 "" far/'] })]);
    await waitUntil(() => bridgeState(node, 'rich') === 'connected', 5000, 'bridge connected');
    const local = await connectMqtt(url, { clientId: 'rich-local', protocolVersion: 5 });
    const remoteClient = await connectMqtt(`mqtt://127.0.0.1:${remote.port}`, { clientId: 'rich-remote', protocolVersion: 5 });
    const remoteInbox = new Inbox(remoteClient);
    const localInbox = new Inbox(local);
    await remoteClient.subscribeAsync('far/rich/#', { qos: 2 });
    await local.subscribeAsync('rich/#', { qos: 2 });
    const properties = { userProperties: { site: '17' }, contentType: 'text/plain' };
    await local.publishAsync('rich/out', 'o', { qos: 2, properties });
    const [out] = await remoteInbox.wait(1, 5000, (m) => m.topic === 'far/rich/out');
    expect(out!.packet).toMatchObject({ qos: 2, properties: { userProperties: { site: '17' }, contentType: 'text/plain' } });
    await remoteClient.publishAsync('far/rich/in', 'i', { qos: 2, properties });
    const [inbound] = await localInbox.wait(1, 5000, (m) => m.topic === 'rich/in');
    expect(inbound!.packet).toMatchObject({ qos: 2, properties: { userProperties: { site: '17' }, contentType: 'text/plain' } });

    // retained: a late subscriber at the other end gets it, with the retain flag
    await local.publishAsync('rich/state', 'on', { qos: 1, retain: true });
    await remoteInbox.wait(1, 5000, (m) => m.topic === 'far/rich/state');
    const lateRemote = await connectMqtt(`mqtt://127.0.0.1:${remote.port}`, { clientId: 'rich-late-remote' });
    const lateRemoteInbox = new Inbox(lateRemote);
    await lateRemote.subscribeAsync('far/rich/state', { qos: 1 });
    const [kept] = await lateRemoteInbox.wait(1);
    expect([kept!.payload, kept!.packet.retain]).toEqual(['on', true]);
    await remoteClient.publishAsync('far/rich/config', 'v2', { qos: 1, retain: true });
    await localInbox.wait(1, 5000, (m) => m.topic === 'rich/config');
    const lateLocal = await connectMqtt(url, { clientId: 'rich-late-local' });
    const lateLocalInbox = new Inbox(lateLocal);
    await lateLocal.subscribeAsync('rich/config', { qos: 1 });
    const [keptHere] = await lateLocalInbox.wait(1);
    expect([keptHere!.payload, keptHere!.packet.retain]).toEqual(['v2', true]);
  });

  it('does not loop a both rule: No Local on 5.0, the bridge bit (try_private) on 3.1.1', async () => {
    const remote = await mosquitto();
    const { node, url } = await fleetmq([
      bridge('b5', remote.port, { protocolVersion: 5, topics: ['loop5/# both 1'] }),
      bridge('b4', remote.port, { protocolVersion: 4, topics: ['loop4/# both 1'] }),
    ]);
    await waitUntil(() => node.bridges!.stats().every((s) => s.state === 'connected'), 5000, 'bridges connected');
    // mosquitto logs the bridge bit as a bridge connection
    expect(remote.output()).toMatch(/New bridge connected from 127\.0\.0\.1:\d+ as b4/);
    const local = await connectMqtt(url, { clientId: 'loop-watcher' });
    await local.subscribeAsync(['loop5/#', 'loop4/#'], { qos: 1 });
    const inbox = new Inbox(local);
    const remoteClient = await connectMqtt(`mqtt://127.0.0.1:${remote.port}`, { clientId: 'loop-remote' });
    await remoteClient.subscribeAsync(['loop5/#', 'loop4/#'], { qos: 1 });
    const remoteInbox = new Inbox(remoteClient);
    await local.publishAsync('loop5/a', 'x', { qos: 1 });
    await local.publishAsync('loop4/a', 'y', { qos: 1 });
    await remoteInbox.wait(2);
    await remoteClient.publishAsync('loop5/b', 'z', { qos: 1 });
    await remoteClient.publishAsync('loop4/b', 'w', { qos: 1 });
    await inbox.wait(4);
    await quietPeriod(400);
    // each message once on each side: nothing came back over the bridge it left by
    expect(inbox.messages.map((m) => m.topic).sort()).toEqual(['loop4/a', 'loop4/b', 'loop5/a', 'loop5/b']);
    expect(remoteInbox.messages.map((m) => m.topic).sort()).toEqual(['loop4/a', 'loop4/b', 'loop5/a', 'loop5/b']);
  });

  /** A mosquitto that keeps its sessions across a restart (persistence written on SIGTERM). */
  const persistentRemote = (): Promise<MosquittoFixture> => mosquitto({ config: ['persistence true', 'persistence_location %dir%/'] });

  /** A persistent subscriber at the remote, offline while the test runs: it gets what arrives meanwhile. */
  async function offlineWatcher(port: number, clientId: string, filter: string): Promise<void> {
    const watcher = await connectMqtt(`mqtt://127.0.0.1:${port}`, { clientId, clean: false });
    await watcher.subscribeAsync(filter, { qos: 1 });
    await watcher.endAsync();
  }

  it('keeps QoS 1 messages sent while the remote was down, and delivers them when it is back', async () => {
    const remote = await persistentRemote();
    const { node, url } = await fleetmq([bridge('cloud', remote.port, { topics: ['q/# both 1'], maxQueued: 100 })]);
    await waitUntil(() => bridgeState(node, 'cloud') === 'connected', 5000, 'bridge connected');
    await offlineWatcher(remote.port, 'q-watcher', 'q/#');
    const local = await connectMqtt(url, { clientId: 'q-pub' });
    await local.publishAsync('q/before', 'b', { qos: 1 });

    await remote.restart(); // mid-test: the bridge loses the remote and finds it again
    await waitUntil(() => bridgeState(node, 'cloud') === 'connected', 8000, 'bridge reconnected after a restart');
    await local.publishAsync('q/after-restart', 'r', { qos: 1 });

    await remote.kill();
    await waitUntil(() => bridgeState(node, 'cloud') !== 'connected', 5000, 'bridge notices');
    for (let i = 0; i < 20; i++) await local.publishAsync(`q/while-down/${i}`, String(i), { qos: 1 });
    expect(node.bridges!.stats()[0]!.queued).toBe(20);
    await remote.restart();
    await waitUntil(() => bridgeState(node, 'cloud') === 'connected', 8000, 'bridge reconnected');
    await waitUntil(() => node.bridges!.stats()[0]!.queued === 0, 5000, 'queue drained');

    // the inbox listens before CONNACK: the stored messages follow it at once
    const inbox = new Inbox(createMqtt(`mqtt://127.0.0.1:${remote.port}`, { clientId: 'q-watcher', clean: false }));
    const got = await inbox.wait(22, 8000);
    expect(got.map((m) => m.topic)).toEqual(['q/before', 'q/after-restart', ...Array.from({ length: 20 }, (_, i) => `q/while-down/${i}`)]);
    const stats = node.bridges!.stats()[0]!;
    expect(stats).toMatchObject({ messagesOut: 22, dropped: 0, connects: 3 });
  });

  it('drops the oldest queued message when the queue is full, and counts it', async () => {
    const remote = await persistentRemote();
    const { node, url } = await fleetmq([bridge('small', remote.port, { topics: ['d/# out 1'], maxQueued: 5 })]);
    await waitUntil(() => bridgeState(node, 'small') === 'connected', 5000, 'bridge connected');
    await offlineWatcher(remote.port, 'd-watcher', 'd/#');
    await remote.kill();
    await waitUntil(() => bridgeState(node, 'small') !== 'connected', 5000, 'bridge notices');
    const local = await connectMqtt(url, { clientId: 'd-pub' });
    for (let i = 0; i < 8; i++) await local.publishAsync(`d/${i}`, String(i), { qos: 1 });
    expect(node.bridges!.stats()[0]).toMatchObject({ queued: 5, dropped: 3 });
    await remote.restart();
    await waitUntil(() => node.bridges!.stats()[0]!.messagesOut === 5, 8000, 'the queue sent');
    // the inbox listens before CONNACK: the stored messages follow it at once
    const watcher = createMqtt(`mqtt://127.0.0.1:${remote.port}`, { clientId: 'd-watcher', clean: false });
    const got = await new Inbox(watcher).wait(5, 8000);
    expect(got.map((m) => m.topic)).toEqual(['d/3', 'd/4', 'd/5', 'd/6', 'd/7']);
    await quietPeriod(300);
    expect(node.bridges!.stats()[0]).toMatchObject({ queued: 0, dropped: 3, messagesOut: 5 });
  });

  it('publishes its state retained on $SYS/broker/connection/<name>/state, locally and on the remote', async () => {
    const remote = await mosquitto();
    const { node, url } = await fleetmq([bridge('notify', remote.port, { topics: ['n/# out 0'] })]);
    await waitUntil(() => bridgeState(node, 'notify') === 'connected', 5000, 'bridge connected');
    const local = await connectMqtt(url, { clientId: 'n-local' });
    const localInbox = new Inbox(local);
    await local.subscribeAsync('$SYS/broker/connection/notify/state', { qos: 1 });
    const [up] = await localInbox.wait(1);
    expect([up!.payload, up!.packet.retain]).toEqual(['1', true]);
    const remoteClient = await connectMqtt(`mqtt://127.0.0.1:${remote.port}`, { clientId: 'n-remote' });
    const remoteInbox = new Inbox(remoteClient);
    await remoteClient.subscribeAsync('$SYS/broker/connection/notify/state', { qos: 1 });
    const [remoteUp] = await remoteInbox.wait(1);
    expect([remoteUp!.payload, remoteUp!.packet.retain]).toEqual(['1', true]);
    await remote.kill();
    const [down] = await localInbox.wait(1, 5000, (m) => m.payload === '0');
    expect(down!.topic).toBe('$SYS/broker/connection/notify/state');
  });

  it('fails over to the next address, and reaches the remote over TLS with a client certificate', async () => {
    const tlsPort = await freePort();
    const remote = await mosquitto({
      port: tlsPort,
      listener: (p) => [
        `listener ${p} 127.0.0.1`,
        'allow_anonymous true',
        `cafile ${pki.ca}`,
        `certfile ${pki.server.cert}`,
        `keyfile ${pki.server.key}`,
        'require_certificate true',
      ],
    });
    const dead = await freePort();
    const { node, url } = await fleetmq([
      {
        name: 'secure',
        addresses: `127.0.0.1:${dead} localhost:${remote.port}`,
        tls: { caFile: pki.ca, certFile: pki.client.cert, keyFile: pki.client.key },
        reconnectDelay: { base: 100, cap: 400 },
        topics: ['tls/# both 1 "" remote/'],
      },
    ]);
    await waitUntil(() => bridgeState(node, 'secure') === 'connected', 8000, 'bridge connected over TLS');
    expect(node.bridges!.stats()[0]!.address).toBe(`localhost:${remote.port}`);
    await remote.waitForOutput(/New bridge connected from 127\.0\.0\.1:\d+ as secure/);
    const local = await connectMqtt(url, { clientId: 'tls-local' });
    const localInbox = new Inbox(local);
    await local.subscribeAsync('tls/#', { qos: 1 });
    // the remote side needs a certificate too
    const remoteClient = await connectMqtt(`mqtts://localhost:${remote.port}`, {
      clientId: 'tls-remote',
      ca: readFileSync(pki.ca),
      cert: readFileSync(pki.client.cert),
      key: readFileSync(pki.client.key),
    });
    const remoteInbox = new Inbox(remoteClient);
    await remoteClient.subscribeAsync('remote/tls/#', { qos: 1 });
    await local.publishAsync('tls/up', 'u', { qos: 1 });
    expect((await remoteInbox.wait(1))[0]!.topic).toBe('remote/tls/up');
    await remoteClient.publishAsync('remote/tls/down', 'd', { qos: 1 });
    expect((await localInbox.wait(1, 5000, (m) => m.topic === 'tls/down'))[0]!.payload).toBe('d');
  });
  it('checks the remote host name against its certificate unless insecure (Mosquitto bridge_insecure)', async () => {
    const remote = await mosquitto({
      listener: (p) => [`listener ${p} 127.0.0.1`, 'allow_anonymous true', `certfile ${pki.server.cert}`, `keyfile ${pki.server.key}`],
    });
    const tls = { caFile: pki.ca, serverName: 'not-the-server.example' };
    const { node } = await fleetmq([
      bridge('strict', remote.port, { topics: ['s/# out 0'], tls }),
      bridge('insecure', remote.port, { topics: ['i/# out 0'], tls: { ...tls, insecure: true } }),
    ]);
    await waitUntil(() => bridgeState(node, 'insecure') === 'connected', 5000, 'the insecure bridge connected');
    await quietPeriod(500);
    expect(bridgeState(node, 'strict')).not.toBe('connected');
    expect(node.bridges!.stats().find((s) => s.name === 'strict')!.connects).toBe(0);
  });
});

describe("mosquitto's own bridge into FleetMQ", () => {
  for (const transport of ['tcp', 'tls'] as const) {
    it(`is accepted with the bridge bit (0x84) over ${transport}, carries both ways with prefixes, and gets none of its own messages back`, async () => {
      const listeners =
        transport === 'tcp'
          ? undefined
          : [
              { type: 'tcp', name: 'tcp', host: '127.0.0.1', port: 0 },
              { type: 'tls', name: 'tls', host: '127.0.0.1', port: 0, tls: { certFile: pki.server.cert, keyFile: pki.server.key } },
            ];
      const { url, node } = await fleetmq([], listeners === undefined ? {} : { listeners });
      const port = node.addresses().find((a) => a.name === transport)!.port;
      const edge = await mosquitto({
        config: [
          'connection to-fleetmq',
          `address localhost:${port}`,
          ...(transport === 'tls' ? [`bridge_cafile ${pki.ca}`] : []),
          'remote_clientid gateway-1',
          'cleansession true',
          'restart_timeout 1',
          'topic telemetry/# out 1 "" site-1/',
          'topic commands/# in 1 "" site-1/',
          'topic shared/# both 1',
        ],
      });
      await edge.waitForOutput(/Connecting bridge.*to-fleetmq/);
      const cloud = await connectMqtt(url, { clientId: 'cloud-app', protocolVersion: 5 });
      const cloudInbox = new Inbox(cloud);
      await cloud.subscribeAsync('site-1/telemetry/#', { qos: 1 });
      await cloud.subscribeAsync('shared/#', { qos: 1 });
      const device = await connectMqtt(`mqtt://127.0.0.1:${edge.port}`, { clientId: 'device' });
      const deviceInbox = new Inbox(device);
      await device.subscribeAsync(['commands/#', 'shared/#'], { qos: 1 });
      // mosquitto's bridge subscribes on FleetMQ once connected: probe until a command goes through
      const deadline = Date.now() + 8000;
      while (deviceInbox.messages.length === 0 && Date.now() < deadline) {
        await cloud.publishAsync('site-1/commands/probe', 'p', { qos: 1 });
        await quietPeriod(200);
      }
      expect(deviceInbox.messages[0]).toMatchObject({ topic: 'commands/probe', payload: 'p' });

      await device.publishAsync('telemetry/temp', '20', { qos: 1 });
      const [t] = await cloudInbox.wait(1, 5000, (m) => m.topic.startsWith('site-1/telemetry/'));
      expect([t!.topic, t!.payload]).toEqual(['site-1/telemetry/temp', '20']);

      // both: each side gets each message once; nothing the bridge brought comes back to it
      await device.publishAsync('shared/x', 'from-device', { qos: 1 });
      await cloudInbox.wait(1, 5000, (m) => m.topic === 'shared/x');
      await cloud.publishAsync('shared/y', 'from-cloud', { qos: 1 });
      await deviceInbox.wait(1, 5000, (m) => m.topic === 'shared/y');
      await quietPeriod(400);
      expect(deviceInbox.messages.filter((m) => m.topic.startsWith('shared/')).map((m) => m.topic).sort()).toEqual(['shared/x', 'shared/y']);
      expect(cloudInbox.messages.filter((m) => m.topic.startsWith('shared/')).map((m) => m.topic).sort()).toEqual(['shared/x', 'shared/y']);
      expect(edge.output()).not.toMatch(/Connection Refused/i);
    });
  }
});
