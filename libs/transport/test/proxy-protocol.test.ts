import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { connectBytes } from '@fleetmq/testkit';
import { PROXY_V1_MAX_LENGTH, PROXY_V2_MAX_LENGTH, parseProxyHeader } from '../src/proxy-protocol.js';
import { v1Header, v2Header, type V2Options } from './proxy-support.js';

const tail = Buffer.from([0x10, 0x0c, 0x00]); // the first bytes of a CONNECT

describe('PROXY protocol v1', () => {
  it('reads TCP4 source and destination, and the length up to CRLF', () => {
    const header = Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 51234 1883\r\n', 'latin1');
    expect(parseProxyHeader(Buffer.concat([header, tail]))).toEqual({
      kind: 'header',
      length: header.length,
      header: {
        version: 1,
        command: 'proxy',
        family: 'tcp4',
        source: { address: '203.0.113.7', port: 51234 },
        destination: { address: '192.0.2.1', port: 1883 },
      },
    });
  });

  it('reads TCP6 addresses and writes them compressed', () => {
    const header = Buffer.from('PROXY TCP6 2001:db8:0:0:0:0:0:1 ::ffff:192.0.2.1 65535 0\r\n', 'latin1');
    expect(parseProxyHeader(header)).toMatchObject({
      kind: 'header',
      length: header.length,
      header: { family: 'tcp6', source: { address: '2001:db8::1', port: 65535 }, destination: { address: '::ffff:192.0.2.1', port: 0 } },
    });
  });

  it('takes UNKNOWN with or without addresses as a relayed connection of no usable address', () => {
    for (const line of ['PROXY UNKNOWN\r\n', 'PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n']) {
      expect(parseProxyHeader(Buffer.from(line, 'latin1'))).toEqual({
        kind: 'header',
        length: line.length,
        header: { version: 1, command: 'proxy', family: 'unknown' },
      });
    }
  });

  it('says incomplete for every proper prefix of a header', () => {
    const header = Buffer.from('PROXY TCP4 10.0.0.1 10.0.0.2 1000 1883\r\n', 'latin1');
    for (let n = 0; n < header.length; n++) expect(parseProxyHeader(header.subarray(0, n)), `prefix ${n}`).toEqual({ kind: 'incomplete' });
  });

  it.each([
    ['no CRLF within 107 bytes', `PROXY TCP4 ${'1'.repeat(120)}`, 'v1 line longer than 107 bytes'],
    ['a LF without CR', 'PROXY TCP4 10.0.0.1 10.0.0.2 1 2\n', 'v1 line not ended by CRLF'],
    ['an unknown protocol', 'PROXY UDP4 10.0.0.1 10.0.0.2 1 2\r\n', 'v1 protocol is not TCP4, TCP6 or UNKNOWN'],
    ['lower case', 'PROXY tcp4 10.0.0.1 10.0.0.2 1 2\r\n', 'v1 protocol is not TCP4, TCP6 or UNKNOWN'],
    ['an IPv6 address in TCP4', 'PROXY TCP4 ::1 10.0.0.2 1 2\r\n', 'v1 address is not IPv4'],
    ['an IPv4 address in TCP6', 'PROXY TCP6 10.0.0.1 ::1 1 2\r\n', 'v1 address is not IPv6'],
    ['a bad address', 'PROXY TCP4 10.0.0.256 10.0.0.2 1 2\r\n', 'v1 address is not IPv4'],
    ['a port above 65535', 'PROXY TCP4 10.0.0.1 10.0.0.2 65536 2\r\n', 'v1 port is not 0..65535'],
    ['a negative port', 'PROXY TCP4 10.0.0.1 10.0.0.2 -1 2\r\n', 'v1 port is not 0..65535'],
    ['a missing field', 'PROXY TCP4 10.0.0.1 10.0.0.2 1\r\n', 'v1 line does not have 6 fields'],
    ['a double space', 'PROXY TCP4  10.0.0.1 10.0.0.2 1 2\r\n', 'v1 line does not have 6 fields'],
    ['a control byte', 'PROXY TCP4 10.0.0.1\t10.0.0.2 1 2\r\n', 'v1 line has a non-printable byte'],
  ])('refuses %s', (_what, text, reason) => {
    expect(parseProxyHeader(Buffer.from(text, 'latin1'))).toEqual({ kind: 'invalid', reason });
  });

  it('accepts a line of exactly 107 bytes', () => {
    const unknown = `PROXY UNKNOWN ${'x'.repeat(PROXY_V1_MAX_LENGTH - 16)}\r\n`;
    expect(unknown.length).toBe(PROXY_V1_MAX_LENGTH);
    expect(parseProxyHeader(Buffer.from(unknown, 'latin1'))).toMatchObject({ kind: 'header', length: PROXY_V1_MAX_LENGTH });
  });
});

