import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import WebSocket, { createWebSocketStream } from 'ws';
import { silentLog, type Broker, type ConnectionInfo } from '@fleetmq/broker';
import { RawMqttClient, connectBytes, pingreqBytes, subscribeBytes } from '@fleetmq/testkit';
import { Connection } from '../src/connection.js';
import { WsListener } from '../src/ws-listener.js';
import { defaultConnectionOptions, makeBroker, sleep } from './support.js';

const MAX_PAYLOAD = 4096;

let listener: WsListener;
let broker: Broker;
let accepted: ConnectionInfo[];
let port: number;
const sockets: { destroy(): void }[] = [];

beforeEach(async () => {
  broker = makeBroker();
  accepted = [];
  listener = new WsListener({ name: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt', maxPayload: MAX_PAYLOAD });
  await listener.listen((stream, info) => {
    accepted.push(info);
    new Connection(stream, info, broker, defaultConnectionOptions, silentLog);
  });
  port = listener.address().port;
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  broker.shutdown(0x8b);
  await listener.close();
});

/** Opens a WebSocket; resolves with it once open, or with the HTTP status that refused it. */
function open(path: string, protocols?: string[]): Promise<WebSocket | { status: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols);
    sockets.push({ destroy: () => ws.terminate() });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      res.resume();
    });
    ws.once('error', reject);
  });
}

async function openOk(path: string, protocols?: string[]): Promise<WebSocket> {
  const ws = await open(path, protocols);
  if (!(ws instanceof WebSocket)) throw new Error(`refused with HTTP ${ws.status}`);
  return ws;
}

/** An MQTT client over an open WebSocket. */
function mqttOver(ws: WebSocket, version: 4 | 5): RawMqttClient {
  const client = new RawMqttClient(createWebSocketStream(ws), version);
  sockets.push(client);
  return client;
}

describe('WsListener handshake', () => {
  for (const subprotocol of ['mqtt', 'mqttv3.1']) {
    it(`accepts the subprotocol ${subprotocol} and carries MQTT`, async () => {
      const ws = await openOk('/mqtt', [subprotocol]);
      expect(ws.protocol).toBe(subprotocol);
      const client = mqttOver(ws, 4);
      client.write(connectBytes(4, { clientId: `ws-${subprotocol}` }));
      await client.packetsOrClose(1, 1000);
      expect(client.take()).toEqual([{ cmd: 'connack', code: 0 }]);
      expect(accepted).toEqual([{ transport: 'ws', listener: 'ws', remoteAddress: '127.0.0.1', remotePort: expect.any(Number) }]);
    });
  }

  it('picks mqtt out of several offered subprotocols', async () => {
    const ws = await openOk('/mqtt', ['chat', 'mqtt']);
    expect(ws.protocol).toBe('mqtt');
  });

  it('accepts a client that offers no subprotocol', async () => {
    const ws = await openOk('/mqtt');
    expect(ws.protocol).toBe('');
    expect(accepted).toHaveLength(1);
  });

  it('refuses an unknown subprotocol with 400', async () => {
    expect(await open('/mqtt', ['chat'])).toEqual({ status: 400 });
    expect(accepted).toEqual([]);
  });

  it('answers another path with 404', async () => {
    expect(await open('/other', ['mqtt'])).toEqual({ status: 404 });
    expect(await open('/mqtt/x', ['mqtt'])).toEqual({ status: 404 });
    expect(accepted).toEqual([]);
  });

  it('accepts the MQTT path with a query string', async () => {
    const ws = await openOk('/mqtt?token=abc', ['mqtt']);
    expect(ws.protocol).toBe('mqtt');
  });

  it('answers a plain HTTP GET with 426 Upgrade Required', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get(`http://127.0.0.1:${port}/mqtt`, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .once('error', reject);
    });
    expect(status).toBe(426);
    expect(body).toContain('upgrade required');
    expect(accepted).toEqual([]);
  });
});

describe('WsListener framing', () => {
  it('reassembles an MQTT packet split over several WebSocket messages, and reads several packets from one', async () => {
    const ws = await openOk('/mqtt', ['mqtt']);
    const client = mqttOver(ws, 5);
    const connect = connectBytes(5, { clientId: 'split-frames' });
    ws.send(connect.subarray(0, 1));
    await sleep(10);
    ws.send(connect.subarray(1, 5));
    await sleep(10);
    ws.send(connect.subarray(5));
    await client.packetsOrClose(1, 1000);
    expect(client.take()).toEqual([{ cmd: 'connack', code: 0 }]);
    ws.send(Buffer.concat([pingreqBytes(), subscribeBytes(5, [{ topic: 'a/+', qos: 1 }]), pingreqBytes()]));
    await client.packetsOrClose(3, 1000);
    expect(client.take()).toEqual([{ cmd: 'pingresp' }, { cmd: 'suback', codes: [1] }, { cmd: 'pingresp' }]);
  });

  it('reads a WebSocket frame that arrives split across TCP segments', async () => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
    sockets.push(socket);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      [
        'GET /mqtt HTTP/1.1',
        `Host: 127.0.0.1:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Protocol: mqtt',
        '',
        '',
      ].join('\r\n'),
    );
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    await vi.waitFor(() => expect(received.includes('\r\n\r\n')).toBe(true));
    const headEnd = received.indexOf('\r\n\r\n') + 4;
    const head = received.subarray(0, headEnd).toString();
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head.toLowerCase()).toContain('sec-websocket-protocol: mqtt');
    received = received.subarray(headEnd);

    // one masked binary frame carrying a CONNECT, written a few bytes at a time
    const payload = connectBytes(4, { clientId: 'tcp-split' });
    const mask = randomBytes(4);
    const frame = Buffer.concat([Buffer.from([0x82, 0x80 | payload.length]), mask, payload.map((b, i) => b ^ mask[i % 4]!)]);
    for (let i = 0; i < frame.length; i += 3) {
      socket.write(frame.subarray(i, i + 3));
      await sleep(5);
    }
    // the answer: one unmasked binary frame with CONNACK
    await vi.waitFor(() => expect(received.length).toBeGreaterThanOrEqual(6));
    expect([...received.subarray(0, 6)]).toEqual([0x82, 0x04, 0x20, 0x02, 0x00, 0x00]);
  });

  it('closes a WebSocket message larger than maxPayload with 1009', async () => {
    const ws = await openOk('/mqtt', ['mqtt']);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send(Buffer.alloc(MAX_PAYLOAD + 1));
    expect(await closed).toBe(1009);
  });

  it('releases the connection when the client closes the WebSocket', async () => {
    const ws = await openOk('/mqtt', ['mqtt']);
    const client = mqttOver(ws, 4);
    client.write(connectBytes(4, { clientId: 'ws-close' }));
    await client.packetsOrClose(1, 1000);
    expect(broker.connectionCount).toBe(1);
    ws.close(1000);
    await vi.waitFor(() => expect(broker.connectionCount).toBe(0));
  });

  it('stops accepting on close()', async () => {
    await listener.close();
    await expect(open('/mqtt', ['mqtt'])).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
