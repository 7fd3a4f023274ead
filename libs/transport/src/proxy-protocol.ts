import net from 'node:net';

/**
 * PROXY protocol v1 (text) and v2 (binary) headers, as HAProxy's proxy-protocol.txt
 * defines them and AWS NLB and HAProxy send them: the parser only, pure and bounded. It
 * never throws; it says whether the bytes so far are a header, its beginning, or not one.
 */

export interface ProxyAddress {
  readonly address: string;
  readonly port: number;
}

export type ProxyHeader =
  /** The proxy's own connection (a health check): use the socket's addresses. */
  | { readonly version: 1 | 2; readonly command: 'local' }
  /** A relayed connection whose addresses are not TCP over IP (v1 UNKNOWN, v2 UNSPEC/UNIX/DGRAM). */
  | { readonly version: 1 | 2; readonly command: 'proxy'; readonly family: 'unknown' }
  | {
      readonly version: 1 | 2;
      readonly command: 'proxy';
      readonly family: 'tcp4' | 'tcp6';
      readonly source: ProxyAddress;
      readonly destination: ProxyAddress;
      /** AWS PrivateLink: PP2_TYPE_AWS (0xEA), subtype PP2_SUBTYPE_AWS_VPCE_ID (0x01). */
      readonly vpcEndpointId?: string;
    };

export type ProxyParseResult =
  /** A prefix of a header: read more (the caller bounds the time). */
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** A header of `length` bytes; what follows it is the client's stream. */
  | { readonly kind: 'header'; readonly header: ProxyHeader; readonly length: number };

/** A v1 line is at most 107 bytes, CRLF included (proxy-protocol.txt section 2.1). */
export const PROXY_V1_MAX_LENGTH = 107;
/**
 * Largest v2 header accepted, bytes. The format allows 16 + 65535; NLB and HAProxy send
 * well under 1 KiB (addresses plus a few TLVs), so more is refused rather than buffered.
 */
export const PROXY_V2_MAX_LENGTH = 4096;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED = 16;
const PP2_TYPE_AWS = 0xea;
const PP2_SUBTYPE_AWS_VPCE_ID = 0x01;

const INCOMPLETE: ProxyParseResult = { kind: 'incomplete' };
const invalid = (reason: string): ProxyParseResult => ({ kind: 'invalid', reason });

