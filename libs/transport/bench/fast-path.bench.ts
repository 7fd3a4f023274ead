/**
 * The per-message path without sockets: a Broker on the in-process adapters, real Connection
 * objects on in-memory streams that count and discard what they are written, MQTT packets in
 * as bytes. Prints a Markdown table (bench/README.md "Fast path" keeps a copy). Asserts only
 * that every delivery arrived, so the figures count real work.
 *
 *   npx vite-node libs/transport/bench/fast-path.bench.ts
 *
 * Rows:
 * - fan-out: one QoS 0 PUBLISH (64-byte payload) to 50 and 500 subscribers, ns per delivery;
 * - QoS 1: one PUBLISH in and its PUBACK, one QoS 1 delivery out and its PUBACK in, ns per message;
 * - parse: 100 QoS 0 PUBLISH packets in one chunk, ns per packet;
 * - encode: one QoS 0 PUBLISH for 500 subscribers, mqtt-packet per subscriber against one
 *   shared encode (frame.ts), and a PUBACK;
 * - connect: CONNECT in, CONNACK out, connection closed, ns per connection (the storm path).
 */
import { Duplex } from 'node:stream';
import mqtt from 'mqtt-packet';
import { silentLog, type Broker, type ConnectionInfo } from '@fleetmq/broker';
import { Connection } from '../src/connection.js';
import { encodePublish, encodeShortAck } from '../src/frame.js';
import { makeBroker } from '../test/memory-broker.js';

const info: ConnectionInfo = { transport: 'memory', listener: 'bench', remoteAddress: '127.0.0.1', remotePort: 1 };
const options = { maxPacketSize: 1 << 20, outputBufferLimit: 64 << 20, connectTimeout: 10_000 };

/** A stream the broker writes into: counts bytes, keeps nothing. */
class Drain extends Duplex {
  bytes = 0;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.bytes += chunk.length;
    done();
  }
  override _writev(chunks: { chunk: Buffer }[], done: () => void): void {
    for (const c of chunks) this.bytes += c.chunk.length;
    done();
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function client(broker: Broker, clientId: string, filter?: string, qos: 0 | 1 = 0): Promise<{ stream: Drain; connection: Connection }> {
  const stream = new Drain();
  const connection = new Connection(stream, info, broker, options, silentLog);
  stream.emit('data', mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 0 }));
  await tick();
  if (filter !== undefined) {
    stream.emit('data', mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] }));
    await tick();
  }
  return { stream, connection };
}

/** Mean ns per unit of `run(n)` (which does n units), over at least minMs after a warm-up. */
async function nsPer(run: (n: number) => Promise<void> | void, unitsPerCall = 1, minMs = 400): Promise<number> {
  await run(200); // warm up (JIT)
  let n = 200;
  for (;;) {
    const t0 = process.hrtime.bigint();
    await run(n);
    const ns = Number(process.hrtime.bigint() - t0);
    if (ns >= minMs * 1e6) return ns / (n * unitsPerCall);
    n *= 2;
  }
}

const payload = Buffer.alloc(64, 0x61);
const rows: string[] = ['| path | ns per unit | unit |', '|---|---:|---|'];
const row = (path: string, ns: number, unit: string): number => rows.push(`| ${path} | ${Math.round(ns)} | ${unit} |`);

// ---- fan-out through the broker ----
for (const subscribers of [50, 500]) {
  const broker = makeBroker();
  const subs = await Promise.all(Array.from({ length: subscribers }, (_, i) => client(broker, `s${i}`, 'fan/out')));
  const pub = await client(broker, 'p');
  const packet = mqtt.generate({ cmd: 'publish', topic: 'fan/out', payload, qos: 0, retain: false, dup: false });
  const before = broker.stats.messagesOut[0];
  let published = 0;
  const ns = await nsPer(async (n) => {
    // 100 PUBLISH packets per read, as a busy publisher's socket delivers them
    const chunk = Buffer.concat(Array.from({ length: 100 }, () => packet));
    for (let i = 0; i < n; i += 100) {
      pub.stream.emit('data', chunk);
      published += 100;
      await tick();
    }
  }, subscribers);
  if (broker.stats.messagesOut[0] - before !== published * subscribers) throw new Error('fan-out: deliveries missing');
  row(`fan-out QoS 0, 1 → ${subscribers}`, ns, 'delivery');
  for (const s of [...subs, pub]) s.stream.destroy();
}

