/** PROXY protocol headers built byte by byte, as HAProxy and AWS NLB send them (and worse). */
import net from 'node:net';

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** `PROXY TCP4|TCP6 src dst sport dport\r\n`. */
export function v1Header(family: 'tcp4' | 'tcp6', source: [string, number], destination: [string, number]): Buffer {
  const name = family === 'tcp4' ? 'TCP4' : 'TCP6';
  return Buffer.from(`PROXY ${name} ${source[0]} ${destination[0]} ${source[1]} ${destination[1]}\r\n`, 'latin1');
}

export interface V2Options {
  readonly command?: 'local' | 'proxy';
  /** Byte 13 as given (version and command), overriding `command`. */
  readonly versionCommand?: number;
  /** 'raw': byte 14 is `familyByte` and the address block is `block`. */
  readonly family: 'tcp4' | 'tcp6' | 'unspec' | 'raw';
  readonly familyByte?: number;
  readonly block?: Buffer;
  readonly source?: [string, number];
  readonly destination?: [string, number];
  readonly tlvs?: readonly (readonly [number, Buffer])[];
  /** Bytes cut off the end of the TLVs after their lengths were written. */
  readonly cutTlv?: number;
  /** Bytes after the TLVs, counted in the header length. */
  readonly trailing?: Buffer;
}

/** A v2 header: signature, version/command, family/protocol, length, addresses, TLVs. */
export function v2Header(options: V2Options): Buffer {
  const [src, sport] = options.source ?? ['0.0.0.0', 0];
  const [dst, dport] = options.destination ?? ['0.0.0.0', 0];
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sport, 0);
  ports.writeUInt16BE(dport, 2);
  let block: Buffer;
  let familyByte: number;
  switch (options.family) {
    case 'tcp4':
      block = Buffer.concat([ipv4Bytes(src), ipv4Bytes(dst), ports]);
      familyByte = 0x11;
      break;
    case 'tcp6':
      block = Buffer.concat([ipv6Bytes(src), ipv6Bytes(dst), ports]);
      familyByte = 0x21;
      break;
    case 'unspec':
      block = Buffer.alloc(0);
      familyByte = 0x00;
      break;
    case 'raw':
      block = options.block ?? Buffer.alloc(0);
      familyByte = options.familyByte ?? 0;
      break;
  }
  let tlvs = Buffer.concat(
    (options.tlvs ?? []).map(([type, value]) => {
      const head = Buffer.alloc(3);
      head[0] = type;
      head.writeUInt16BE(value.length, 1);
      return Buffer.concat([head, value]);
    }),
  );
  if (options.cutTlv !== undefined) tlvs = tlvs.subarray(0, tlvs.length - options.cutTlv);
  const body = Buffer.concat([block, tlvs, options.trailing ?? Buffer.alloc(0)]);
  const fixed = Buffer.alloc(4);
  fixed[0] = options.versionCommand ?? (options.command === 'local' ? 0x20 : 0x21);
  fixed[1] = familyByte;
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([Buffer.from(V2_SIGNATURE), fixed, body]);
}

function ipv4Bytes(address: string): Buffer {
  if (!net.isIPv4(address)) throw new Error(`not IPv4: ${address}`);
  return Buffer.from(address.split('.').map(Number));
}

/** 16 bytes of an IPv6 address in any spelling (`::`, an IPv4 tail). */
export function ipv6Bytes(address: string): Buffer {
  if (!net.isIPv6(address)) throw new Error(`not IPv6: ${address}`);
  const groups = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((g) => {
      if (!g.includes('.')) return [parseInt(g, 16)];
      const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
      return [(a << 8) | b, (c << 8) | d];
    });
  };
  const [head, tail] = address.split('::') as [string, string | undefined];
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}
