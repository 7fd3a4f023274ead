/**
 * The bytes of a NATS message that carries an MQTT message between nodes: a compact, versioned
 * binary envelope. The topic is not in it: it travels as the NATS subject (subject-codec.ts)
 * and is handed back to {@link decodeEnvelope}.
 *
 * Version 1, all integers little-endian, `str` = varint byte length + UTF-8, `bytes` likewise:
 * ```
 * u8      version (1)
 * u8      flags    bits 0-1 qos (3 is refused) · 2 retain · 3 expiresAt · 4 publisherId ·
 *                  5 properties · 6-7 zero
 * f64     createdAt (epoch ms; a float64 holds any JS number exactly)
 * f64     expiresAt                                   if flag 3
 * str     id
 * str     publisherId                                 if flag 4
 * u8      propFlags bit 0 payloadFormatIndicator set · 1 its value · 2 contentType ·
 *                   3 responseTopic · 4 correlationData · 5 userProperties · 6-7 zero
 *                                                     if flag 5, then the present ones:
 * str     contentType · str responseTopic · bytes correlationData
 * varint  user property count, then per key: str key, varint k, then one str when k = 0
 *         (a single value) or k - 1 strs (a repeated key, an array, possibly empty)
 * …       payload: the rest of the envelope, no length needed
 * ```
 * Decoding refuses anything malformed with EnvelopeError and never reads out of bounds. The
 * payload and correlation data of a decoded message are views of the received bytes (no copy).
 */
import type { Message, MessageProperties, UserProperties } from '@fleetmq/broker';
import type { QoS } from '@fleetmq/protocol';

export const ENVELOPE_VERSION = 1;

/** Bytes that are not an envelope this code can read. */
export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError';
}

const F_RETAIN = 0x04;
const F_EXPIRES = 0x08;
const F_PUBLISHER = 0x10;
const F_PROPS = 0x20;
const F_RESERVED = 0xc0;

const P_PFI = 0x01;
const P_PFI_TRUE = 0x02;
const P_CONTENT_TYPE = 0x04;
const P_RESPONSE_TOPIC = 0x08;
const P_CORRELATION = 0x10;
const P_USER = 0x20;
const P_RESERVED = 0xc0;

/** Fixed part: version, flags, createdAt. */
const HEAD = 10;

function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/** UTF-8 length, counted in JS for short strings (cheaper than a native call). */
function utf8Length(s: string): number {
  const len = s.length;
  if (len >= 43) return Buffer.byteLength(s, 'utf8');
  let n = 0;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4; // a surrogate pair: one 4-byte code point
      i++;
    } else n += 3; // includes a lone surrogate, which Buffer#write turns into U+FFFD (3 bytes)
  }
  return n;
}

function strSize(s: string): number {
  const n = utf8Length(s);
  return varintSize(n) + n;
}