// ---- QoS 1 end to end ----
{
  const broker = makeBroker();
  const sub = await client(broker, 'sub', 'q/1', 1);
  const pub = await client(broker, 'pub');
  let id = 0;
  const ns = await nsPer(async (n) => {
    for (let i = 0; i < n; i += 32) {
      // a window of 32: the publisher's PUBLISH packets, then the subscriber's PUBACKs
      const ids: number[] = [];
      const publishes: Buffer[] = [];
      for (let k = 0; k < 32; k++) {
        id = (id % 65535) + 1;
        ids.push(id);
        publishes.push(mqtt.generate({ cmd: 'publish', topic: 'q/1', payload, qos: 1, messageId: id, retain: false, dup: false }));
      }
      pub.stream.emit('data', Buffer.concat(publishes));
      await tick();
      const session = sub.connection.channel.session!;
      const acks = [...session.inflight.keys()].map((pid) => encodeShortAck({ cmd: 'puback', messageId: pid })!);
      sub.stream.emit('data', Buffer.concat(acks));
      await tick();
    }
  });
  row('QoS 1, 1 → 1 (PUBLISH, PUBACK in both directions)', ns, 'message');
  sub.stream.destroy();
  pub.stream.destroy();
}

// ---- connect ----
{
  const broker = makeBroker();
  let k = 0;
  const ns = await nsPer(async (n) => {
    const streams: Drain[] = [];
    for (let i = 0; i < n; i++) {
      const stream = new Drain();
      new Connection(stream, info, broker, options, silentLog);
      stream.emit('data', mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `c${k++}`, clean: true, keepalive: 0 }));
      streams.push(stream);
    }
    await tick();
    for (const s of streams) s.destroy();
    await tick();
  });
  row('CONNECT → CONNACK → close', ns, 'connection');
}

// ---- parse and encode ----
{
  const one = mqtt.generate({ cmd: 'publish', topic: 'p/a', payload, qos: 0, retain: false, dup: false });
  const chunk = Buffer.concat(Array.from({ length: 100 }, () => one));
  let packets = 0;
  const perConnection = await nsPer((n) => {
    for (let i = 0; i < n; i++) {
      const parser = mqtt.parser({ protocolVersion: 4 });
      parser.on('packet', () => packets++);
      parser.parse(chunk);
    }
  }, 100);
  row('parse 100 QoS 0 PUBLISH, a new mqtt-packet parser per call (per connection before)', perConnection, 'packet');
  const broker = makeBroker();
  const pub = await client(broker, 'parse');
  const shared = await nsPer(async (n) => {
    for (let i = 0; i < n; i++) pub.stream.emit('data', chunk);
    await tick();
  }, 100);
  row('parse 100 QoS 0 PUBLISH through Connection (whole packets, shared parser, channel included)', shared, 'packet');
  if (packets === 0) throw new Error('unreachable');

  const packet = { cmd: 'publish' as const, topic: 'fan/out', payload, qos: 0 as const, retain: false, dup: false };
  let bytes = 0;
  const generate = await nsPer((n) => {
    for (let i = 0; i < n; i++) for (let s = 0; s < 500; s++) bytes += mqtt.generate(packet, { protocolVersion: 4 }).length;
  }, 500);
  row('encode a QoS 0 PUBLISH for 500 subscribers: mqtt-packet each', generate, 'subscriber');
  const once = await nsPer((n) => {
    for (let i = 0; i < n; i++) {
      const p = { ...packet, payload: Buffer.from(payload) }; // a new message each time
      for (let s = 0; s < 500; s++) bytes += encodePublish(p, 4, { protocolVersion: 4 }).length;
    }
  }, 500);
  row('encode a QoS 0 PUBLISH for 500 subscribers: one shared encode', once, 'subscriber');
  const ackGenerate = await nsPer((n) => {
    for (let i = 0; i < n; i++) bytes += mqtt.generate({ cmd: 'puback', messageId: i & 0xffff, reasonCode: 0 }, { protocolVersion: 5 }).length;
  });
  row('encode a PUBACK: mqtt-packet', ackGenerate, 'packet');
  const ackShort = await nsPer((n) => {
    for (let i = 0; i < n; i++) bytes += encodeShortAck({ cmd: 'puback', messageId: i & 0xffff })!.length;
  });
  row('encode a PUBACK: frame.ts', ackShort, 'packet');
  if (bytes === 0) throw new Error('unreachable');
}

console.log(`node ${process.version}, ${process.arch}; mean over >= 400 ms after warm-up, one process, no sockets\n`);
console.log(rows.join('\n'));
process.exit(0);
