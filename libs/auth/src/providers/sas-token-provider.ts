import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ClientInfo } from '@fleetmq/broker';
import { systemClock, type Clock } from '../clock.js';
import { accept, badCredentials, notAuthorized, skip, type AuthProvider, type ProviderResult } from '../provider.js';

export const SAS_PREFIX = 'SharedAccessSignature ';

/** A parsed `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]` token. */
export interface SasToken {
  /** `sr` exactly as it appears in the token (URL-encoded); the signature covers this text. */
  readonly rawResource: string;
  /** `sr` decoded. */
  readonly resource: string;
  readonly signature: Buffer;
  /** `se`: expiry, seconds since the epoch. */
  readonly expiry: number;
  /** `skn`: the name of a shared access policy, when the key is a policy's rather than the device's. */
  readonly keyName: string | undefined;
}

/** Parses a token; undefined when it is not well formed (a missing, repeated or unknown field). */
export function parseSasToken(text: string): SasToken | undefined {
  if (!text.startsWith(SAS_PREFIX)) return undefined;
  const fields = new Map<string, string>();
  for (const pair of text.slice(SAS_PREFIX.length).split('&')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) return undefined;
    const k = pair.slice(0, eq);
    if (!['sr', 'sig', 'se', 'skn'].includes(k) || fields.has(k)) return undefined;
    fields.set(k, pair.slice(eq + 1));
  }
  const rawResource = fields.get('sr');
  const sig = fields.get('sig');
  const se = fields.get('se');
  if (rawResource === undefined || sig === undefined || se === undefined || rawResource.length === 0) return undefined;
  if (!/^[0-9]{1,12}$/.test(se)) return undefined;
  const resource = decode(rawResource);
  const sigText = decode(sig);
  const skn = fields.get('skn');
  const keyName = skn === undefined ? undefined : decode(skn);
  if (resource === undefined || sigText === undefined || (skn !== undefined && keyName === undefined)) return undefined;
  if (!/^[A-Za-z0-9+/]{43}=$/.test(sigText)) return undefined; // base64 of 32 bytes
  return { rawResource, resource, signature: Buffer.from(sigText, 'base64'), expiry: Number(se), keyName };
}

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** HMAC-SHA256 over `urlencode(sr) + "\n" + se`, base64 (the Azure IoT Hub construction). */
export function signSas(encodedResource: string, expiry: number, key: Uint8Array): Buffer {
  return createHmac('sha256', key).update(`${encodedResource}\n${expiry}`).digest();
}

export interface CreateSasTokenOptions {
  /** The resource URI, unencoded (`myhub.azure-devices.net/devices/dev1`). */
  readonly resource: string;
  readonly key: Uint8Array;
  /** Seconds since the epoch. */
  readonly expiry: number;
  readonly keyName?: string;
}

/** Builds a token the way Azure's SDK samples do (tests, and a `fleetmq token` command). */
export function createSasToken(o: CreateSasTokenOptions): string {
  const sr = encodeURIComponent(o.resource);
  const sig = encodeURIComponent(signSas(sr, o.expiry, o.key).toString('base64'));
  return `${SAS_PREFIX}sr=${sr}&sig=${sig}&se=${o.expiry}${o.keyName !== undefined ? `&skn=${encodeURIComponent(o.keyName)}` : ''}`;
}

/** A signing key found for a token, and who the client is when it verifies. */
export interface SasKey {
  /** The key bytes (Azure keys are base64 text: pass `Buffer.from(text, 'base64')`). */
  readonly key: Uint8Array;
  /** The ACL user; default the client ID. */
  readonly username?: string;
  readonly groups?: readonly string[];
}

export interface SasKeyRequest {
  /** `sr`, decoded. */
  readonly resource: string;
  /** `skn`, when the token names a policy. */
  readonly keyName: string | undefined;
  readonly clientId: string;
  readonly username: string | undefined;
}

export interface SasTokenProviderOptions {
  readonly name?: string;
  /** The key for a token: per device (by client ID or resource) or per policy (`skn`); undefined when unknown. */
  readonly keyFor: (request: SasKeyRequest) => SasKey | undefined | Promise<SasKey | undefined>;
  /**
   * The resource a client's token must be for, e.g. `c => \`myhub/devices/${c.clientId}\``.
   * The token's `sr` must equal it or be a prefix of it ending at a `/` boundary (a policy
   * token for `myhub/devices` covers every device). Omitted: any `sr` the key verifies.
   */
  readonly resourceFor?: (client: ClientInfo) => string;
  /** Refuse tokens that expire further ahead than this, seconds. */
  readonly maxTtlSeconds?: number;
  readonly now?: Clock;
}

/**
 * Azure-style shared access signatures as the MQTT password. Not its client (skip): a
 * password that does not start with `SharedAccessSignature `.
 */
export class SasTokenProvider implements AuthProvider {
  readonly name: string;
  private readonly options: SasTokenProviderOptions;
  private readonly now: Clock;

  constructor(options: SasTokenProviderOptions) {
    this.name = options.name ?? 'sas-token';
    this.options = options;
    this.now = options.now ?? systemClock;
  }

  async authenticate(client: ClientInfo): Promise<ProviderResult> {
    if (client.password === undefined || client.password.length > 4096) return skip;
    const text = client.password.toString('utf8');
    if (!text.startsWith(SAS_PREFIX)) return skip;
    const token = parseSasToken(text);
    if (token === undefined) return badCredentials('malformed_token');
    const found = await this.options.keyFor({
      resource: token.resource,
      keyName: token.keyName,
      clientId: client.clientId,
      username: client.username,
    });
    if (found === undefined) return badCredentials('unknown_key');
    if (!signatureMatches(token, found.key)) return badCredentials('bad_signature');
    const nowMs = this.now();
    if (nowMs >= token.expiry * 1000) return badCredentials('token_expired');
    if (this.options.maxTtlSeconds !== undefined && token.expiry * 1000 - nowMs > this.options.maxTtlSeconds * 1000) {
      return badCredentials('token_ttl_too_long');
    }
    if (this.options.resourceFor !== undefined && !resourceCovers(token.resource, this.options.resourceFor(client))) {
      return notAuthorized('resource_mismatch');
    }
    return accept({
      provider: this.name,
      username: found.username ?? client.clientId,
      groups: found.groups ?? [],
      expiresAt: token.expiry * 1000,
    });
  }
}

/**
 * The signature covers `sr` as the signer encoded it; signers that put the resource in the
 * token unencoded but signed `encodeURIComponent(resource)` (Azure's samples all encode
 * both) are accepted too. Both candidates are computed and compared in constant time.
 */
function signatureMatches(token: SasToken, key: Uint8Array): boolean {
  const canonical = encodeURIComponent(token.resource);
  let ok = timingSafeEqual(signSas(token.rawResource, token.expiry, key), token.signature);
  if (canonical !== token.rawResource) ok = timingSafeEqual(signSas(canonical, token.expiry, key), token.signature) || ok;
  return ok;
}

export function resourceCovers(tokenResource: string, expected: string): boolean {
  if (tokenResource === expected) return true;
  const prefix = tokenResource.endsWith('/') ? tokenResource : `${tokenResource}/`;
  return expected.startsWith(prefix);
}
