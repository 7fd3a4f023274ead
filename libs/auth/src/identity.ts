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

/** Who a client is once a provider accepted it; the ACL and the policy limits key on this. */
export interface AuthIdentity {
  /** The provider that accepted the client: 'password-file', 'jwt', 'sas-token', 'device-token', 'anonymous', … */
  readonly provider: string;
  /**
   * The name the ACL file's `user` sections and `%u` refer to. `undefined` for anonymous
   * clients, which get the ACL file's rules before the first `user` line (as in Mosquitto).
   */
  readonly username: string | undefined;
  /** Groups or roles from the credential (JWT `groups`/`roles`), for per-group policy limits. */
  readonly groups: readonly string[];
  /** Rules carried by the credential, merged with the ACL file's. */
  readonly acl?: ClaimAcl;
  /** When the credential stops being valid (ms since the epoch): a token's `exp`/`se`. */
  readonly expiresAt?: number;
}

export const anonymousIdentity: AuthIdentity = { provider: 'anonymous', username: undefined, groups: [] };
