import { isIPv4, isIPv6 } from 'node:net';

/**
 * The key a per-source limit is counted under. IPv4 addresses (also IPv4-mapped IPv6,
 * `::ffff:192.0.2.1`) count by address; IPv6 addresses count by their /64 prefix, because
 * one host usually holds a whole /64 and could otherwise rotate addresses to escape the limit.
 * Anything else (a Unix socket path, an empty string) counts as itself.
 */
export function sourceKey(address: string): string {
  const zoneless = address.split('%')[0] ?? address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(zoneless);
  if (mapped?.[1] !== undefined && isIPv4(mapped[1])) return mapped[1];
  if (isIPv4(zoneless)) return zoneless;
  if (isIPv6(zoneless)) {
    const groups = expandIPv6(zoneless);
    if (groups !== undefined) return `${groups.slice(0, 4).join(':')}::/64`;
  }
  return address;
}

/** The eight 16-bit groups of an IPv6 address, lowercase, without leading zeros. */
function expandIPv6(address: string): string[] | undefined {
  let text = address.toLowerCase();
  // an embedded IPv4 tail (::1.2.3.4) becomes two groups
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1] !== undefined) {
    const b = v4[1].split('.').map(Number);
    const hi = (((b[0] ?? 0) << 8) | (b[1] ?? 0)).toString(16);
    const lo = (((b[2] ?? 0) << 8) | (b[3] ?? 0)).toString(16);
    text = `${text.slice(0, -v4[1].length)}${hi}:${lo}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...Array<string>(fill).fill('0'), ...right];
  if (groups.length !== 8) return undefined;
  return groups.map((g) => parseInt(g, 16).toString(16));
}
