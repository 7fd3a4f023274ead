import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
// Imported from the source files: the package index may be changing under other work.
import {
  SNAPSHOT_VERSION,
  decodeMessage,
  decodeSnapshot,
  encodeMessage,
  encodeSnapshot,
  type SessionSnapshot,
} from '../src/session-snapshot.js';
import { MessageIdFactory, isExpired, remainingExpirySeconds, type Message } from '../src/message.js';

const T0 = 1_700_000_000_000;

function message(over: Partial<Message> = {}): Message {
  return {
    id: 'n1-abc-0',
    topic: 'fleet/truck1/telemetry',
    payload: Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x7b, 0x22]),
    qos: 1,
    retain: false,
    createdAt: T0,
    ...over,
  };
}

function fullSnapshot(): SessionSnapshot {
  return {
    v: SNAPSHOT_VERSION,
    clientId: 'truck-1',
    protocolVersion: 5,
    expiryInterval: 0xffffffff,
    subscriptions: [
      ['fleet/+/cmd', { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
      ['$share/g/fleet/#', { qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2, subscriptionId: 42 }],
    ],
    inflight: [
      {
        packetId: 1,
        qos: 1,
        state: 'publish',
        retain: false,
        message: message({
          properties: {
            payloadFormatIndicator: false,
            contentType: 'application/octet-stream',
            responseTopic: 'fleet/truck1/reply',
            correlationData: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
            userProperties: { a: '1', multi: ['x', 'y', 'x'], empty: [] },
          },
          expiresAt: T0 + 60_000,
          publisherId: 'server-app',
        }),
        subscriptionIds: [42, 7],
      },
      { packetId: 65535, qos: 2, state: 'pubrel', retain: true, message: message({ id: 'n1-abc-1', qos: 2, payload: Buffer.alloc(0) }) },
    ],
    queue: [message({ id: 'n1-abc-2', qos: 0, payload: Buffer.from('hello \u00e9 \u{1F600}') }), message({ id: 'n1-abc-3' })],
    awaitingRel: [3, 9, 65535],
    nextPacketId: 10,
    will: {
      topic: 'fleet/truck1/status',
      payload: Buffer.from([0xff, 0x00, 0x80]),
      qos: 1,
      retain: true,
      properties: { contentType: 'text/plain', correlationData: Buffer.from('corr'), userProperties: { k: ['v1', 'v2'] } },
      messageExpiryInterval: 300,
      delayInterval: 5,
    },
    disconnectedAt: T0 + 1234,
  };
}

describe('encodeSnapshot / decodeSnapshot', () => {
  it('round-trips a full snapshot, Buffers included', () => {
    const s = fullSnapshot();
    const text = encodeSnapshot(s);
    expect(typeof text).toBe('string');
    expect(() => JSON.parse(text) as unknown).not.toThrow();
    const back = decodeSnapshot(text);
    expect(back).toEqual(s);
  });

  it('gives back real Buffers with the same bytes', () => {
    const back = decodeSnapshot(encodeSnapshot(fullSnapshot()));
    const inflight0 = back.inflight[0]!;
    expect(Buffer.isBuffer(inflight0.message.payload)).toBe(true);
    expect(inflight0.message.payload.equals(Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x7b, 0x22]))).toBe(true);
    const corr = inflight0.message.properties?.correlationData;
    expect(Buffer.isBuffer(corr)).toBe(true);
    expect(corr!.equals(Buffer.from([0xde, 0xad, 0xbe, 0xef]))).toBe(true);
    expect(Buffer.isBuffer(back.inflight[1]!.message.payload)).toBe(true);
    expect(back.inflight[1]!.message.payload.length).toBe(0);
    expect(back.queue[0]!.payload.toString('utf8')).toBe('hello \u00e9 \u{1F600}');
    expect(Buffer.isBuffer(back.will!.payload)).toBe(true);
    expect(back.will!.payload.equals(Buffer.from([0xff, 0x00, 0x80]))).toBe(true);
    expect(Buffer.isBuffer(back.will!.properties!.correlationData)).toBe(true);
    expect(back.will!.properties!.correlationData!.toString()).toBe('corr');
  });

  it('keeps user properties with arrays, in order, with duplicates', () => {
    const back = decodeSnapshot(encodeSnapshot(fullSnapshot()));
    expect(back.inflight[0]!.message.properties!.userProperties).toEqual({ a: '1', multi: ['x', 'y', 'x'], empty: [] });
    expect(back.will!.properties!.userProperties).toEqual({ k: ['v1', 'v2'] });
  });

  it('keeps subscriptions as [filter, options] pairs and the order of queue and inflight', () => {
    const s = fullSnapshot();
    const back = decodeSnapshot(encodeSnapshot(s));
    expect(back.subscriptions).toEqual(s.subscriptions);
    expect(back.queue.map((m) => m.id)).toEqual(['n1-abc-2', 'n1-abc-3']);
    expect(back.inflight.map((e) => [e.packetId, e.state])).toEqual([
      [1, 'publish'],
      [65535, 'pubrel'],
    ]);
    expect(back.expiryInterval).toBe(0xffffffff);
  });

  it('drops undefined fields', () => {
    const s: SessionSnapshot = {
      v: SNAPSHOT_VERSION,
      clientId: 'c',
      protocolVersion: 4,
      expiryInterval: 0,
      subscriptions: [['a', { qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: undefined }]],
      inflight: [],
      queue: [message({ properties: undefined, expiresAt: undefined, publisherId: undefined })],
      awaitingRel: [],
      nextPacketId: 1,
      will: undefined,
      disconnectedAt: undefined,
    };
    const text = encodeSnapshot(s);
    expect(text).not.toContain('undefined');
    const raw = JSON.parse(text) as Record<string, unknown>;
    expect('will' in raw).toBe(false);
    expect('disconnectedAt' in raw).toBe(false);
    const back = decodeSnapshot(text);
    expect('will' in back).toBe(false);
    expect('disconnectedAt' in back).toBe(false);
    expect('subscriptionId' in back.subscriptions[0]![1]).toBe(false);
    const q = back.queue[0]!;
    expect('properties' in q).toBe(false);
    expect('expiresAt' in q).toBe(false);
    expect('publisherId' in q).toBe(false);
    expect(back).toEqual(s); // toEqual treats undefined properties as absent
  });

  it('keeps falsy values that are not undefined', () => {
    const s: SessionSnapshot = {
      ...fullSnapshot(),
      clientId: '',
      expiryInterval: 0,
      nextPacketId: 0,
      disconnectedAt: 0,
      will: undefined,
    };
    const back = decodeSnapshot(encodeSnapshot(s));
    expect(back.clientId).toBe('');
    expect(back.expiryInterval).toBe(0);
    expect(back.nextPacketId).toBe(0);
    expect(back.disconnectedAt).toBe(0);
    expect(back.inflight[0]!.message.properties!.payloadFormatIndicator).toBe(false);
  });

  it('rejects another version', () => {
    const raw = JSON.parse(encodeSnapshot(fullSnapshot())) as Record<string, unknown>;
    for (const v of [0, 2, 99, '1', null]) {
      const text = JSON.stringify({ ...raw, v });
      expect(() => decodeSnapshot(text)).toThrow(/unsupported session snapshot version/);
    }
    const { v: _v, ...noVersion } = raw;
    expect(() => decodeSnapshot(JSON.stringify(noVersion))).toThrow(/unsupported session snapshot version/);
  });

  it('rejects text that is not JSON', () => {
    expect(() => decodeSnapshot('not json')).toThrow();
    expect(() => decodeSnapshot('')).toThrow();
  });

  // A user property is client data: any name, any value. A property named "$b" alone
  // has the same JSON shape as an encoded Buffer ({"$b": "<base64>"}), and must not
  // come back as a Buffer.
  it('round-trips user properties whose only name is "$b"', () => {
    const s: SessionSnapshot = {
      ...fullSnapshot(),
      queue: [message({ properties: { userProperties: { $b: 'hello' } } })],
    };
    const back = decodeSnapshot(encodeSnapshot(s));
    const up = back.queue[0]!.properties!.userProperties!;
    expect(Buffer.isBuffer(up)).toBe(false);
    expect(up).toEqual({ $b: 'hello' });
  });

  it('round-trips user properties with "$b" next to other names', () => {
    const up = { $b: 'x', other: ['1', '2'] };
    const s: SessionSnapshot = { ...fullSnapshot(), queue: [message({ properties: { userProperties: up } })] };
    expect(decodeSnapshot(encodeSnapshot(s)).queue[0]!.properties!.userProperties).toEqual(up);
  });

  // mqtt-packet hands user properties over as an Object.create(null) map, so a client
  // can send a user property named "__proto__" and it arrives as an own property.
  it('round-trips a user property named "__proto__" as mqtt-packet delivers it', () => {
    const up = Object.create(null) as Record<string, string | string[]>;
    Object.defineProperty(up, '__proto__', { value: 'v', enumerable: true, writable: true, configurable: true });
    up['a'] = 'b';
    expect(Object.keys(up)).toEqual(['__proto__', 'a']);
    const s: SessionSnapshot = { ...fullSnapshot(), queue: [message({ properties: { userProperties: up } })] };
    const back = decodeSnapshot(encodeSnapshot(s)).queue[0]!.properties!.userProperties!;
    expect(Object.entries(back)).toEqual([
      ['__proto__', 'v'],
      ['a', 'b'],
    ]);
  });

  it('round-trips random messages (property)', () => {
    const userProps = fc.dictionary(
      fc.string({ maxLength: 6 }).filter((k) => k !== '__proto__'),
      fc.oneof(fc.string({ maxLength: 8 }), fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 })),
      { maxKeys: 4 },
    );
    const msgArb = fc.record(
      {
        id: fc.string({ minLength: 1, maxLength: 12 }),
        topic: fc.string({ minLength: 1, maxLength: 20 }),
        payload: fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
        qos: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
        retain: fc.boolean(),
        properties: fc.record(
          {
            payloadFormatIndicator: fc.boolean(),
            contentType: fc.string({ maxLength: 10 }),
            responseTopic: fc.string({ maxLength: 10 }),
            correlationData: fc.uint8Array({ maxLength: 16 }).map((u) => Buffer.from(u)),
            // Names other than "$b" alone: that case is the separate test above.
            userProperties: userProps.filter((d) => !(Object.keys(d).length === 1 && '$b' in d)),
          },
          { requiredKeys: [] },
        ),
        expiresAt: fc.integer({ min: 0, max: 2 ** 47 }),
        publisherId: fc.string({ maxLength: 10 }),
        createdAt: fc.integer({ min: 0, max: 2 ** 47 }),
      },
      { requiredKeys: ['id', 'topic', 'payload', 'qos', 'retain', 'createdAt'] },
    );
    fc.assert(
      fc.property(fc.array(msgArb, { maxLength: 4 }), (queue) => {
        const s: SessionSnapshot = { ...fullSnapshot(), queue: queue as Message[] };
        const back = decodeSnapshot(encodeSnapshot(s));
        expect(back).toEqual(s);
        for (const [i, m] of back.queue.entries()) {
          expect(Buffer.isBuffer(m.payload)).toBe(true);
          expect(m.payload.equals(queue[i]!.payload)).toBe(true);
          // encodeMessage/decodeMessage use the same codec
          expect(decodeMessage(encodeMessage(queue[i] as Message))).toEqual(queue[i]);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('encodeMessage / decodeMessage', () => {
  it('round-trips a message with Buffers', () => {
    const m = message({
      properties: { correlationData: Buffer.from([1, 2, 3]), userProperties: { a: ['b', 'c'] } },
      expiresAt: T0 + 1,
    });
    const back = decodeMessage(encodeMessage(m));
    expect(back).toEqual(m);
    expect(Buffer.isBuffer(back.payload)).toBe(true);
    expect(Buffer.isBuffer(back.properties!.correlationData)).toBe(true);
  });
});

describe('MessageIdFactory', () => {
  it('makes IDs of the form <nodeId>-<base36 start>-<base36 sequence>', () => {
    const f = new MessageIdFactory('edge-1', 1_700_000_000_000);
    const start = (1_700_000_000_000).toString(36);
    expect(f.next()).toBe(`edge-1-${start}-0`);
    expect(f.next()).toBe(`edge-1-${start}-1`);
    for (let i = 2; i < 36; i++) f.next();
    expect(f.next()).toBe(`edge-1-${start}-10`); // 36 in base 36
  });

  it('every ID starts with the node ID and start time prefix', () => {
    const f = new MessageIdFactory('n7', 12345);
    for (let i = 0; i < 100; i++) expect(f.next().startsWith(`n7-${(12345).toString(36)}-`)).toBe(true);
  });

  it('defaults the start time to now', () => {
    const before = Date.now();
    const id = new MessageIdFactory('n').next();
    const after = Date.now();
    const [, startPart, seq] = id.split('-');
    const start = parseInt(startPart!, 36);
    expect(start).toBeGreaterThanOrEqual(before);
    expect(start).toBeLessThanOrEqual(after);
    expect(seq).toBe('0');
  });

  it('makes unique IDs within a factory', () => {
    const f = new MessageIdFactory('n1', T0);
    const ids = new Set<string>();
    for (let i = 0; i < 20_000; i++) ids.add(f.next());
    expect(ids.size).toBe(20_000);
  });

  it('makes unique IDs across nodes and restarts', () => {
    const factories = [
      new MessageIdFactory('n1', T0),
      new MessageIdFactory('n1', T0 + 1), // same node restarted
      new MessageIdFactory('n2', T0),
      new MessageIdFactory('n1-x', T0), // node ID containing the separator
      new MessageIdFactory('n', T0),
    ];
    const ids = new Set<string>();
    let total = 0;
    for (const f of factories)
      for (let i = 0; i < 2000; i++) {
        ids.add(f.next());
        total++;
      }
    expect(ids.size).toBe(total);
  });
});

describe('remainingExpirySeconds / isExpired', () => {
  it('never expires without expiresAt', () => {
    const m = message();
    expect(remainingExpirySeconds(m, T0)).toBeUndefined();
    expect(isExpired(m, Number.MAX_SAFE_INTEGER)).toBe(false);
  });

  it.each<[number, number, boolean]>([
    // [ms until expiresAt, remaining seconds, expired]
    [60_000, 60, false],
    [59_001, 60, false], // whole seconds, rounded up
    [59_999, 60, false],
    [1_000, 1, false],
    [999, 1, false],
    [1, 1, false],
    [0, 0, true], // expiresAt <= now: expired
    [-1, 0, true],
    [-60_000, 0, true], // never negative
  ])('with expiresAt = now + %i ms: %i s remaining, expired %s', (delta, seconds, expired) => {
    const m = message({ expiresAt: T0 + delta });
    expect(remainingExpirySeconds(m, T0)).toBe(seconds);
    expect(isExpired(m, T0)).toBe(expired);
  });

  it('remaining is 0 exactly when expired (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e7, max: 1e7 }), (delta) => {
        const m = message({ expiresAt: T0 + delta });
        const r = remainingExpirySeconds(m, T0)!;
        expect(r).toBeGreaterThanOrEqual(0);
        expect(r === 0).toBe(isExpired(m, T0));
        expect(r * 1000).toBeGreaterThanOrEqual(delta);
        expect((r - 1) * 1000).toBeLessThan(Math.max(delta, 0) + 1000);
      }),
      { numRuns: 500 },
    );
  });
});
