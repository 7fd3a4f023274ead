import type net from 'node:net';
import type { ConnectionInfo } from '@fleetmq/broker';
import { parseProxyHeader, type ProxyHeader } from './proxy-protocol.js';

/** Milliseconds a PROXY protocol listener waits for the header by default. */
export const DEFAULT_PROXY_HEADER_TIMEOUT = 5_000;

export type ProxyHeaderRead = { readonly ok: true; readonly header: ProxyHeader } | { readonly ok: false; readonly reason: string };

/**
 * Reads a PROXY protocol header off the start of a freshly accepted socket. On success the
 * bytes after the header are put back, so whoever reads the socket next (a Connection, a
 * TLS server) sees the client's stream from its first byte. Without a valid header within
 * `timeoutMs` (or `PROXY_V1_MAX_LENGTH` / `PROXY_V2_MAX_LENGTH` bytes) the socket is destroyed.
 */
export function readProxyHeader(socket: net.Socket, timeoutMs: number): Promise<ProxyHeaderRead> {
  return new Promise((resolve) => {
    let buffered: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (result: ProxyHeaderRead, rest?: Buffer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      if (!result.ok) socket.destroy();
      // Paused mode ends with the listener gone: the next 'data' listener (or TLS) reads on
      else if (rest !== undefined && rest.length > 0) socket.unshift(rest);
      resolve(result);
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while (!done && (chunk = socket.read() as Buffer | null) !== null) {
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        const parsed = parseProxyHeader(buffered);
        if (parsed.kind === 'invalid') finish({ ok: false, reason: parsed.reason });
        else if (parsed.kind === 'header') finish({ ok: true, header: parsed.header }, buffered.subarray(parsed.length));
      }
    };
    const onEnd = (): void => finish({ ok: false, reason: 'closed before the PROXY header' });
    const onError = (err: Error): void => finish({ ok: false, reason: `socket error: ${err.message}` });
    const timer = setTimeout(() => finish({ ok: false, reason: 'no PROXY header in time' }), timeoutMs);
    timer.unref();
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
  });
}

/** The connection's info with the client's address from a PROXY header. */
export function proxiedInfo(info: ConnectionInfo, header: ProxyHeader): ConnectionInfo {
  if (header.command === 'local' || header.family === 'unknown') return { ...info, proxied: false };
  return {
    ...info,
    remoteAddress: header.source.address,
    remotePort: header.source.port,
    proxied: true,
    ...(header.vpcEndpointId !== undefined && { vpcEndpointId: header.vpcEndpointId }),
  };
}
