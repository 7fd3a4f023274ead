import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { portIsClosed, startDynamo, startNatsServer, startRedisServer, useContainers } from '../src/servers.js';
import type { ServerFixture } from '../src/servers.js';
import { request } from 'node:http';
import { createConnection } from 'node:net';

const started: ServerFixture[] = [];
afterEach(async () => {
  for (const fixture of started.splice(0)) await fixture.stop();
});

/** Writes `send` (if any) and resolves with what the server says first, up to `until`. */
function talk(port: number, until: string, send?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no '${until}' from port ${port}; got ${JSON.stringify(received)}`));
    }, 3_000);
    socket.once('connect', () => {
      if (send !== undefined) socket.write(send);
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
      if (received.includes(until)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(received);
      }
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Resolves once a fresh listener can bind the port (the server released it). */
async function canBind(port: number): Promise<boolean> {
  const server = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise<void>((resolve) => server.close(() => resolve()));
  return ok;
}

function listTables(endpoint: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${endpoint}/`,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': 'DynamoDB_20120810.ListTables',
          'x-amz-date': '20240101T000000Z',
          authorization:
            'AWS4-HMAC-SHA256 Credential=t/20240101/local/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=0',
        },
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.once('error', reject);
    req.end('{}');
  });
}

describe('startNatsServer', () => {
  it('starts a server that answers, restarts on the same port, and stops', async () => {
    const nats = await startNatsServer();
    started.push(nats);
    expect(nats.url).toBe(`nats://127.0.0.1:${nats.port}`);
    const info = await talk(nats.port, '\r\n');
    expect(info).toMatch(/^INFO \{.*"server_id"/);
    const serverId = /"server_id":"([^"]+)"/.exec(info)?.[1];

    await nats.restart();
    const infoAfter = await talk(nats.port, '\r\n');
    expect(infoAfter).toMatch(/^INFO /);
    // a new server process answers on the same port
    expect(/"server_id":"([^"]+)"/.exec(infoAfter)?.[1]).not.toBe(serverId);

    await nats.stop();
    expect(await portIsClosed(nats.port)).toBe(true);
    expect(await canBind(nats.port)).toBe(true);
    await nats.stop(); // idempotent
  });

  it('passes extra arguments to the server (JetStream with its own store)', async () => {
    const nats = await startNatsServer({ args: ['-js'] });
    started.push(nats);
    const info = await talk(nats.port, '\r\n');
    expect(info).toContain('"jetstream":true');
  });

  it('names the package to install when the binary is missing', async () => {
    const saved = { bin: process.env['FLEETMQ_NATS_SERVER'], containers: process.env['FLEETMQ_TEST_CONTAINERS'] };
    process.env['FLEETMQ_NATS_SERVER'] = '/nonexistent/nats-server';
    process.env['FLEETMQ_TEST_CONTAINERS'] = '0';
    try {
      await expect(startNatsServer()).rejects.toThrow('install nats-server: apt-get install -y nats-server');
    } finally {
      for (const [key, value] of [
        ['FLEETMQ_NATS_SERVER', saved.bin],
        ['FLEETMQ_TEST_CONTAINERS', saved.containers],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});

describe('startRedisServer', () => {
  it('starts a server that answers PING, restarts on the same port, and stops', async () => {
    const redis = await startRedisServer();
    started.push(redis);
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect(await talk(redis.port, '+PONG', 'PING\r\n')).toBe('+PONG\r\n');
    await talk(redis.port, '+OK', 'SET k v\r\n');

    await redis.restart();
    expect(await talk(redis.port, '+PONG', 'PING\r\n')).toBe('+PONG\r\n');
    // a fresh server without persistence: the key is gone
    expect(await talk(redis.port, '\r\n', 'GET k\r\n')).toBe('$-1\r\n');

    await redis.stop();
    expect(await portIsClosed(redis.port)).toBe(true);
    expect(await canBind(redis.port)).toBe(true);
  });

  it('starts independent servers on different ports', async () => {
    const [a, b] = await Promise.all([startRedisServer(), startRedisServer()]);
    started.push(a, b);
    expect(a.port).not.toBe(b.port);
    await a.stop();
    expect(await talk(b.port, '+PONG', 'PING\r\n')).toBe('+PONG\r\n');
  });
});

describe('startDynamo', () => {
  it('starts an endpoint that answers ListTables, and stops', async () => {
    const dynamo = await startDynamo();
    started.push(dynamo);
    expect(dynamo.endpoint).toBe(`http://127.0.0.1:${dynamo.port}`);
    expect(dynamo.region).toBe('local');
    expect(dynamo.credentials.accessKeyId).not.toBe('');
    expect(dynamo.kind).toBe((await useContainers()) ? 'container' : 'in-process');
    const res = await listTables(dynamo.endpoint);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ TableNames: [] });

    await dynamo.stop();
    expect(await portIsClosed(dynamo.port)).toBe(true);
    expect(await canBind(dynamo.port)).toBe(true);
  });
});
