import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentLog, type Broker, type ConnectionInfo } from '@fleetmq/broker';
import { RawMqttClient, connectBytes, waitFor } from '@fleetmq/testkit';
import { Connection } from '../src/connection.js';
import { TcpListener } from '../src/tcp-listener.js';
import { WsListener } from '../src/ws-listener.js';
import WebSocket from 'ws';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { v1Header, v2Header } from './proxy-support.js';
import { defaultConnectionOptions, makeBroker, sleep } from './support.js';
import { makePki, mqttOverTls, recordingLog, startTlsServer, type TestPki, type TlsMqttServer } from './tls-support.js';

const HEADER_TIMEOUT = 300;
const closers: (() => unknown)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

describe('TcpListener with proxyProtocol', () => {
  let listener: TcpListener;
  let broker: Broker;
  let accepted: ConnectionInfo[];
  let log: ReturnType<typeof recordingLog>;

  async function start(): Promise<number> {
    broker = makeBroker();
    accepted = [];
    log = recordingLog();
    listener = new TcpListener({ name: 'behind-nlb', host: '127.0.0.1', port: 0, proxyProtocol: true, proxyHeaderTimeout: HEADER_TIMEOUT }, log);
    await listener.listen((stream, info) => {
      accepted.push(info);
      new Connection(stream, info, broker, defaultConnectionOptions, silentLog);
    });
    closers.push(() => listener.close(), () => broker.shutdown(0x8b));
    return listener.address().port;
  }

  async function client(port: number): Promise<RawMqttClient> {
    const c = await RawMqttClient.tcp(port, 4);
    closers.push(() => c.destroy());
    return c;
  }

  it('takes the v1 source address, with the CONNECT in the same segment', async () => {
    const c = await client(await start());
    c.write(Buffer.concat([v1Header('tcp4', ['203.0.113.7', 51234], ['10.0.0.5', 1883]), connectBytes(4, { clientId: 'v1' })]));
    await c.packetsOrClose(1, 1000);
    expect(c.take()).toEqual([{ cmd: 'connack', code: 0 }]);
    expect(accepted).toEqual([{ transport: 'tcp', listener: 'behind-nlb', remoteAddress: '203.0.113.7', remotePort: 51234, proxied: true }]);
  });

  it('takes a v2 IPv6 source that arrives a byte at a time, then the CONNECT', async () => {
    const c = await client(await start());
    const header = v2Header({ family: 'tcp6', source: ['2001:db8::42', 61000], destination: ['2001:db8::1', 1883] });
    for (const byte of header) {
      c.write(Buffer.from([byte]));
      await sleep(1);
    }
    c.write(connectBytes(4, { clientId: 'v2-slow' }));
    await c.packetsOrClose(1, 1000);
    expect(c.take()).toEqual([{ cmd: 'connack', code: 0 }]);
    expect(accepted).toEqual([{ transport: 'tcp', listener: 'behind-nlb', remoteAddress: '2001:db8::42', remotePort: 61000, proxied: true }]);
  });

  it("passes AWS PrivateLink's VPC endpoint ID on", async () => {
    const c = await client(await start());
    const vpce = Buffer.concat([Buffer.from([0x01]), Buffer.from('vpce-08d2bf15fac5001c9', 'latin1')]);
    const header = v2Header({ family: 'tcp4', source: ['10.9.8.7', 33000], destination: ['10.0.0.5', 1883], tlvs: [[0xea, vpce]] });
    c.write(Buffer.concat([header, connectBytes(4, { clientId: 'privatelink' })]));
    await c.packetsOrClose(1, 1000);
    expect(c.take()).toEqual([{ cmd: 'connack', code: 0 }]);
    expect(accepted).toEqual([
      { transport: 'tcp', listener: 'behind-nlb', remoteAddress: '10.9.8.7', remotePort: 33000, proxied: true, vpcEndpointId: 'vpce-08d2bf15fac5001c9' },
    ]);
  });

  for (const [what, header] of [
    ['v2 LOCAL (a health check)', v2Header({ command: 'local', family: 'unspec' })],
    ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n', 'latin1')],
  ] as const) {
    it(`keeps the socket's own address for ${what}`, async () => {
      const c = await client(await start());
      c.write(Buffer.concat([header, connectBytes(4, { clientId: 'local' })]));
      await c.packetsOrClose(1, 1000);
      expect(c.take()).toEqual([{ cmd: 'connack', code: 0 }]);
      const socket = c.stream as net.Socket;
      expect(accepted).toEqual([{ transport: 'tcp', listener: 'behind-nlb', remoteAddress: '127.0.0.1', remotePort: socket.localPort, proxied: false }]);
    });
  }

  it('closes a connection that starts with MQTT instead of a header, at once', async () => {
    const c = await client(await start());
    c.write(connectBytes(4, { clientId: 'direct' }));
    expect(await c.until(() => c.closed, 1000)).toBe(true);
    expect(c.closedAfter).toBeLessThan(HEADER_TIMEOUT);
    expect(c.take()).toEqual([]);
    expect(accepted).toEqual([]);
    expect(listener.proxyHeaderRejections).toBe(1);
    expect(log.entries.map((e) => [e.msg, e.fields.reason])).toEqual([['proxy_header_rejected', 'no PROXY protocol signature']]);
  });

  it('closes a v1 line that runs past 107 bytes, at once', async () => {
    const c = await client(await start());
    c.write(Buffer.from(`PROXY TCP4 ${'9'.repeat(200)}`, 'latin1'));
    expect(await c.until(() => c.closed, 1000)).toBe(true);
    expect(c.closedAfter).toBeLessThan(HEADER_TIMEOUT);
    expect(accepted).toEqual([]);
  });

  for (const [what, bytes] of [
    ['sends nothing', Buffer.alloc(0)],
    ['stops in the middle of a header', Buffer.from('PROXY TCP4 10.0.0.1 ', 'latin1')],
  ] as const) {
    it(`closes a connection that ${what}, after proxyHeaderTimeout`, async () => {
      const c = await client(await start());
      if (bytes.length > 0) c.write(bytes);
      expect(await c.until(() => c.closed, 3000)).toBe(true);
      expect(c.closedAfter).toBeGreaterThanOrEqual(HEADER_TIMEOUT - 50);
      expect(accepted).toEqual([]);
      expect(log.entries.map((e) => e.fields.reason)).toEqual(['no PROXY header in time']);
    });
  }
});

