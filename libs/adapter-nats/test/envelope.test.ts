import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Message, MessageProperties } from '@fleetmq/broker';
import type { QoS } from '@fleetmq/protocol';
import { ENVELOPE_VERSION, EnvelopeError, decodeEnvelope, encodeEnvelope, encodeEnvelopeHead } from '../src/index.js';

const base: Message = {
  id: 'node-a-lx2k9-1f',
  topic: 'fleet/d1/telemetry',
  payload: Buffer.from('{"t":21.5}'),
  qos: 1,
  retain: false,
  createdAt: 1_767_225_600_123,
};

function roundTrip(message: Message): Message {
  return decodeEnvelope(encodeEnvelope(message), message.topic);
}

describe('envelope', () => {
  it('round-trips a minimal message, and starts with the version byte', () => {
    const bytes = encodeEnvelope(base);
    expect(bytes[0]).toBe(ENVELOPE_VERSION);
    // version, flags, createdAt, id (1 + 15), payload: no field costs more than it must
    expect(bytes.length).toBe(2 + 8 + 1 + base.id.length + base.payload.length);
    expect(decodeEnvelope(bytes, base.topic)).toEqual(base);
  });

  it('round-trips every field, including repeated user property keys as arrays', () => {
    const full: Message = {
      ...base,
      payload: Buffer.from([0x00, 0xff, 0x7f, 0x80, 0x0a]),
      qos: 2,
      retain: true,
      properties: {
        payloadFormatIndicator: true,
        contentType: 'application/json; charset=utf-8',
        responseTopic: 'fleet/d1/reply',
        correlationData: Buffer.from([1, 2, 3]),
        userProperties: { region: 'eu-west-1', tag: ['a', 'b', 'a'], single: ['only'], none: [], 'ключ': 'значение' },
      },
      expiresAt: base.createdAt + 60_000,
      publisherId: 'device-7',
    };
    const decoded = roundTrip(full);
    expect(decoded).toEqual(full);
    // a one-element array stays an array, an empty one stays empty: the shape survives
    expect(decoded.properties?.userProperties?.['single']).toEqual(['only']);
    expect(decoded.properties?.userProperties?.['none']).toEqual([]);
    expect(Buffer.isBuffer(decoded.payload)).toBe(true);
    expect(Buffer.isBuffer(decoded.properties?.correlationData)).toBe(true);
  });

  it('keeps an empty properties object, and a false payload format indicator, distinct from absence', () => {
    expect(roundTrip({ ...base, properties: {} }).properties).toEqual({});
    expect(roundTrip({ ...base, properties: { payloadFormatIndicator: false } }).properties).toEqual({
      payloadFormatIndicator: false,
    });
    expect('properties' in roundTrip(base)).toBe(false);
    expect('expiresAt' in roundTrip(base)).toBe(false);
    expect('publisherId' in roundTrip(base)).toBe(false);
  });

  it('round-trips empty strings, an empty payload and empty correlation data', () => {
    const m: Message = {
      ...base,
      id: '',
      payload: Buffer.alloc(0),
      publisherId: '',
      properties: { contentType: '', responseTopic: '', correlationData: Buffer.alloc(0), userProperties: { '': '' } },
    };
    expect(roundTrip(m)).toEqual(m);
  });

  it("keeps a '__proto__' user property as data, not as the object's prototype", () => {
    const userProperties = JSON.parse('{"__proto__": "x", "a": ["1"]}') as Record<string, string | string[]>;
    const decoded = roundTrip({ ...base, properties: { userProperties } });
    const user = decoded.properties!.userProperties!;
    expect(Object.getPrototypeOf(user)).toBe(Object.prototype);
    expect(Object.keys(user)).toEqual(['__proto__', 'a']);
    expect(Object.getOwnPropertyDescriptor(user, '__proto__')?.value).toBe('x');
  });

  it('hands out the payload as a view of the received bytes, not a copy', () => {
    const bytes = encodeEnvelope(base);
    const decoded = decodeEnvelope(bytes, base.topic);
    expect(decoded.payload.buffer).toBe(bytes.buffer);
  });

  it('decodes from a plain Uint8Array at an offset inside a larger buffer', () => {
    const bytes = encodeEnvelope({ ...base, publisherId: 'p' });
    const host = new Uint8Array(bytes.length + 7);
    host.set(bytes, 3);
    const view = host.subarray(3, 3 + bytes.length);
    expect(decodeEnvelope(view, base.topic)).toEqual({ ...base, publisherId: 'p' });
  });

  it('carries a 1 MiB payload', () => {
    const payload = Buffer.alloc(1 << 20, 0xab);
    expect(roundTrip({ ...base, payload }).payload.equals(payload)).toBe(true);
  });

  describe('refuses garbage with EnvelopeError', () => {
    const good = encodeEnvelope({
      ...base,
      expiresAt: base.createdAt + 1,
      publisherId: 'pub',
      properties: { contentType: 'c', correlationData: Buffer.from([9]), userProperties: { k: ['v', 'w'] } },
    });
    const cases: Array<[string, Uint8Array]> = [
      ['empty input', new Uint8Array(0)],
      ['a lone version byte', Uint8Array.of(ENVELOPE_VERSION)],
      ['an unknown version', Buffer.concat([Uint8Array.of(2), good.subarray(1)])],
      ['version 0', Buffer.concat([Uint8Array.of(0), good.subarray(1)])],
      ['QoS 3', Buffer.from([ENVELOPE_VERSION, 0x03, ...good.subarray(2)])],
      ['reserved flags', Buffer.from([ENVELOPE_VERSION, good[1]! | 0x80, ...good.subarray(2)])],
      ['JSON', Buffer.from('{"id":"x","payload":""}')],
      ['an id length past the end', Buffer.from([ENVELOPE_VERSION, 0, ...Buffer.alloc(8), 0x7f, 0x41])],
      ['a varint longer than five bytes', Buffer.from([ENVELOPE_VERSION, 0, ...Buffer.alloc(8), 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])],
      ['an over-long varint', Buffer.from([ENVELOPE_VERSION, 0, ...Buffer.alloc(8), 0x81, 0x00, 0x41])],
      ['a truncated expiry', Buffer.from([ENVELOPE_VERSION, 0x08, ...Buffer.alloc(8), 1, 2, 3])],
      ['reserved property flags', Buffer.from([ENVELOPE_VERSION, 0x20, ...Buffer.alloc(8), 0, 0x40])],
      ['a payload format value without its indicator', Buffer.from([ENVELOPE_VERSION, 0x20, ...Buffer.alloc(8), 0, 0x02])],
      ['missing property flags', Buffer.from([ENVELOPE_VERSION, 0x20, ...Buffer.alloc(8), 0])],
      [
        'a user property array longer than the envelope',
        Buffer.from([ENVELOPE_VERSION, 0x20, ...Buffer.alloc(8), 0, 0x20, 1, 1, 0x6b, 0xff, 0x7f]),
      ],
      [
        'a repeated user property key',
        Buffer.from([ENVELOPE_VERSION, 0x20, ...Buffer.alloc(8), 0, 0x20, 2, 1, 0x6b, 0, 0, 1, 0x6b, 0, 0]),
      ],
    ];
    it.each(cases)('%s', (_what, bytes) => {
      expect(() => decodeEnvelope(bytes, 't')).toThrow(EnvelopeError);
    });

    it('every truncation of a full envelope, short of its payload, is refused', () => {
      const payloadStart = good.length - base.payload.length;
      for (let n = 0; n < payloadStart; n++) {
        expect(() => decodeEnvelope(good.subarray(0, n), 't'), `cut at ${n}`).toThrow(EnvelopeError);
      }
    });

    it('random bytes either decode or throw EnvelopeError, never anything else', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (bytes, versioned) => {
          if (versioned && bytes.length > 0) bytes[0] = ENVELOPE_VERSION;
          try {
            const m = decodeEnvelope(bytes, 't');
            // what decodes is a message the encoder can write again
            expect(() => encodeEnvelope(m)).not.toThrow();
          } catch (err) {
            expect(err).toBeInstanceOf(EnvelopeError);
          }
        }),
        { numRuns: 5000 },
      );
    });

    it('random corruption of a valid envelope either decodes or throws EnvelopeError', () => {
      fc.assert(
        fc.property(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 }), (at, xor) => {
          const bytes = Buffer.from(good);
          bytes[at]! ^= xor;
          try {
            decodeEnvelope(bytes, 't');
          } catch (err) {
            expect(err).toBeInstanceOf(EnvelopeError);
          }
        }),
        { numRuns: 3000 },
      );
    });
  });
});