describe('PROXY protocol v2', () => {
  it('reads TCP over IPv4', () => {
    const header = v2Header({ family: 'tcp4', source: ['198.51.100.22', 40000], destination: ['10.0.0.5', 8883] });
    expect(header.length).toBe(28);
    expect(parseProxyHeader(Buffer.concat([header, tail]))).toEqual({
      kind: 'header',
      length: 28,
      header: {
        version: 2,
        command: 'proxy',
        family: 'tcp4',
        source: { address: '198.51.100.22', port: 40000 },
        destination: { address: '10.0.0.5', port: 8883 },
      },
    });
  });

  it('reads TCP over IPv6, compressed', () => {
    const header = v2Header({ family: 'tcp6', source: ['2001:db8::7', 1], destination: ['fe80::1', 2] });
    expect(header.length).toBe(52);
    expect(parseProxyHeader(header)).toMatchObject({
      kind: 'header',
      length: 52,
      header: { family: 'tcp6', source: { address: '2001:db8::7', port: 1 }, destination: { address: 'fe80::1', port: 2 } },
    });
  });

  it("reads AWS's VPC endpoint TLV and skips the others", () => {
    const header = v2Header({
      family: 'tcp4',
      source: ['10.1.2.3', 5555],
      destination: ['10.0.0.5', 1883],
      tlvs: [
        [0x04, Buffer.alloc(5)], // NOOP padding
        [0xea, Buffer.concat([Buffer.from([0x01]), Buffer.from('vpce-0abc123def4567890', 'latin1')])],
        [0x20, Buffer.from([0x01, 0, 0, 0, 0])], // SSL
      ],
    });
    expect(parseProxyHeader(header)).toEqual({
      kind: 'header',
      length: header.length,
      header: {
        version: 2,
        command: 'proxy',
        family: 'tcp4',
        source: { address: '10.1.2.3', port: 5555 },
        destination: { address: '10.0.0.5', port: 1883 },
        vpcEndpointId: 'vpce-0abc123def4567890',
      },
    });
  });

  it('ignores an AWS TLV of another subtype or with bytes that are not printable', () => {
    for (const value of [Buffer.from([0x02, 0x41]), Buffer.from([0x01, 0x41, 0x0a])]) {
      const parsed = parseProxyHeader(v2Header({ family: 'tcp4', source: ['10.1.2.3', 1], destination: ['10.0.0.5', 2], tlvs: [[0xea, value]] }));
      expect(parsed.kind === 'header' && parsed.header).not.toHaveProperty('vpcEndpointId');
    }
  });

  it('takes LOCAL (a health check) and skips its address block', () => {
    const header = v2Header({ command: 'local', family: 'tcp4', source: ['1.2.3.4', 1], destination: ['5.6.7.8', 2] });
    expect(parseProxyHeader(header)).toEqual({ kind: 'header', length: 28, header: { version: 2, command: 'local' } });
    const bare = v2Header({ command: 'local', family: 'unspec' });
    expect(parseProxyHeader(bare)).toEqual({ kind: 'header', length: 16, header: { version: 2, command: 'local' } });
  });

  it('falls back to no usable address for UNSPEC, UNIX and DGRAM', () => {
    const cases: V2Options[] = [
      { family: 'unspec' },
      { family: 'raw', familyByte: 0x31, block: Buffer.alloc(216) }, // UNIX stream
      { family: 'raw', familyByte: 0x12, block: Buffer.alloc(12) }, // UDP over IPv4
    ];
    for (const options of cases) {
      const header = v2Header(options);
      expect(parseProxyHeader(header)).toEqual({ kind: 'header', length: header.length, header: { version: 2, command: 'proxy', family: 'unknown' } });
    }
  });

  it('says incomplete for every proper prefix of a header', () => {
    const header = v2Header({ family: 'tcp6', source: ['::1', 1], destination: ['::2', 2], tlvs: [[0xea, Buffer.from('\x01vpce-1', 'latin1')]] });
    for (let n = 0; n < header.length; n++) expect(parseProxyHeader(header.subarray(0, n)), `prefix ${n}`).toEqual({ kind: 'incomplete' });
  });

  it.each([
    ['version 1 in the v2 format', { family: 'tcp4', versionCommand: 0x11 }, 'v2 version is not 2'],
    ['command 2', { family: 'tcp4', versionCommand: 0x22 }, 'v2 command is not LOCAL or PROXY'],
    ['address family 4', { family: 'raw', familyByte: 0x41, block: Buffer.alloc(12) }, 'v2 address family or protocol unknown'],
    ['transport protocol 3', { family: 'raw', familyByte: 0x13, block: Buffer.alloc(12) }, 'v2 address family or protocol unknown'],
    ['an IPv4 block of 11 bytes', { family: 'raw', familyByte: 0x11, block: Buffer.alloc(11) }, 'v2 address block shorter than its family needs'],
    ['an IPv6 block of 35 bytes', { family: 'raw', familyByte: 0x21, block: Buffer.alloc(35) }, 'v2 address block shorter than its family needs'],
    ['a TLV longer than the header', { family: 'tcp4', tlvs: [[0x20, Buffer.alloc(4)]], cutTlv: 1 }, 'v2 TLV overruns the header'],
    ['a TLV cut in its type and length', { family: 'tcp4', trailing: Buffer.from([0x20, 0x00]) }, 'v2 TLV overruns the header'],
  ] as [string, V2Options, string][])('refuses %s', (_what, options, reason) => {
    expect(parseProxyHeader(v2Header({ source: ['1.2.3.4', 1], destination: ['5.6.7.8', 2], ...options }))).toEqual({ kind: 'invalid', reason });
  });

  it('refuses a header announcing more than the bound at once, before its body arrives', () => {
    const announced = v2Header({ family: 'unspec', trailing: Buffer.alloc(PROXY_V2_MAX_LENGTH - 16 + 1) }).subarray(0, 16);
    expect(parseProxyHeader(announced)).toEqual({ kind: 'invalid', reason: `v2 header longer than ${PROXY_V2_MAX_LENGTH} bytes` });
    const atBound = v2Header({ family: 'unspec', trailing: Buffer.alloc(PROXY_V2_MAX_LENGTH - 16) });
    expect(parseProxyHeader(atBound)).toMatchObject({ kind: 'header', length: PROXY_V2_MAX_LENGTH });
  });
});