describe('WsListener with proxyProtocol (TLS ended at the load balancer, plain WebSocket behind it)', () => {
  async function start(): Promise<{ port: number; listener: WsListener; accepted: ConnectionInfo[] }> {
    const broker = makeBroker();
    const accepted: ConnectionInfo[] = [];
    const listener = new WsListener({ name: 'ws-behind-nlb', host: '127.0.0.1', port: 0, path: '/mqtt', maxPayload: 1 << 20, proxyProtocol: true, proxyHeaderTimeout: HEADER_TIMEOUT }, recordingLog());
    await listener.listen((stream, info) => {
      accepted.push(info);
      new Connection(stream, info, broker, defaultConnectionOptions, silentLog);
    });
    closers.push(() => listener.close(), () => broker.shutdown(0x8b));
    return { port: listener.address().port, listener, accepted };
  }

  /** A WebSocket whose TCP connection starts with `header` (as the load balancer's would). */
  function open(port: number, header: Buffer | undefined): Promise<{ ws: WebSocket; packets: Packet[] } | { error: string }> {
    return new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'], {
        createConnection: () => {
          const socket = net.connect(port, '127.0.0.1');
          if (header !== undefined) socket.write(header);
          return socket;
        },
      });
      closers.push(() => ws.terminate());
      const packets: Packet[] = [];
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      parser.on('packet', (p: Packet) => packets.push(p));
      ws.on('message', (data: Buffer) => parser.parse(data));
      ws.once('open', () => resolve({ ws, packets }));
      ws.once('error', (err) => resolve({ error: err.message }));
    });
  }

  it('takes the client address from a v2 header before the HTTP upgrade; MQTT flows as without it', async () => {
    const { port, accepted } = await start();
    const opened = await open(port, v2Header({ family: 'tcp4', source: ['198.51.100.23', 40001], destination: ['10.0.0.5', 8083] }));
    if ('error' in opened) throw new Error(opened.error);
    opened.ws.send(connectBytes(4, { clientId: 'ws-v2' }));
    await waitFor(() => opened.packets.length > 0, 'the CONNACK');
    expect(opened.packets.map((p) => p.cmd)).toEqual(['connack']);
    expect(accepted).toEqual([{ transport: 'ws', listener: 'ws-behind-nlb', remoteAddress: '198.51.100.23', remotePort: 40001, proxied: true }]);
  });

  it('closes a connection whose HTTP request comes without a header, and counts it', async () => {
    const { port, listener, accepted } = await start();
    const opened = await open(port, undefined);
    expect(opened).toHaveProperty('error');
    expect(listener.proxyHeaderRejections).toBe(1);
    expect(accepted).toEqual([]);
  });
});

