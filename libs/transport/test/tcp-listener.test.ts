import net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConnectionInfo } from '@fleetmq/broker';
import { TcpListener } from '../src/tcp-listener.js';

const listeners: TcpListener[] = [];
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(listeners.splice(0).map((l) => l.close()));
});

function listener(name = 'tcp', port = 0): TcpListener {
  const l = new TcpListener({ name, host: '127.0.0.1', port });
  listeners.push(l);
  return l;
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' }, () => resolve(socket));
    socket.once('error', reject);
    sockets.push(socket);
  });
}

describe('TcpListener', () => {
  it('listens on a free port when asked for port 0 and reports it', async () => {
    const l = listener();
    await l.listen(() => undefined);
    const address = l.address();
    expect(address.host).toBe('127.0.0.1');
    expect(address.port).toBeGreaterThan(0);
    expect(l.transport).toBe('tcp');
    expect(l.name).toBe('tcp');
  });

  it('hands over each accepted socket with where it came from, as a byte stream both ways', async () => {
    const l = listener('plain');
    const accepted: { stream: Duplex; info: ConnectionInfo }[] = [];
    await l.listen((stream, info) => {
      accepted.push({ stream, info });
      stream.pipe(stream); // echo
    });
    const socket = await connect(l.address().port);
    const echoed = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.write(Buffer.from([0x10, 0x00, 0xff]));
    expect([...(await echoed)]).toEqual([0x10, 0x00, 0xff]);
    expect(accepted).toHaveLength(1);
    expect(accepted[0]!.info).toEqual({
      transport: 'tcp',
      listener: 'plain',
      remoteAddress: '127.0.0.1',
      remotePort: socket.localPort,
    });
  });

  it('stops accepting on close()', async () => {
    const l = listener();
    await l.listen(() => undefined);
    const { port } = l.address();
    await l.close();
    await expect(connect(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('close() before listen() and a second close() are no-ops', async () => {
    const l = listener();
    await l.close();
    await l.listen(() => undefined);
    await l.close();
    await l.close();
  });

  it('close() ends connections nobody closed, after a grace period', async () => {
    const l = listener();
    await l.listen(() => undefined); // accepts and keeps the socket open
    const socket = await connect(l.address().port);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const start = Date.now();
    await l.close();
    await closed;
    expect(Date.now() - start).toBeLessThan(4000);
  });

  it('fails to listen on a port in use with an error naming the listener', async () => {
    const first = listener('first');
    await first.listen(() => undefined);
    const taken = first.address().port;
    const second = listener('second', taken);
    await expect(second.listen(() => undefined)).rejects.toThrow(`listener second cannot listen on 127.0.0.1:${taken}: EADDRINUSE`);
  });
});