function writeVarint(buf: Buffer, offset: number, n: number): number {
  while (n >= 0x80) {
    buf[offset++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[offset++] = n;
  return offset;
}

function writeStr(buf: Buffer, offset: number, s: string): number {
  const len = s.length;
  if (len < 43) {
    // At most 126 bytes: a one-byte length. Short ASCII (IDs, content types, most property
    // names) is copied by hand, cheaper than a native call; anything else by Buffer#write.
    let i = 0;
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[offset + 1 + i] = c;
    }
    const n = i === len ? len : buf.write(s, offset + 1, 'utf8');
    buf[offset] = n;
    return offset + 1 + n;
  }
  const n = Buffer.byteLength(s, 'utf8');
  offset = writeVarint(buf, offset, n);
  return offset + buf.write(s, offset, n, 'utf8');
}

function userPropertiesSize(user: UserProperties): number {
  let size = 0;
  let count = 0;
  for (const key in user) {
    if (!Object.hasOwn(user, key)) continue;
    const value = user[key]!;
    count++;
    size += strSize(key);
    if (typeof value === 'string') {
      size += 1 + strSize(value);
    } else {
      size += varintSize(value.length + 1);
      for (const v of value) size += strSize(v);
    }
  }
  return varintSize(count) + size;
}

function writeUserProperties(buf: Buffer, offset: number, user: UserProperties): number {
  let count = 0;
  for (const key in user) if (Object.hasOwn(user, key)) count++;
  offset = writeVarint(buf, offset, count);
  for (const key in user) {
    if (!Object.hasOwn(user, key)) continue;
    const value = user[key]!;
    offset = writeStr(buf, offset, key);
    if (typeof value === 'string') {
      buf[offset++] = 0;
      offset = writeStr(buf, offset, value);
    } else {
      offset = writeVarint(buf, offset, value.length + 1);
      for (const v of value) offset = writeStr(buf, offset, v);
    }
  }
  return offset;
}

/** Encodes a message (all but its topic) into one buffer of exactly the needed size. */
export function encodeEnvelope(message: Message): Buffer {
  return encode(message, true);
}

/**
 * Encodes everything but the payload: the envelope is this head followed by the payload's
 * bytes, so a writer can send both without copying the payload (the bus does).
 */
export function encodeEnvelopeHead(message: Message): Buffer {
  return encode(message, false);
}

function encode(message: Message, withPayload: boolean): Buffer {
  const { properties: props, expiresAt, publisherId } = message;
  let flags = message.qos & 3;
  if (message.retain) flags |= F_RETAIN;
  let size = HEAD + strSize(message.id) + (withPayload ? message.payload.length : 0);
  if (expiresAt !== undefined) {
    flags |= F_EXPIRES;
    size += 8;
  }
  if (publisherId !== undefined) {
    flags |= F_PUBLISHER;
    size += strSize(publisherId);
  }
  let pflags = 0;
  if (props !== undefined) {
    flags |= F_PROPS;
    size += 1;
    if (props.payloadFormatIndicator !== undefined) pflags |= props.payloadFormatIndicator ? P_PFI | P_PFI_TRUE : P_PFI;
    if (props.contentType !== undefined) {
      pflags |= P_CONTENT_TYPE;
      size += strSize(props.contentType);
    }
    if (props.responseTopic !== undefined) {
      pflags |= P_RESPONSE_TOPIC;
      size += strSize(props.responseTopic);
    }
    if (props.correlationData !== undefined) {
      pflags |= P_CORRELATION;
      size += varintSize(props.correlationData.length) + props.correlationData.length;
    }
    if (props.userProperties !== undefined) {
      pflags |= P_USER;
      size += userPropertiesSize(props.userProperties);
    }
  }

  const buf = Buffer.allocUnsafe(size);
  buf[0] = ENVELOPE_VERSION;
  buf[1] = flags;
  buf.writeDoubleLE(message.createdAt, 2);
  let offset = HEAD;
  if (expiresAt !== undefined) offset = buf.writeDoubleLE(expiresAt, offset);
  offset = writeStr(buf, offset, message.id);
  if (publisherId !== undefined) offset = writeStr(buf, offset, publisherId);
  if (props !== undefined) {
    buf[offset++] = pflags;
    if (props.contentType !== undefined) offset = writeStr(buf, offset, props.contentType);
    if (props.responseTopic !== undefined) offset = writeStr(buf, offset, props.responseTopic);
    if (props.correlationData !== undefined) {
      offset = writeVarint(buf, offset, props.correlationData.length);
      offset += props.correlationData.copy(buf, offset);
    }
    if (props.userProperties !== undefined) offset = writeUserProperties(buf, offset, props.userProperties);
  }
  if (withPayload) message.payload.copy(buf, offset);
  return buf;
}

/** A cursor over received bytes; every read checks bounds. */
class Reader {
  offset = HEAD;
  constructor(readonly buf: Buffer) {}

  fail(what: string): never {
    throw new EnvelopeError(`malformed envelope: ${what} at byte ${this.offset} of ${this.buf.length}`);
  }

  u8(what: string): number {
    if (this.offset >= this.buf.length) this.fail(`truncated ${what}`);
    return this.buf[this.offset++]!;
  }

  f64(what: string): number {
    if (this.offset + 8 > this.buf.length) this.fail(`truncated ${what}`);
    const v = this.buf.readDoubleLE(this.offset);
    this.offset += 8;
    return v;
  }

  varint(what: string): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 5; i++) {
      const b = this.u8(what);
      n += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (i > 0 && b === 0) this.fail(`over-long ${what}`); // one encoding per number
        return n;
      }
      scale *= 128;
    }
    return this.fail(`${what} longer than 5 bytes`);
  }

  /** A length-prefixed range; returns its start, advances past it. */
  range(what: string): number {
    const n = this.varint(what);
    const start = this.offset;
    if (n > this.buf.length - start) this.fail(`${what} longer than the envelope`);
    this.offset = start + n;
    return start;
  }

  str(what: string): string {
    const start = this.range(what);
    return this.buf.toString('utf8', start, this.offset);
  }

  bytes(what: string): Buffer {
    const start = this.range(what);
    return this.buf.subarray(start, this.offset);
  }
}

