/**
 * How many TCP connections one run can hold: every connection costs a file descriptor in the
 * runner and one in the broker process that accepts it (each limited by `ulimit -n`), and an
 * ephemeral port of its source address (net.ipv4.ip_local_port_range). Scenarios asking for
 * more are capped, with a note that says why.
 */
import { readFileSync } from 'node:fs';
import { fdLimit } from './proc.js';

/** Descriptors kept free for everything else a process holds (listeners, files, pipes). */
const RESERVE = 200;

/**
 * Loopback source addresses many-connection scenarios spread their clients over (127.0.0.2 …
 * 127.0.0.17; Linux routes all of 127.0.0.0/8 to lo). Each has its own ephemeral ports, and the
 * kernel's search for a free port stays short: from one address it grows with every open
 * connection until it costs more CPU than the broker's accept.
 */
export const SOURCE_ADDRESSES = 16;

export function sourceAddress(i: number): string {
  return `127.0.0.${2 + (i % SOURCE_ADDRESSES)}`;
}

export function ephemeralPorts(): number {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return (high ?? 60999) - (low ?? 32768) + 1;
  } catch {
    return 28_232;
  }
}

export interface ConnectionBudget {
  readonly requested: number;
  readonly allowed: number;
  /** Set when `allowed < requested`. */
  readonly note?: string;
}

/**
 * Caps `requested` connections spread over `brokerPids` (round-robin, as the scenarios spread
 * them) by the runner's and each broker's open-file limit and the ephemeral ports.
 */
export function connectionBudget(requested: number, brokerPids: readonly number[]): ConnectionBudget {
  const runner = fdLimit('self') - RESERVE;
  const perBroker = Math.min(...brokerPids.map((pid) => fdLimit(pid))) - RESERVE;
  const brokers = perBroker * Math.max(1, brokerPids.length);
  const ports = (ephemeralPorts() - 1_000) * SOURCE_ADDRESSES;
  const allowed = Math.max(0, Math.min(requested, runner, brokers, ports));
  if (allowed >= requested) return { requested, allowed };
  const reasons: string[] = [];
  if (runner < requested) reasons.push(`the runner may open ${fdLimit('self')} files (ulimit -n)`);
  if (brokers < requested) reasons.push(`the broker process may open ${perBroker + RESERVE} files (ulimit -n${brokerPids.length > 1 ? ', per node' : ''})`);
  if (ports < requested) reasons.push(`${SOURCE_ADDRESSES} source addresses with ${ephemeralPorts()} ephemeral ports each`);
  return {
    requested,
    allowed,
    note: `capped at ${allowed.toLocaleString('en-US')} of ${requested.toLocaleString('en-US')} connections: ${reasons.join('; ')} (raise the hard limit, e.g. \`ulimit -Hn 65536\` as root, to run the full count)`,
  };
}
