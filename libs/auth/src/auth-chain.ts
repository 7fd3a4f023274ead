import { setTimeout as delay } from 'node:timers/promises';
import { ReasonCode } from '@fleetmq/protocol';
import { silentLog, type Authenticator, type BrokerLog, type ClientInfo } from '@fleetmq/broker';
import { FailureThrottle } from './failure-throttle.js';
import { anonymousIdentity, type AuthIdentity } from './identity.js';
import type { AuthProvider, ProviderResult } from './provider.js';

/**
 * What the chain answers. On success it carries the identity the ACL and the policy limits
 * need; on refusal an MQTT 5 CONNACK reason code (the channel maps it to 3.1.1 with
 * toV3ConnackCode) and a log word.
 */
export type AuthOutcome =
  | { readonly ok: true; readonly identity: AuthIdentity }
  | { readonly ok: false; readonly reasonCode: number; readonly reason: string };

/** The broker's Authenticator, with a result that says who the client is. */
export interface AuthChain extends Authenticator {
  authenticate(client: ClientInfo): Promise<AuthOutcome>;
  /** Counters, as `fleetmq_auth_attempts_total{result="accepted"|"rejected"|"throttled"|"error"}`. */
  readonly stats: AuthStats;
}

export interface AuthStats {
  accepted: number;
  rejected: number;
  throttled: number;
  error: number;
}

export const AUTH_ATTEMPTS_METRIC = 'fleetmq_auth_attempts_total';

export interface AuthChainOptions {
  /** Let in clients that present no username and no password. Off unless enabled. */
  readonly allowAnonymous: boolean;
  /** Per-source slowing of failed attempts; default a FailureThrottle with its defaults; false for none. */
  readonly throttle?: FailureThrottle | false;
  /** Extra wait before answering a refusal (slows one-connection guessing). Default 0. */
  readonly rejectDelayMs?: number;
  readonly log?: BrokerLog;
  /** Injectable wait (tests). */
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * The provider chain. Providers are asked in order; the first `accept` or `reject` decides,
 * `skip` asks the next one. When every provider skipped:
 *  - a client that presented no username and no password is anonymous: let in when
 *    `allowAnonymous`, else refused 0x87 (3.1.1 rc 5);
 *  - a client that presented credentials nobody recognised is refused 0x86 (3.1.1 rc 4),
 *    even with anonymous access on (a wrong username never degrades to anonymous).
 * A provider that throws (a key store down) refuses the client with 0x88 "Server unavailable";
 * the chain never throws. A source that failed too often is refused 0x9F "Connection rate
 * exceeded" before any provider runs. Logs carry the provider, a reason word, the client ID,
 * the source address and the username, never a password or token.
 */
export function createAuthChain(providers: readonly AuthProvider[], options: AuthChainOptions): AuthChain {
  const log = (options.log ?? silentLog).child({ component: 'auth' });
  const throttle = options.throttle === false ? undefined : (options.throttle ?? new FailureThrottle());
  const sleep = options.sleep ?? ((ms: number) => delay(ms));
  const rejectDelayMs = options.rejectDelayMs ?? 0;
  const stats: AuthStats = { accepted: 0, rejected: 0, throttled: 0, error: 0 };

  async function refuse(client: ClientInfo, reasonCode: number, reason: string, provider: string | undefined): Promise<AuthOutcome> {
    stats.rejected++;
    throttle?.recordFailure(client.remoteAddress);
    log.info({ ...fieldsOf(client), provider, reason, reasonCode }, 'auth_rejected');
    if (rejectDelayMs > 0) await sleep(rejectDelayMs);
    return { ok: false, reasonCode, reason };
  }

  async function authenticate(client: ClientInfo): Promise<AuthOutcome> {
    if (throttle !== undefined && !throttle.admit(client.remoteAddress)) {
      stats.throttled++;
      log.info({ ...fieldsOf(client), retryAfterMs: throttle.retryAfterMs(client.remoteAddress) }, 'auth_throttled');
      return { ok: false, reasonCode: ReasonCode.ConnectionRateExceeded, reason: 'auth_throttled' };
    }
    for (const provider of providers) {
      let result: ProviderResult;
      try {
        result = await provider.authenticate(client);
      } catch (err) {
        stats.error++;
        log.error({ ...fieldsOf(client), provider: provider.name, err: describeError(err, client) }, 'auth_provider_failed');
        return { ok: false, reasonCode: ReasonCode.ServerUnavailable, reason: 'provider_error' };
      }
      if (result.kind === 'skip') continue;
      if (result.kind === 'reject') return refuse(client, result.reasonCode, result.reason, provider.name);
      stats.accepted++;
      if (log.isLevelEnabled('debug')) {
        log.debug({ ...fieldsOf(client), provider: provider.name, identity: result.identity.username }, 'auth_accepted');
      }
      return { ok: true, identity: result.identity };
    }
    if (client.username === undefined && client.password === undefined) {
      if (options.allowAnonymous) {
        stats.accepted++;
        return { ok: true, identity: anonymousIdentity };
      }
      return refuse(client, ReasonCode.NotAuthorized, 'anonymous_not_allowed', undefined);
    }
    return refuse(client, ReasonCode.BadUserNameOrPassword, 'no_provider_accepted', undefined);
  }

  return {
    stats,
    authenticate: async (client) => {
      try {
        return await authenticate(client);
      } catch (err) {
        // only a bug gets here (a log or throttle failure); fail closed
        stats.error++;
        log.error({ clientId: client.clientId, err: describeError(err, client) }, 'auth_chain_failed');
        return { ok: false, reasonCode: ReasonCode.ServerUnavailable, reason: 'auth_error' };
      }
    },
  };
}

/** Log fields for a client: never the password; the username only when it does not look like a secret. */
function fieldsOf(client: ClientInfo): Record<string, unknown> {
  return {
    clientId: client.clientId,
    username: safeUsername(client),
    remoteAddress: client.remoteAddress,
    listener: client.listener,
  };
}

/** A compact JWS (its header is base64url JSON, so it starts with `eyJ`) or an Azure SAS. */
const LOOKS_LIKE_TOKEN = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$|^SharedAccessSignature /;

/** Some clients put the token in the username field; such usernames are not logged. */
export function safeUsername(client: Pick<ClientInfo, 'username' | 'password'>): string | undefined {
  const u = client.username;
  if (u === undefined) return undefined;
  if (u.length > 256 || LOOKS_LIKE_TOKEN.test(u)) return '[redacted]';
  if (client.password !== undefined && client.password.length > 0 && client.password.equals(Buffer.from(u, 'utf8'))) return '[redacted]';
  return u;
}

/** An error for a log line, with the client's password cut out should a provider have quoted it. */
function describeError(err: unknown, client: ClientInfo): { name: string; message: string } {
  const name = err instanceof Error ? err.name : typeof err;
  let message = err instanceof Error ? err.message : String(err);
  const secret = client.password?.toString('utf8');
  if (secret !== undefined && secret.length >= 4) message = message.split(secret).join('[redacted]');
  if (client.username !== undefined && safeUsername(client) === '[redacted]' && client.username.length >= 4) {
    message = message.split(client.username).join('[redacted]');
  }
  return { name, message: message.slice(0, 500) };
}