function readUserProperties(r: Reader): UserProperties {
  const count = r.varint('user property count');
  const user: UserProperties = {};
  for (let i = 0; i < count; i++) {
    const key = r.str('user property key');
    if (Object.hasOwn(user, key)) r.fail(`repeated user property key ${JSON.stringify(key)}`);
    const k = r.varint('user property arity');
    let value: string | string[];
    if (k === 0) {
      value = r.str('user property value');
    } else {
      // each value takes at least one byte: a count beyond the remaining bytes is garbage
      if (k - 1 > r.buf.length - r.offset) r.fail('user property array longer than the envelope');
      value = new Array<string>(k - 1);
      for (let j = 0; j < k - 1; j++) value[j] = r.str('user property value');
    }
    // '__proto__' is a legal MQTT user property name: make it an own property, not the prototype
    if (key === '__proto__') Object.defineProperty(user, key, { value, enumerable: true, writable: true, configurable: true });
    else user[key] = value;
  }
  return user;
}

function readProperties(r: Reader): MessageProperties {
  const pflags = r.u8('property flags');
  if (pflags & P_RESERVED) r.fail('reserved property flags set');
  if ((pflags & (P_PFI | P_PFI_TRUE)) === P_PFI_TRUE) r.fail('payload format value without the indicator');
  const props: {
    payloadFormatIndicator?: boolean;
    contentType?: string;
    responseTopic?: string;
    correlationData?: Buffer;
    userProperties?: UserProperties;
  } = {};
  if (pflags & P_PFI) props.payloadFormatIndicator = (pflags & P_PFI_TRUE) !== 0;
  if (pflags & P_CONTENT_TYPE) props.contentType = r.str('content type');
  if (pflags & P_RESPONSE_TOPIC) props.responseTopic = r.str('response topic');
  if (pflags & P_CORRELATION) props.correlationData = r.bytes('correlation data');
  if (pflags & P_USER) props.userProperties = readUserProperties(r);
  return props;
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Decodes an envelope back into a message with the given topic. Throws EnvelopeError for
 * bytes that are not a well-formed version 1 envelope.
 */
export function decodeEnvelope(data: Uint8Array, topic: string): Message {
  const buf = asBuffer(data);
  if (buf.length < HEAD) throw new EnvelopeError(`malformed envelope: ${buf.length} bytes is too short`);
  if (buf[0] !== ENVELOPE_VERSION) throw new EnvelopeError(`unsupported envelope version ${buf[0]}`);
  const flags = buf[1]!;
  if (flags & F_RESERVED) throw new EnvelopeError('malformed envelope: reserved flags set');
  const qos = flags & 3;
  if (qos === 3) throw new EnvelopeError('malformed envelope: QoS 3');
  const r = new Reader(buf);
  const createdAt = buf.readDoubleLE(2);
  const expiresAt = flags & F_EXPIRES ? r.f64('expiresAt') : undefined;
  const id = r.str('id');
  const publisherId = flags & F_PUBLISHER ? r.str('publisherId') : undefined;
  const properties = flags & F_PROPS ? readProperties(r) : undefined;
  const message: {
    -readonly [K in keyof Message]: Message[K];
  } = {
    id,
    topic,
    payload: buf.subarray(r.offset),
    qos: qos as QoS,
    retain: (flags & F_RETAIN) !== 0,
    createdAt,
  };
  if (properties !== undefined) message.properties = properties;
  if (expiresAt !== undefined) message.expiresAt = expiresAt;
  if (publisherId !== undefined) message.publisherId = publisherId;
  return message;
}
