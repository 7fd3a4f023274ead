import { createPublicKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, decodeJwt, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyOptions } from 'jose';
import type { ClientInfo } from '@fleetmq/broker';
import { systemClock, type Clock } from '../clock.js';
import { parseClaimAcl } from '../claim-acl.js';
import { accept, badCredentials, notAuthorized, skip, type AuthProvider, type ProviderResult } from '../provider.js';

export type JwtAlgorithm = 'HS256' | 'RS256' | 'ES256';

/** Where the verification key comes from; the algorithm follows from the key, never from the token. */
export type JwtKeySource =
  /** HS256 with a shared secret of at least 32 bytes (RFC 7518 3.2); a string is taken as UTF-8. */
  | { readonly secret: string | Uint8Array }
  /** RS256 (an RSA key) or ES256 (a P-256 key): a PEM public key, or a PEM certificate holding one. */
  | { readonly publicKeyPem: string }
  /** A JSON Web Key Set (the parsed contents of a JWKS file); the token's `kid`/`alg` pick the key. */
  | { readonly jwks: JSONWebKeySet; readonly algorithms?: readonly ('RS256' | 'ES256')[] };

export interface JwtProviderOptions {
  readonly name?: string;
  readonly key: JwtKeySource;
  /** Accepted `iss` values. When set, a token from another issuer is skipped (left to another provider). */
  readonly issuer?: string | readonly string[];
  /** Accepted `aud` values; when set the token must name one of them. */
  readonly audience?: string | readonly string[];
  /** Tokens without `exp` are refused unless this is false. Default true. */
  readonly requireExpiry?: boolean;
  /** Slack for `exp`/`nbf` against clock skew, seconds. Default 0. */
  readonly clockToleranceSeconds?: number;
  /**
   * When set, only CONNECTs with exactly this username are this provider's (e.g. `jwt`);
   * otherwise the username may be anything and is ignored.
   */
  readonly username?: string;
  /** Claim that names the ACL user (`%u`). Default `sub`; absent → the client counts as anonymous for the ACL file. */
  readonly usernameClaim?: string;
  /** Claim that carries the client ID (e.g. `client_id`); when present it must equal the CONNECT client ID. */
  readonly clientIdClaim?: string;
  /** Refuse tokens without the client ID claim. Default false. */
  readonly requireClientIdClaim?: boolean;
  /** Claim with the groups or roles (a string or an array of strings). Default `groups`. */
  readonly groupsClaim?: string;
  /** Claim with ACL rules `{pub, sub, all}`. Default `acl`. */
  readonly aclClaim?: string;
  /** Longest token considered, bytes. Default 8192. */
  readonly maxTokenBytes?: number;
  readonly now?: Clock;
}

type VerifyKey = Uint8Array | KeyObject | ReturnType<typeof createLocalJWKSet>;

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * JWT as the MQTT password (jose). Signature, `alg` (only the one the key allows), `exp`,
 * `nbf`, `iss` and `aud` are checked; then the optional client ID claim is bound to the
 * CONNECT client ID, and groups and ACL rules are read from claims.
 * Not its client (skip): no password, a password that is not a compact JWS, a username
 * other than the configured one, or (with `issuer` set) a token from another issuer.
 */
export class JwtProvider implements AuthProvider {
  readonly name: string;
  private readonly key: VerifyKey;
  private readonly algorithms: JwtAlgorithm[];
  private readonly issuers: readonly string[] | undefined;
  private readonly options: JwtProviderOptions;
  private readonly now: Clock;

  constructor(options: JwtProviderOptions) {
    this.name = options.name ?? 'jwt';
    this.options = options;
    this.now = options.now ?? systemClock;
    this.issuers = options.issuer === undefined ? undefined : typeof options.issuer === 'string' ? [options.issuer] : options.issuer;
    const source = options.key;
    if ('secret' in source) {
      const secret = typeof source.secret === 'string' ? Buffer.from(source.secret, 'utf8') : source.secret;
      if (secret.length < 32) throw new RangeError('JWT HS256 secret must be at least 32 bytes (RFC 7518 3.2)');
      this.key = secret;
      this.algorithms = ['HS256'];
    } else if ('publicKeyPem' in source) {
      const key = createPublicKey(source.publicKeyPem);
      this.key = key;
      this.algorithms = [algorithmFor(key)];
    } else {
      this.key = createLocalJWKSet(source.jwks);
      this.algorithms = [...(source.algorithms ?? ['RS256', 'ES256'])];
      if (this.algorithms.length === 0) throw new RangeError('JWKS algorithms must not be empty');
    }
  }