describe('not a PROXY header', () => {
  it('refuses MQTT, TLS and HTTP at the first byte', () => {
    const reason = { kind: 'invalid', reason: 'no PROXY protocol signature' };
    expect(parseProxyHeader(connectBytes(4, { clientId: 'direct' }))).toEqual(reason);
    expect(parseProxyHeader(Buffer.from([0x16]))).toEqual(reason); // TLS handshake record
    expect(parseProxyHeader(Buffer.from('GET /mqtt HTTP/1.1\r\n'))).toEqual(reason);
    expect(parseProxyHeader(Buffer.from('PROXX'))).toEqual(reason);
    expect(parseProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b]))).toEqual(reason);
  });
});

describe('parser properties (fast-check)', () => {
  const ipv4 = fc.ipV4();
  const ipv6 = fc.ipV6();
  const port = fc.integer({ min: 0, max: 65535 });
  const tlv = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)));

  it('never throws on any bytes, and a header it finds lies within them and within the bounds', () => {
    const anyStart = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }).map((a) => new Uint8Array([...Buffer.from('PROXY '), ...a])),
      fc.uint8Array({ maxLength: 300 }).map((a) => new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, ...a])),
    );
    fc.assert(
      fc.property(anyStart, (bytes) => {
        const result = parseProxyHeader(Buffer.from(bytes));
        expect(['incomplete', 'invalid', 'header']).toContain(result.kind);
        if (result.kind === 'header') {
          expect(result.length).toBeLessThanOrEqual(bytes.length);
          expect(result.length).toBeLessThanOrEqual(PROXY_V2_MAX_LENGTH);
        }
        if (result.kind === 'incomplete') expect(bytes.length).toBeLessThan(PROXY_V2_MAX_LENGTH);
      }),
      { numRuns: 3000 },
    );
  });

  it('reads back the addresses of any v1 header, whatever follows it', () => {
    // senders write IPv6 compressed (the 107-byte bound assumes it)
    const compressed = ipv6.map((a) => new net.SocketAddress({ address: a, family: 'ipv6' }).address);
    const v1 = fc.oneof(
      fc.record({ family: fc.constant('tcp4' as const), src: ipv4, dst: ipv4, sport: port, dport: port }),
      fc.record({ family: fc.constant('tcp6' as const), src: compressed, dst: compressed, sport: port, dport: port }),
    );
    fc.assert(
      fc.property(v1, fc.uint8Array({ maxLength: 40 }), (h, rest) => {
        const header = v1Header(h.family, [h.src, h.sport], [h.dst, h.dport]);
        const result = parseProxyHeader(Buffer.concat([header, rest]));
        expect(result).toMatchObject({ kind: 'header', length: header.length, header: { version: 1, command: 'proxy', family: h.family } });
        if (result.kind !== 'header' || result.header.command !== 'proxy' || result.header.family === 'unknown') throw new Error('unreachable');
        expect(result.header.source.port).toBe(h.sport);
        expect(result.header.destination.port).toBe(h.dport);
        expect(sameIp(result.header.source.address, h.src)).toBe(true);
        expect(sameIp(result.header.destination.address, h.dst)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('reads back the addresses of any v2 header with any TLVs, whatever follows it', () => {
    const v2 = fc.oneof(
      fc.record({ family: fc.constant('tcp4' as const), src: ipv4, dst: ipv4, sport: port, dport: port, tlvs: fc.array(tlv, { maxLength: 4 }) }),
      fc.record({ family: fc.constant('tcp6' as const), src: ipv6, dst: ipv6, sport: port, dport: port, tlvs: fc.array(tlv, { maxLength: 4 }) }),
    );
    fc.assert(
      fc.property(v2, fc.uint8Array({ maxLength: 40 }), (h, rest) => {
        const header = v2Header({ family: h.family, source: [h.src, h.sport], destination: [h.dst, h.dport], tlvs: h.tlvs });
        const result = parseProxyHeader(Buffer.concat([header, rest]));
        expect(result).toMatchObject({ kind: 'header', length: header.length, header: { version: 2, command: 'proxy', family: h.family } });
        if (result.kind !== 'header' || result.header.command !== 'proxy' || result.header.family === 'unknown') throw new Error('unreachable');
        expect(result.header.source.port).toBe(h.sport);
        expect(result.header.destination.port).toBe(h.dport);
        expect(sameIp(result.header.source.address, h.src)).toBe(true);
        expect(sameIp(result.header.destination.address, h.dst)).toBe(true);
        // every prefix is only a beginning
        for (const n of [0, 1, 12, 15, 16, header.length - 1]) expect(parseProxyHeader(header.subarray(0, n)).kind).toBe('incomplete');
      }),
      { numRuns: 500 },
    );
  });
});

/** Whether two spellings of an IP address are the same address. */
function sameIp(a: string, b: string): boolean {
  return new URL(`http://${a.includes(':') ? `[${a}]` : a}/`).hostname === new URL(`http://${b.includes(':') ? `[${b}]` : b}/`).hostname;
}
