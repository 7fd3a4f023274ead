/**
 * Every row of the malformed-packet table (libs/testkit/src/packets.ts), sent over a raw
 * TCP socket to one in-process node; the reply is parsed with mqtt-packet in the row's
 * protocol version and must be exactly what the row expects. Then: the node still serves
 * a real client, and random bytes after a valid CONNECT never crash it.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import mqtt from 'mqtt';
import {
  connectBytes,
  malformedPackets,
  malformedTableLimits,
  pingreqBytes,
  RawMqttClient,
  type MalformedCase,
  type MalformedExpect,
  type PacketSummary,
} from '@fleetmq/testkit';
import { startTestNode, type TestNode } from './support/node.js';

/** How long the server may take to answer and close. */
const REPLY_MS = 1000;

/** What the row expects, as the packets received and whether the server then closed. */
function expected(row: MalformedCase): { packets: PacketSummary[]; closed: boolean } {
  const e: MalformedExpect = row.expect;
  switch (e.kind) {
    case 'close':
      return { packets: [], closed: true };
    case 'disconnect':
      return { packets: [{ cmd: 'disconnect', reasonCode: e.reasonCode }], closed: true };
    case 'connack': {
      const refused = row.version === 5 ? e.code >= 0x80 : e.code !== 0;
      return refused
        ? { packets: [{ cmd: 'connack', code: e.code }], closed: true }
        : { packets: [{ cmd: 'connack', code: e.code }, { cmd: 'pingresp' }], closed: false };
    }
    case 'suback':
      return { packets: [{ cmd: 'suback', codes: [...e.codes] }, { cmd: 'pingresp' }], closed: false };
    case 'unsuback':
      return { packets: [{ cmd: 'unsuback', codes: [...e.codes] }, { cmd: 'pingresp' }], closed: false };
  }
}

/** Sends one row and reports what came back (after the CONNACK of `connectFirst`). */
async function run(port: number, row: MalformedCase, index: number): Promise<{ packets: PacketSummary[]; closed: boolean; parseErrors: string[] }> {
  const client = await RawMqttClient.tcp(port, row.version);
  try {
    if (row.connectFirst !== false) {
      client.write(connectBytes(row.connectFirst, { clientId: `malformed-${index}` }));
      await client.until(() => client.packets.length > 0 || client.closed, REPLY_MS);
      expect(client.take(), 'the valid CONNECT before the row is accepted').toEqual([{ cmd: 'connack', code: 0 }]);
    }
    client.write(row.bytes);
    const want = expected(row);
    if (want.closed) {
      await client.until(() => client.closed, REPLY_MS);
    } else {
      // the reply that keeps the connection open, then proof that it is open: PINGREQ/PINGRESP
      await client.until(() => client.packets.length > 0 || client.closed, REPLY_MS);
      if (!client.closed) client.write(pingreqBytes());
      await client.until(() => client.packets.length >= want.packets.length || client.closed, REPLY_MS);
    }
    return { packets: client.take(), closed: client.closed, parseErrors: client.parseErrors };
  } finally {
    client.destroy();
  }
}

describe('malformed packets against a running node', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({ mqtt: { ...malformedTableLimits } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('the table has distinct names and rows whose CONNECT matches their version', () => {
    expect(malformedPackets.length).toBeGreaterThanOrEqual(50);
    expect(new Set(malformedPackets.map((r) => r.name)).size).toBe(malformedPackets.length);
    for (const row of malformedPackets) {
      if (row.connectFirst !== false) expect(row.connectFirst, row.name).toBe(row.version);
      if (row.expect.kind === 'disconnect') expect(row.version, row.name).toBe(5);
    }
  });

  malformedPackets.forEach((row, index) => {
    it(`[${row.spec}] ${row.name}`, async () => {
      const outcome = await run(t.port, row, index);
      expect(outcome.parseErrors, 'what the server sent parses').toEqual([]);
      expect({ packets: outcome.packets, closed: outcome.closed }).toEqual(expected(row));
    });
  });

  it('after the table the node still serves a new client, and no connection is left behind', async () => {
    const sub = await mqtt.connectAsync(t.url, { clientId: 'after-table-sub', protocolVersion: 5, reconnectPeriod: 0 });
    const pub = await mqtt.connectAsync(t.url, { clientId: 'after-table-pub', protocolVersion: 4, reconnectPeriod: 0 });
    await sub.subscribeAsync('after/table', { qos: 1 });
    const received = new Promise<string>((resolve) => sub.once('message', (_topic, payload) => resolve(payload.toString())));
    await pub.publishAsync('after/table', 'still here', { qos: 1 });
    expect(await received).toBe('still here');
    await Promise.all([sub.endAsync(), pub.endAsync()]);
    await vi.waitFor(() => expect(t.node.broker.connectionCount).toBe(0), { timeout: 3000 });
  });

  it('random bytes after a valid CONNECT: the node answers with valid packets or closes, and survives', async () => {
    // what a server may send a client after CONNACK
    const serverToClient = new Set(['publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'suback', 'unsuback', 'pingresp', 'disconnect']);
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom<4 | 5>(4, 5), fc.uint8Array({ minLength: 1, maxLength: 200 }), async (version, bytes) => {
        const client = await RawMqttClient.tcp(t.port, version);
        try {
          client.write(connectBytes(version, { clientId: `fuzz-${run++}` }));
          await client.until(() => client.packets.length > 0 || client.closed, REPLY_MS);
          expect(client.take()).toEqual([{ cmd: 'connack', code: 0 }]);
          client.write(Buffer.from(bytes));
          // closed, or quiet for a moment (a packet still waiting for its remaining bytes)
          let seen = -1;
          while (!client.closed && seen !== client.packets.length) {
            seen = client.packets.length;
            await client.until(() => client.closed || client.packets.length !== seen, 60);
          }
          expect(client.parseErrors).toEqual([]);
          for (const p of client.packets) expect(serverToClient.has(p.cmd), p.cmd).toBe(true);
          const disconnects = client.packets.filter((p) => p.cmd === 'disconnect');
          if (version === 4) expect(disconnects).toEqual([]);
          if (disconnects.length > 0) {
            expect(disconnects.length).toBe(1);
            expect(client.packets.at(-1)!.cmd).toBe('disconnect');
            await client.until(() => client.closed, REPLY_MS);
            expect(client.closed).toBe(true);
          }
        } finally {
          client.destroy();
        }
      }),
      { numRuns: 200 },
    );
    // the process is alive and serving: a fresh client connects and pings
    const fresh = await RawMqttClient.tcp(t.port, 4);
    fresh.write(connectBytes(4, { clientId: 'after-fuzz' }));
    fresh.write(pingreqBytes());
    await fresh.until(() => fresh.packets.length >= 2, REPLY_MS);
    expect(fresh.take()).toEqual([{ cmd: 'connack', code: 0 }, { cmd: 'pingresp' }]);
    fresh.destroy();
    await vi.waitFor(() => expect(t.node.broker.connectionCount).toBe(0), { timeout: 3000 });
  }, 60_000);
});
