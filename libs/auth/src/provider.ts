import { ReasonCode } from '@fleetmq/protocol';
import type { ClientInfo } from '@fleetmq/broker';
import type { AuthIdentity } from './identity.js';

/** The two refusals a provider may answer with (MQTT 5 CONNACK; 3.1.1 maps them to 4 and 5). */
export type RejectCode = typeof ReasonCode.BadUserNameOrPassword | typeof ReasonCode.NotAuthorized;

export type ProviderResult =
  | { readonly kind: 'accept'; readonly identity: AuthIdentity }
  /**
   * `reason` is a stable snake_case word for logs and metrics (`bad_password`,
   * `token_expired`, `client_id_mismatch`); it never contains a credential.
   */
  | { readonly kind: 'reject'; readonly reasonCode: RejectCode; readonly reason: string }
  | { readonly kind: 'skip' };

/**
 * One way of checking credentials. A provider answers `accept` (with an identity), `reject`
 * (these are its credentials and they are wrong, or not allowed for this client), or `skip`
 * (not its kind of credentials: the chain asks the next provider).
 */
export interface AuthProvider {
  readonly name: string;
  authenticate(client: ClientInfo): ProviderResult | Promise<ProviderResult>;
}

export const skip: ProviderResult = { kind: 'skip' };

export function accept(identity: AuthIdentity): ProviderResult {
  return { kind: 'accept', identity };
}

/** Wrong or unusable credentials: 5.0 CONNACK 0x86, 3.1.1 return code 4. */
export function badCredentials(reason: string): ProviderResult {
  return { kind: 'reject', reasonCode: ReasonCode.BadUserNameOrPassword, reason };
}

/** Good credentials, but not for this client (another client ID, a forbidden claim): 0x87, 3.1.1 rc 5. */
export function notAuthorized(reason: string): ProviderResult {
  return { kind: 'reject', reasonCode: ReasonCode.NotAuthorized, reason };
}
