import type { ClientInfo } from '@fleetmq/broker';
import { secretsEqual } from '../constant-time.js';
import { verifyPassword, type PasswordHash } from '../password-hash.js';
import { accept, badCredentials, skip, type AuthProvider, type ProviderResult } from '../provider.js';

export const USE_TOKEN_AUTH = 'use-token-auth';

/** A device's token: in plain text, or (better) as a `mosquitto_passwd` hash. */
export type DeviceTokenRecord = ({ readonly token: string | Uint8Array } | { readonly hash: PasswordHash }) & {
  /** The ACL user; default the client ID. */
  readonly username?: string;
  readonly groups?: readonly string[];
};

export interface DeviceTokenProviderOptions {
  readonly name?: string;
  /** The username that marks token authentication. Default `use-token-auth` (IBM Watson IoT). */
  readonly username?: string;
  /** The device's token by client ID (IBM: `d:<org>:<type>:<device>`); undefined for an unknown device. */
  readonly tokenFor: (clientId: string) => DeviceTokenRecord | undefined | Promise<DeviceTokenRecord | undefined>;
}

const DECOY = Buffer.alloc(32, 0x5a);

/**
 * IBM-style per-device tokens: username `use-token-auth`, the token as the password, the
 * device known by its client ID (so the credential is bound to the client ID by
 * construction). Compared in constant time. Not its client (skip): any other username.
 */
export class DeviceTokenProvider implements AuthProvider {
  readonly name: string;
  private readonly username: string;
  private readonly tokenFor: DeviceTokenProviderOptions['tokenFor'];

  constructor(options: DeviceTokenProviderOptions) {
    this.name = options.name ?? 'device-token';
    this.username = options.username ?? USE_TOKEN_AUTH;
    this.tokenFor = options.tokenFor;
  }

  async authenticate(client: ClientInfo): Promise<ProviderResult> {
    if (client.username !== this.username) return skip;
    if (client.password === undefined) return badCredentials('no_password');
    const record = await this.tokenFor(client.clientId);
    if (record === undefined) {
      secretsEqual(client.password, DECOY); // same work as a known device
      return badCredentials('unknown_device');
    }
    const ok = 'token' in record ? secretsEqual(client.password, record.token) : await verifyPassword(client.password, record.hash);
    if (!ok) return badCredentials('bad_token');
    return accept({ provider: this.name, username: record.username ?? client.clientId, groups: record.groups ?? [] });
  }
}