// ---- Property test: any message survives the round trip. ----

const str = fc.string({ unit: 'binary', maxLength: 12 }).filter((s) => !/[\ud800-\udfff]/.test(s.replace(/[\ud800-\udbff][\udc00-\udfff]/g, '')));
const bytesArb = fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b));
const userPropertiesArb = fc.dictionary(str, fc.oneof(str, fc.array(str, { maxLength: 4 })), { maxKeys: 5 });
const propertiesArb: fc.Arbitrary<MessageProperties> = fc.record(
  {
    payloadFormatIndicator: fc.boolean(),
    contentType: str,
    responseTopic: str,
    correlationData: bytesArb,
    userProperties: userPropertiesArb,
  },
  { requiredKeys: [] },
);
const timeArb = fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.double({ noNaN: true }));
const messageArb: fc.Arbitrary<Message> = fc
  .record(
    {
      id: str,
      topic: fc.constant('any/topic'),
      payload: bytesArb,
      qos: fc.constantFrom<QoS>(0, 1, 2),
      retain: fc.boolean(),
      properties: propertiesArb,
      expiresAt: timeArb,
      publisherId: str,
      createdAt: timeArb,
    },
    { requiredKeys: ['id', 'topic', 'payload', 'qos', 'retain', 'createdAt'] },
  );

describe('envelope properties', () => {
  it('sizes strings exactly, lone surrogates included (they travel as U+FFFD, as Buffer writes them)', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'é', '日', '\u{1F600}', '\ud800', '\udc00'), maxLength: 60 }), (s) => {
        const payload = Buffer.from([1, 2, 3]);
        const decoded = roundTrip({ ...base, id: s, publisherId: s, payload });
        expect(decoded.id).toBe(Buffer.from(s).toString());
        expect(decoded.publisherId).toBe(Buffer.from(s).toString());
        expect(decoded.payload.equals(payload)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('decode(encode(m)) equals m for any message', () => {
    fc.assert(
      fc.property(messageArb, (message) => {
        const decoded = roundTrip(message);
        expect(decoded).toEqual(message);
        // toEqual treats -0 and 0 alike, Object.is does not: times survive bit for bit
        expect(Object.is(decoded.createdAt, message.createdAt)).toBe(true);
        // the head the bus writes, then the payload, is the same envelope
        expect(Buffer.concat([encodeEnvelopeHead(message), message.payload]).equals(encodeEnvelope(message))).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});
