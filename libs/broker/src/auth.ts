import type { ProtocolVersion } from '@fleetmq/protocol';
import type { ClientCertificate, ConnectionInfo } from './channel.js';

/** What a client presented in CONNECT, and where it came from. */
export interface ClientInfo {
  readonly clientId: string;
  /**
   * The CONNECT username, or the subject attribute of the verified client certificate when the
   * broker takes the username from certificates (`usernameFromCertificate`).
   */
  readonly username: string | undefined;
  readonly password: Buffer | undefined;
  readonly protocolVersion: ProtocolVersion;
  readonly transport: string;
  readonly listener: string;
  readonly remoteAddress: string;
  /** The verified TLS client certificate (mutual TLS), when there was one. */
  readonly clientCertificate?: ClientCertificate;
  /** True when `username` was taken from the verified client certificate, not from CONNECT. */
  readonly usernameFromCertificate?: boolean;
}

/**
 * ACL rules carried by a credential (a JWT claim), in the shape EMQX uses:
 * `{ "pub": [filters], "sub": [filters], "all": [filters] }`. `pub` grants publish,
 * `sub` grants subscribe and delivery, `all` grants both. Filters are MQTT topic filters,
 * taken literally (no `%c`/`%u` substitution: the issuer writes the device's own topics).
 */
export interface ClaimAcl {
  readonly pub: readonly string[];
  readonly sub: readonly string[];
  readonly all: readonly string[];
}

/** Who a client is once authentication accepted it; authorization and policy limits key on this. */
export interface ClientIdentity {
  /** What accepted the client: 'password-file', 'jwt', 'sas-token', 'device-token', 'certificate', 'anonymous', … */
  readonly provider: string;
  /**
   * The name ACL `user` sections and `%u` refer to. `undefined` for anonymous clients,
   * which get an ACL file's rules before the first `user` line (as in Mosquitto).
   */
  readonly username: string | undefined;
  /** Groups or roles from the credential (JWT `groups`/`roles`), for per-group policy limits. */
  readonly groups: readonly string[];
  /** Rules carried by the credential, merged with the ACL file's. */
  readonly acl?: ClaimAcl;
  /** When the credential stops being valid (ms since the epoch): a token's `exp`/`se`. */
  readonly expiresAt?: number;
}

/**
 * The answer of an Authenticator. Refusals carry an MQTT 5 CONNACK reason code (default
 * 0x87; the channel maps it to a 3.x return code) and a log word that never holds a secret.
 */
export type AuthResult =
  | { readonly ok: true; readonly identity?: ClientIdentity }
  | { readonly ok: false; readonly reasonCode?: number; readonly reason?: string };

/** The pluggable authentication hook (`@fleetmq/auth` createAuthChain is the provider chain). */
export interface Authenticator {
  authenticate(client: ClientInfo): AuthResult | Promise<AuthResult>;
}

/** Lets every client in: the local default mode, like Mosquitto with allow_anonymous true. */
export const allowAll: Authenticator = {
  authenticate: () => ({ ok: true }),
};

/**
 * `publish`: may the client PUBLISH to this topic name (and is its will allowed)?
 * `subscribe`: may it SUBSCRIBE with this filter (`$share/{group}/{filter}` included)?
 * `read`: may a message on this topic name be delivered to it (retained messages included)?
 */
export type AuthzAction = 'publish' | 'subscribe' | 'read';

/** One client's permissions, built once after CONNECT and asked per packet: keep `check` cheap. */
export interface ClientAuthorization {
  check(action: AuthzAction, topic: string): boolean;
  /** It caches its own answers (and forgets them when its rules are reloaded): not wrapped again. */
  readonly cached?: boolean;
}

/**
 * The pluggable authorization hook (`@fleetmq/auth` Acl implements it). Whatever it answers,
 * no client may publish to a reserved topic ({@link isServerReservedTopic}).
 */
export interface Authorizer {
  forClient(identity: ClientIdentity | undefined, clientId: string, info: ConnectionInfo): ClientAuthorization;
}

const allowEverything: ClientAuthorization = { check: () => true };

/** Allows every topic (but reserved ones): the default, as Mosquitto without an acl_file. */
export const allowAllTopics: Authorizer = {
  forClient: () => allowEverything,
};

/**
 * Topics no client publishes to, whatever the authorizer says: `$SYS…` belongs to the broker
 * and `$share…` is only a subscription prefix. Stricter than Mosquitto (and `@fleetmq/auth`
 * isReservedTopic, which follows it): no exception for a bridge's
 * `$SYS/broker/connection/<id>/state`, since FleetMQ has no bridges.
 */
export function isServerReservedTopic(topic: string): boolean {
  return topic.startsWith('$SYS') || topic.startsWith('$share');
}

/** Answers remembered per client, per action, at most this many topics each. */
export const AUTHZ_CACHE_SIZE = 64;

/**
 * Wraps a client's authorization with a small cache per action: a device publishes to and
 * receives on a handful of topics, so most checks are one Map lookup. Bounded: when full,
 * the oldest answer is forgotten. The allow-all authorization is returned as it is.
 */
export function cachedAuthorization(inner: ClientAuthorization, size = AUTHZ_CACHE_SIZE): ClientAuthorization {
  if (inner === allowEverything || inner.cached === true) return inner;
  const caches: Record<AuthzAction, Map<string, boolean> | undefined> = { publish: undefined, subscribe: undefined, read: undefined };
  return {
    cached: true,
    check(action, topic) {
      let cache = caches[action];
      if (cache === undefined) cache = caches[action] = new Map();
      const known = cache.get(topic);
      if (known !== undefined) return known;
      const answer = inner.check(action, topic);
      if (cache.size >= size) cache.delete(cache.keys().next().value!);
      cache.set(topic, answer);
      return answer;
    },
  };
}