describe('TlsListener with proxyProtocol', () => {
  let pki: TestPki;
  let server: TlsMqttServer;
  const cleanup: { destroy(): void }[] = [];

  beforeAll(() => {
    pki = makePki();
  });
  afterAll(() => pki.cleanup());
  afterEach(() => {
    for (const s of cleanup.splice(0)) s.destroy();
  });

  async function start(): Promise<TlsMqttServer> {
    server = await startTlsServer({
      certFile: pki.server.cert,
      keyFile: pki.server.key,
      caFile: pki.ca,
      clientCertificate: 'required',
      proxyProtocol: true,
      proxyHeaderTimeout: HEADER_TIMEOUT,
    });
    closers.push(() => server.close());
    return server;
  }

  const client = (): tls.ConnectionOptions => ({
    ca: fs.readFileSync(pki.ca),
    cert: fs.readFileSync(pki.client.cert),
    key: fs.readFileSync(pki.client.key),
  });

  /**
   * A TCP load balancer: it writes the header and the client's first bytes (the
   * ClientHello) in one segment upstream, then relays both ways.
   */
  async function loadBalancer(upstreamPort: number, header: Buffer): Promise<number> {
    const lb = net.createServer((downstream) => {
      downstream.once('data', (hello: Buffer) => {
        const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort }, () => {
          upstream.write(Buffer.concat([header, hello]));
          downstream.pipe(upstream).pipe(downstream);
        });
        upstream.on('error', () => downstream.destroy());
        downstream.on('error', () => upstream.destroy());
        cleanup.push(upstream, downstream);
      });
    });
    await new Promise<void>((resolve) => lb.listen(0, '127.0.0.1', () => resolve()));
    closers.push(() => new Promise<void>((resolve) => lb.close(() => resolve())));
    return (lb.address() as net.AddressInfo).port;
  }

  it('reads the header, then the handshake that came in the same segment; the real address and the certificate reach ConnectionInfo', async () => {
    const s = await start();
    const lbPort = await loadBalancer(s.port, v2Header({ family: 'tcp4', source: ['198.51.100.9', 40001], destination: ['10.0.0.5', 8883] }));
    const outcome = await mqttOverTls(lbPort, client(), 'device-1', cleanup);
    expect(outcome.kind === 'connack' && outcome.code).toBe(0);
    expect(s.accepted).toEqual([
      {
        transport: 'tls',
        listener: 'tls',
        remoteAddress: '198.51.100.9',
        remotePort: 40001,
        proxied: true,
        clientCertificate: expect.objectContaining({ subject: { CN: 'device-1', O: 'Fleet', OU: 'a,b' } }),
      },
    ]);
  });

  it('reads a v1 header written before the TLS client starts on the same socket', async () => {
    const s = await start();
    const raw = net.connect({ host: '127.0.0.1', port: s.port });
    cleanup.push(raw);
    await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
    raw.write(v1Header('tcp6', ['2001:db8::9', 45000], ['2001:db8::1', 8883]));
    await sleep(20);
    const outcome = await mqttOverTls(0, { ...client(), socket: raw }, 'device-1-v1', cleanup);
    expect(outcome.kind === 'connack' && outcome.code).toBe(0);
    expect(s.accepted.map((i) => [i.remoteAddress, i.remotePort, i.proxied])).toEqual([['2001:db8::9', 45000, true]]);
  });

  it('closes a TLS client that connects without a header', async () => {
    const s = await start();
    const outcome = await mqttOverTls(s.port, client(), 'direct', cleanup);
    expect(outcome).toEqual({ kind: 'closed' });
    expect(s.accepted).toEqual([]);
    expect(s.listener.proxyHeaderRejections).toBe(1);
    expect(s.listener.handshakeFailures).toBe(0);
  });

  it('still refuses a client without a certificate behind the proxy', async () => {
    const s = await start();
    const lbPort = await loadBalancer(s.port, v1Header('tcp4', ['198.51.100.10', 40002], ['10.0.0.5', 8883]));
    const outcome = await mqttOverTls(lbPort, { ca: fs.readFileSync(pki.ca) }, 'no-cert', cleanup);
    expect(outcome).toEqual({ kind: 'closed' });
    expect(s.accepted).toEqual([]);
  });
});
