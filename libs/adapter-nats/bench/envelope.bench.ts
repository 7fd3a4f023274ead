/**
 * Envelope size and speed: the binary envelope (src/envelope.ts) against the two alternatives
 * considered. Prints a Markdown table (the README keeps a copy). Asserts nothing; it does check
 * that every codec round-trips its inputs, so that the figures compare like with like.
 *
 *   npx vite-node libs/adapter-nats/bench/envelope.bench.ts
 *
 * Alternatives:
 * - json: JSON.stringify of the message with payload and correlation data in base64.
 * - headers: what a NATS HPUB would carry with the fields in NATS headers and the raw payload
 *   after them: `NATS/1.0\r\n`, one `Name: value\r\n` line per field, `\r\n`, payload. Header
 *   values may hold neither CR nor LF, and user properties need their array/scalar shape
 *   kept, so user properties go as one JSON value and the strings as JSON strings. This is
 *   written here by hand, in the wire format nats.js produces.
 *
 * The bus publishes `encodeEnvelope(message)` (the "binary envelope v1" rows): nats.js takes
 * the body as one buffer.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Message, MessageProperties, UserProperties } from '@fleetmq/broker';
import type { QoS } from '@fleetmq/protocol';
import { decodeEnvelope, encodeEnvelope } from '../src/envelope.js';

interface Codec {
  readonly name: string;
  encode(m: Message): Buffer;
  decode(b: Buffer, topic: string): Message;
}

// ---- JSON with base64 ----

const json: Codec = {
  name: 'JSON + base64',
  encode(m) {
    const p = m.properties;
    return Buffer.from(
      JSON.stringify({
        id: m.id,
        qos: m.qos,
        retain: m.retain,
        createdAt: m.createdAt,
        expiresAt: m.expiresAt,
        publisherId: m.publisherId,
        properties:
          p === undefined
            ? undefined
            : { ...p, correlationData: p.correlationData === undefined ? undefined : p.correlationData.toString('base64') },
        payload: m.payload.toString('base64'),
      }),
    );
  },
  decode(b, topic) {
    const o = JSON.parse(b.toString('utf8')) as {
      id: string;
      qos: QoS;
      retain: boolean;
      createdAt: number;
      expiresAt?: number;
      publisherId?: string;
      properties?: Omit<MessageProperties, 'correlationData'> & { correlationData?: string };
      payload: string;
    };
    const m: { -readonly [K in keyof Message]: Message[K] } = {
      id: o.id,
      topic,
      payload: Buffer.from(o.payload, 'base64'),
      qos: o.qos,
      retain: o.retain,
      createdAt: o.createdAt,
    };
    if (o.expiresAt !== undefined) m.expiresAt = o.expiresAt;
    if (o.publisherId !== undefined) m.publisherId = o.publisherId;
    if (o.properties !== undefined) {
      const { correlationData, ...rest } = o.properties;
      m.properties = correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') };
    }
    return m;
  },
};

// ---- NATS headers + raw payload ----

const headers: Codec = {
  name: 'NATS headers + raw payload',
  encode(m) {
    let h = `NATS/1.0\r\nFm-Id: ${JSON.stringify(m.id)}\r\nFm-Qos: ${m.qos}\r\nFm-Retain: ${m.retain ? 1 : 0}\r\nFm-Created: ${m.createdAt}\r\n`;
    if (m.expiresAt !== undefined) h += `Fm-Expires: ${m.expiresAt}\r\n`;
    if (m.publisherId !== undefined) h += `Fm-Publisher: ${JSON.stringify(m.publisherId)}\r\n`;
    const p = m.properties;
    if (p !== undefined) {
      h += 'Fm-Props: 1\r\n';
      if (p.payloadFormatIndicator !== undefined) h += `Fm-Pfi: ${p.payloadFormatIndicator ? 1 : 0}\r\n`;
      if (p.contentType !== undefined) h += `Fm-Content-Type: ${JSON.stringify(p.contentType)}\r\n`;
      if (p.responseTopic !== undefined) h += `Fm-Response-Topic: ${JSON.stringify(p.responseTopic)}\r\n`;
      if (p.correlationData !== undefined) h += `Fm-Correlation: ${p.correlationData.toString('base64')}\r\n`;
      if (p.userProperties !== undefined) h += `Fm-User: ${JSON.stringify(p.userProperties)}\r\n`;
    }
    h += '\r\n';
    const hlen = Buffer.byteLength(h);
    const out = Buffer.allocUnsafe(hlen + m.payload.length);
    out.write(h, 0, 'utf8');
    m.payload.copy(out, hlen);
    return out;
  },
  decode(b, topic) {
    const end = b.indexOf('\r\n\r\n');
    const lines = b.toString('utf8', 0, end).split('\r\n');
    const f = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      f.set(line.slice(0, colon), line.slice(colon + 2));
    }
    const m: { -readonly [K in keyof Message]: Message[K] } = {
      id: JSON.parse(f.get('Fm-Id')!) as string,
      topic,
      payload: b.subarray(end + 4),
      qos: Number(f.get('Fm-Qos')) as QoS,
      retain: f.get('Fm-Retain') === '1',
      createdAt: Number(f.get('Fm-Created')),
    };
    const expires = f.get('Fm-Expires');
    if (expires !== undefined) m.expiresAt = Number(expires);
    const publisher = f.get('Fm-Publisher');
    if (publisher !== undefined) m.publisherId = JSON.parse(publisher) as string;
    if (f.has('Fm-Props')) {
      const p: { -readonly [K in keyof MessageProperties]: MessageProperties[K] } = {};
      const pfi = f.get('Fm-Pfi');
      if (pfi !== undefined) p.payloadFormatIndicator = pfi === '1';
      const ct = f.get('Fm-Content-Type');
      if (ct !== undefined) p.contentType = JSON.parse(ct) as string;
      const rt = f.get('Fm-Response-Topic');
      if (rt !== undefined) p.responseTopic = JSON.parse(rt) as string;
      const cd = f.get('Fm-Correlation');
      if (cd !== undefined) p.correlationData = Buffer.from(cd, 'base64');
      const up = f.get('Fm-User');
      if (up !== undefined) p.userProperties = JSON.parse(up) as UserProperties;
      m.properties = p;
    }
    return m;
  },
};

const binary: Codec = { name: 'binary envelope v1', encode: encodeEnvelope, decode: decodeEnvelope };

// ---- Messages ----

const now = 1_767_225_600_123;
const samples: Array<{ name: string; message: Message }> = [
  {
    name: 'telemetry: QoS 1, 64 B JSON payload, no properties',
    message: {
      id: 'edge-3-m3k9x2a1-4f2c',
      topic: 'fleet/eu/truck-1042/telemetry',
      payload: Buffer.from(JSON.stringify({ t: 21.5, rpm: 1840, fuel: 0.62, lat: 52.52, lon: 13.405 }).padEnd(64)),
      qos: 1,
      retain: false,
      createdAt: now,
      publisherId: 'truck-1042',
    },
  },
  {
    name: 'MQTT 5 request: 256 B payload, all properties',
    message: {
      id: 'edge-3-m3k9x2a1-4f2d',
      topic: 'fleet/eu/truck-1042/cmd',
      payload: Buffer.alloc(256, 0x5a),
      qos: 2,
      retain: false,
      createdAt: now,
      expiresAt: now + 300_000,
      publisherId: 'dispatcher-7',
      properties: {
        payloadFormatIndicator: true,
        contentType: 'application/json',
        responseTopic: 'fleet/eu/dispatcher-7/replies',
        correlationData: Buffer.from('0123456789abcdef'),
        userProperties: { 'trace-id': '4bf92f3577b34da6a3ce929d0e0e4736', tag: ['urgent', 'eu'], tenant: 'acme' },
      },
    },
  },
  {
    name: 'firmware chunk: QoS 1, 64 KiB binary payload',
    message: {
      id: 'edge-3-m3k9x2a1-4f2e',
      topic: 'fleet/eu/truck-1042/fw',
      payload: Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 31) & 0xff)),
      qos: 1,
      retain: false,
      createdAt: now,
    },
  },
];

// ---- Timing ----

function nsPerOp(fn: () => unknown, minMs = 300): number {
  for (let i = 0; i < 2000; i++) fn(); // warm up (JIT)
  let n = 1000;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    const ns = Number(process.hrtime.bigint() - t0);
    if (ns >= minMs * 1e6) return ns / n;
    n *= 2;
  }
}

const codecs = [binary, headers, json];
const rows: string[] = [];
rows.push('| message | encoding | bytes | encode ns/op | decode ns/op |');
rows.push('|---|---|---:|---:|---:|');
for (const { name, message } of samples) {
  for (const codec of codecs) {
    const bytes = codec.encode(message);
    const back = codec.decode(bytes, message.topic);
    if (!isDeepStrictEqual({ ...back, payload: [...back.payload] }, { ...message, payload: [...message.payload] }) && !sameMessage(back, message)) {
      throw new Error(`${codec.name} does not round-trip ${name}`);
    }
    let sink = 0;
    const enc = nsPerOp(() => (sink += codec.encode(message).length));
    const dec = nsPerOp(() => (sink += codec.decode(bytes, message.topic).payload.length));
    if (sink === 0) throw new Error('unreachable');
    rows.push(`| ${name} | ${codec.name} | ${bytes.length} | ${Math.round(enc)} | ${Math.round(dec)} |`);
  }
}

/** Field-by-field equality (Buffers by content). */
function sameMessage(a: Message, b: Message): boolean {
  const norm = (m: Message): unknown =>
    JSON.parse(
      JSON.stringify(m, (_k, v: unknown) =>
        v !== null && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? `buf:${Buffer.from((v as { data: number[] }).data).toString('hex')}` : v,
      ),
    );
  return isDeepStrictEqual(norm(a), norm(b));
}

console.log(`node ${process.version}, ${process.arch}; ns/op = mean over >= 300 ms after warm-up\n`);
console.log(rows.join('\n'));
