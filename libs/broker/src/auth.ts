import type { ProtocolVersion } from '@fleetmq/protocol';

/** What a client presented in CONNECT, and where it came from. */
export interface ClientInfo {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly password: Buffer | undefined;
  readonly protocolVersion: ProtocolVersion;
  readonly transport: string;
  readonly listener: string;
  readonly remoteAddress: string;
}

export type AuthResult = { readonly ok: true } | { readonly ok: false; readonly reasonCode?: number };

/** The pluggable authentication hook; the security issue adds the provider chain. */
export interface Authenticator {
  authenticate(client: ClientInfo): AuthResult | Promise<AuthResult>;
}

/** Lets every client in: the local default mode, like Mosquitto with allow_anonymous true. */
export const allowAll: Authenticator = {
  authenticate: () => ({ ok: true }),
};