  async authenticate(client: ClientInfo): Promise<ProviderResult> {
    const o = this.options;
    if (client.password === undefined) return skip;
    if (o.username !== undefined && client.username !== o.username) return skip;
    if (client.password.length > (o.maxTokenBytes ?? 8192)) return skip;
    const token = client.password.toString('utf8');
    if (!COMPACT_JWS.test(token)) return skip;
    if (this.issuers !== undefined) {
      let iss: unknown;
      try {
        iss = decodeJwt(token).iss;
      } catch {
        return badCredentials('malformed_token');
      }
      if (typeof iss === 'string' && !this.issuers.includes(iss)) return skip;
    }

    let payload: JWTPayload;
    try {
      const verifyOptions: JWTVerifyOptions = {
        algorithms: this.algorithms,
        currentDate: new Date(this.now()),
        clockTolerance: o.clockToleranceSeconds ?? 0,
        requiredClaims: (o.requireExpiry ?? true) ? ['exp'] : [],
        ...(this.issuers !== undefined ? { issuer: [...this.issuers] } : {}),
        ...(o.audience !== undefined ? { audience: typeof o.audience === 'string' ? o.audience : [...o.audience] } : {}),
      };
      // jose's overloads split key and key-resolver; both are verification keys here
      payload =
        typeof this.key === 'function'
          ? (await jwtVerify(token, this.key, verifyOptions)).payload
          : (await jwtVerify(token, this.key, verifyOptions)).payload;
    } catch (err) {
      return badCredentials(reasonFor(err));
    }

    if (o.clientIdClaim !== undefined) {
      const claimed = payload[o.clientIdClaim];
      if (claimed === undefined) {
        if (o.requireClientIdClaim === true) return notAuthorized('client_id_claim_missing');
      } else if (claimed !== client.clientId) {
        return notAuthorized('client_id_mismatch');
      }
    }
    const acl = parseClaimAcl(payload[o.aclClaim ?? 'acl']);
    if (acl === 'invalid') return notAuthorized('bad_acl_claim');
    const user = payload[o.usernameClaim ?? 'sub'];
    return accept({
      provider: this.name,
      username: typeof user === 'string' && user.length > 0 ? user : undefined,
      groups: stringList(payload[o.groupsClaim ?? 'groups']),
      ...(acl !== undefined ? { acl } : {}),
      ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}),
    });
  }
}

function algorithmFor(key: KeyObject): JwtAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new RangeError(
    `JWT public key must be RSA (RS256) or EC P-256 (ES256), got ${key.asymmetricKeyType ?? 'unknown'}` +
      (key.asymmetricKeyDetails?.namedCurve !== undefined ? ` ${key.asymmetricKeyDetails.namedCurve}` : ''),
  );
}

function stringList(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

/** A log word for a jose failure; the token itself never appears. */
function reasonFor(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token_expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf':
        return 'token_not_yet_valid';
      case 'iss':
        return 'wrong_issuer';
      case 'aud':
        return 'wrong_audience';
      case 'exp':
        return err.reason === 'missing' ? 'token_without_expiry' : 'bad_expiry';
      default:
        return `bad_claim_${err.claim.replace(/[^a-z0-9_]/gi, '_').slice(0, 32)}`;
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad_signature';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm_not_allowed';
  if (err instanceof errors.JWKSNoMatchingKey) return 'unknown_key';
  if (err instanceof errors.JWKSMultipleMatchingKeys) return 'ambiguous_key';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'malformed_token';
  return 'invalid_token';
}
