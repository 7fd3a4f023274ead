import type { IDisconnectPacket, MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { connectMqtt, endMqttClients, once, withTimeout } from '../../../test/support/clients.js';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startNode, type RunningNode } from '../src/main.js';

// Drain (SIGTERM's path, RunningNode.stop) of one embedded node: what clients are told.

let node: RunningNode | undefined;

afterEach(async () => {
  await endMqttClients();
  await node?.stop();
  node = undefined;
});

async function start(drain: Record<string, unknown>): Promise<string> {
  const config = parseConfig({
    nodeId: 'drain-node',
    log: { level: process.env.FLEETMQ_TEST_LOG ?? 'silent' },
    listeners: [{ type: 'tcp', name: 'tcp', host: '127.0.0.1', port: 0 }],
    ops: { enabled: false },
    drain,
  });
  node = await startNode(config, createLogger(config.log.level, process.stderr));
  return `mqtt://127.0.0.1:${node.addresses()[0]!.port}`;
}

function disconnectOf(client: MqttClient): Promise<IDisconnectPacket> {
  return once<[IDisconnectPacket]>(client, 'disconnect').then(([packet]) => packet);
}

describe('drain: what connected clients are told', () => {
  it('MQTT 5 clients get DISCONNECT 0x8B Server shutting down by default; 3.1.1 clients are closed', async () => {
    const url = await start({});
    const v5 = await connectMqtt(url, { protocolVersion: 5, clientId: 'v5' });
    const v3 = await connectMqtt(url, { protocolVersion: 4, clientId: 'v3' });
    const told = disconnectOf(v5);
    const closed = once(v3, 'close');
    await node!.stop();
    expect((await told).reasonCode).toBe(0x8b);
    await withTimeout(closed, 2_000, 'the 3.1.1 client to be closed');
  });

  it('[MQTT-3.14.2.2.4] with drain.serverReference, MQTT 5 clients get 0x9C Use another server and the Server Reference', async () => {
    const url = await start({ serverReference: 'mqtt.example.com:1883' });
    const v5 = await connectMqtt(url, { protocolVersion: 5, clientId: 'v5' });
    const told = disconnectOf(v5);
    await node!.stop();
    const packet = await told;
    expect(packet.reasonCode).toBe(0x9c);
    expect(packet.properties?.serverReference).toBe('mqtt.example.com:1883');
  });

  it('refuses an empty server reference at start, naming the key', () => {
    expect(() => parseConfig({ drain: { serverReference: '' } })).toThrow(/drain\.serverReference/);
  });
});