/** True when `buf` and `prefix` agree on their common length. */
function agrees(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

/** Parses the start of a stream as a PROXY header (either version). */
export function parseProxyHeader(buf: Buffer, maxV2Length: number = PROXY_V2_MAX_LENGTH): ProxyParseResult {
  if (buf.length === 0) return INCOMPLETE;
  if (agrees(buf, V2_SIGNATURE)) return buf.length < V2_SIGNATURE.length ? INCOMPLETE : parseV2(buf, maxV2Length);
  if (agrees(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? INCOMPLETE : parseV1(buf);
  return invalid('no PROXY protocol signature');
}

function parseV1(buf: Buffer): ProxyParseResult {
  const window = buf.subarray(0, PROXY_V1_MAX_LENGTH);
  const lf = window.indexOf(0x0a);
  if (lf === -1) return buf.length >= PROXY_V1_MAX_LENGTH ? invalid('v1 line longer than 107 bytes') : INCOMPLETE;
  if (lf === 0 || window[lf - 1] !== 0x0d) return invalid('v1 line not ended by CRLF');
  const line = window.subarray(0, lf - 1);
  for (const byte of line) if (byte < 0x20 || byte > 0x7e) return invalid('v1 line has a non-printable byte');
  const fields = line.toString('latin1').split(' ');
  const length = lf + 1;
  const family = fields[1];
  // "UNKNOWN" may be followed by anything up to CRLF, which the receiver ignores
  if (family === 'UNKNOWN') return { kind: 'header', length, header: { version: 1, command: 'proxy', family: 'unknown' } };
  if (family !== 'TCP4' && family !== 'TCP6') return invalid('v1 protocol is not TCP4, TCP6 or UNKNOWN');
  if (fields.length !== 6) return invalid('v1 line does not have 6 fields');
  const [, , src, dst, srcPort, dstPort] = fields as [string, string, string, string, string, string];
  const isIp = family === 'TCP4' ? net.isIPv4 : net.isIPv6;
  if (!isIp(src) || !isIp(dst)) return invalid(`v1 address is not ${family === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  const sourcePort = parsePort(srcPort);
  const destinationPort = parsePort(dstPort);
  if (sourcePort === undefined || destinationPort === undefined) return invalid('v1 port is not 0..65535');
  const kind = family === 'TCP4' ? 'ipv4' : 'ipv6';
  return {
    kind: 'header',
    length,
    header: {
      version: 1,
      command: 'proxy',
      family: family === 'TCP4' ? 'tcp4' : 'tcp6',
      source: { address: canonical(src, kind), port: sourcePort },
      destination: { address: canonical(dst, kind), port: destinationPort },
    },
  };
}

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/** The address as Node writes it (IPv6 compressed, RFC 5952), so one client has one spelling. */
function canonical(address: string, family: 'ipv4' | 'ipv6'): string {
  return new net.SocketAddress({ address, family }).address;
}

function parseV2(buf: Buffer, maxLength: number): ProxyParseResult {
  if (buf.length < V2_FIXED) return INCOMPLETE;
  const versionCommand = buf[12]!;
  if (versionCommand >> 4 !== 2) return invalid('v2 version is not 2');
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid('v2 command is not LOCAL or PROXY');
  const familyProtocol = buf[13]!;
  const family = familyProtocol >> 4;
  const protocol = familyProtocol & 0x0f;
  if (family > 3 || protocol > 2) return invalid('v2 address family or protocol unknown');
  const length = V2_FIXED + buf.readUInt16BE(14);
  if (length > maxLength) return invalid(`v2 header longer than ${maxLength} bytes`);
  if (buf.length < length) return INCOMPLETE;
  // LOCAL: the receiver skips the whole block and uses the real connection endpoints
  if (command === 0) return { kind: 'header', length, header: { version: 2, command: 'local' } };
  const stream = protocol === 1;
  if (stream && (family === 1 || family === 2)) {
    const ipv4 = family === 1;
    const addressLength = ipv4 ? 12 : 36;
    if (length - V2_FIXED < addressLength) return invalid('v2 address block shorter than its family needs');
    const a = V2_FIXED;
    const ipLength = ipv4 ? 4 : 16;
    const source = ipv4 ? ipv4Text(buf.subarray(a, a + 4)) : ipv6Text(buf.subarray(a, a + 16));
    const destination = ipv4 ? ipv4Text(buf.subarray(a + 4, a + 8)) : ipv6Text(buf.subarray(a + 16, a + 32));
    const sourcePort = buf.readUInt16BE(a + 2 * ipLength);
    const destinationPort = buf.readUInt16BE(a + 2 * ipLength + 2);
    const tlvs = readTlvs(buf.subarray(a + addressLength, length));
    if (tlvs === undefined) return invalid('v2 TLV overruns the header');
    return {
      kind: 'header',
      length,
      header: {
        version: 2,
        command: 'proxy',
        family: ipv4 ? 'tcp4' : 'tcp6',
        source: { address: source, port: sourcePort },
        destination: { address: destination, port: destinationPort },
        ...(tlvs.vpcEndpointId !== undefined && { vpcEndpointId: tlvs.vpcEndpointId }),
      },
    };
  }
  // UNSPEC, UNIX or DGRAM: nothing a TCP listener can use; fall back to the socket's
  // addresses, as the specification asks of receivers that do not implement them
  return { kind: 'header', length, header: { version: 2, command: 'proxy', family: 'unknown' } };
}

function ipv4Text(bytes: Buffer): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return canonical(groups.join(':'), 'ipv6');
}

/** Walks the TLVs; undefined when one runs past the end. Only the AWS VPC endpoint is read. */
function readTlvs(block: Buffer): { vpcEndpointId?: string } | undefined {
  let vpcEndpointId: string | undefined;
  let offset = 0;
  while (offset < block.length) {
    if (offset + 3 > block.length) return undefined;
    const type = block[offset]!;
    const valueLength = block.readUInt16BE(offset + 1);
    const end = offset + 3 + valueLength;
    if (end > block.length) return undefined;
    if (type === PP2_TYPE_AWS && valueLength > 1 && block[offset + 3] === PP2_SUBTYPE_AWS_VPCE_ID) {
      const id = block.subarray(offset + 4, end);
      // an ID (vpce-0123…) goes into logs and ACLs: printable ASCII only, else ignored
      if (id.every((byte) => byte > 0x20 && byte < 0x7f)) vpcEndpointId = id.toString('latin1');
    }
    offset = end;
  }
  return vpcEndpointId === undefined ? {} : { vpcEndpointId };
}
