import type tls from 'node:tls';
import type { ConnectionInfo } from '@fleetmq/broker';
import type { ClientCertificateMode } from './tls-options.js';

export type ClientCertificate = NonNullable<ConnectionInfo['clientCertificate']>;

/** The verified client certificate of a finished handshake, for ConnectionInfo. */
export function clientCertificateOf(socket: tls.TLSSocket): ClientCertificate | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (!presented(cert)) return undefined;
  return {
    subject: names(cert.subject),
    issuer: names(cert.issuer),
    serialNumber: cert.serialNumber,
    fingerprint256: cert.fingerprint256,
    ...(cert.subjectaltname !== undefined && { subjectAltName: cert.subjectaltname }),
  };
}

/**
 * Why a finished handshake must be refused, or undefined: 'NO_CLIENT_CERTIFICATE' when
 * 'required' and none came, else OpenSSL's verify code ('CERT_HAS_EXPIRED', 'CERT_REVOKED',
 * 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', …) for a certificate that was presented and did not
 * verify, in either mode.
 *
 * The listeners run with rejectUnauthorized off and decide here. With it on, Node destroys
 * an unverified client silently (no 'tlsClientError'), so nobody could count or log why;
 * the one thing given up is the "certificate required" alert a client without one would
 * get in the handshake: it is closed right after it instead.
 */
export function clientCertificateRefusal(socket: tls.TLSSocket, mode: ClientCertificateMode): string | undefined {
  if (mode === 'none' || socket.authorized) return undefined;
  if (!presented(socket.getPeerCertificate())) return mode === 'required' ? 'NO_CLIENT_CERTIFICATE' : undefined;
  return String(socket.authorizationError);
}

/** getPeerCertificate() gives an empty object when the client sent none. */
function presented(cert: tls.PeerCertificate | Record<string, never>): cert is tls.PeerCertificate {
  return typeof cert === 'object' && cert !== null && 'fingerprint256' in cert;
}

/** Subject or issuer as plain strings: Node gives an array for an attribute that repeats. */
function names(dn: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof dn !== 'object' || dn === null) return out;
  for (const [name, value] of Object.entries(dn as Record<string, unknown>)) {
    if (typeof value === 'string') out[name] = value;
    else if (Array.isArray(value)) out[name] = value.map(String).join(',');
  }
  return out;
}
