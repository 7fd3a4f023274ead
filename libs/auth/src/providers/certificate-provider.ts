import type { ClientInfo } from '@fleetmq/broker';
import { accept, skip, type AuthProvider, type ProviderResult } from '../provider.js';

export interface CertificateProviderOptions {
  readonly name?: string;
}

/**
 * Mutual TLS as authentication: a client whose username the broker took from its verified
 * client certificate (the broker's `usernameFromCertificate`, e.g. the CN) is accepted as
 * that user; a password it sent is not looked at. This is Mosquitto's
 * use_identity_as_username. The TLS listener has already checked the certificate against its
 * CA and CRL. Not its client (skip): a username that came from CONNECT.
 */
export class CertificateProvider implements AuthProvider {
  readonly name: string;

  constructor(options: CertificateProviderOptions = {}) {
    this.name = options.name ?? 'certificate';
  }

  authenticate(client: ClientInfo): ProviderResult {
    if (client.usernameFromCertificate !== true || client.clientCertificate === undefined || client.username === undefined) return skip;
    return accept({ provider: this.name, username: client.username, groups: [] });
  }
}
