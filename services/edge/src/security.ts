import { createHash, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import {
  Acl,
  AclFileError,
  CertificateProvider,
  DeviceTokenProvider,
  FailureThrottle,
  JwtProvider,
  PasswordFileProvider,
  PolicyTable,
  SasTokenProvider,
  createAuthChain,
  parsePasswordFile,
  isPasswordHash,
  parsePasswordHash,
  type AuthProvider,
  type DeviceTokenRecord,
  type JwtKeySource,
  type ParsedPasswordFile,
  type SasKey,
} from '@fleetmq/auth';
import {
  allowAll,
  allowAllTopics,
  cachedAuthorization,
  type Authenticator,
  type Authorizer,
  type BrokerLog,
  type ClientAuthorization,
  type ClientIdentity,
  type ClientLimits,
  type LimitPolicy,
  type ListenerLimits,
} from '@fleetmq/broker';
import { ConfigError } from '@fleetmq/protocol';
import { FileWatcher } from '@fleetmq/transport';
import type { AuthConfig, AuthProviderKey, EdgeConfig, LimitsConfig } from './config.js';
import type { Logger } from './logger.js';

/** Auth file reloads, as `fleetmq_auth_reloads_total{result="success"|"failure"}`. */
export interface AuthReloadStats {
  /** A changed password file or acl_file put into force. */
  reloads: number;
  /** A changed file that could not be used (unreadable, malformed): the old rules stay. */
  reloadFailures: number;
}

/** What the broker takes from the `auth`, `limits`, `policies` and listener sections. */
export interface BrokerSecurity {
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  readonly limits: ClientLimits;
  /** Per listener, user, group or client ID (`policies`); absent when there are none. */
  readonly policy?: LimitPolicy;
  readonly listenerLimits: Readonly<Record<string, ListenerLimits>>;
  readonly usernameFromCertificate?: string;
  /** The password file and acl_file, re-read when they change or on `reload()`. */
  readonly authFiles: AuthFiles;
}

/**
 * Builds authentication (the provider chain), authorization (the ACL) and the per-client
 * limits from the config, reading every file it names once, at start. A file that cannot be
 * read or parsed is a ConfigError naming its key; secrets never appear in errors or logs.
 */
export function brokerSecurity(config: EdgeConfig, log: Logger): BrokerSecurity {
  const { auth, limits } = config;
  const brokerLog = log as unknown as BrokerLog;
  const passwords = auth.passwordFile === undefined ? undefined : new PasswordFileProvider(readPasswords(auth.passwordFile, 'auth.passwordFile', log));
  const byKey = authProviders(auth, passwords, log);
  const providers = [...byKey.values()];
  const throttle = auth.failureThrottle === false ? false : new FailureThrottle({ burst: auth.failureThrottle.burst, ratePerSecond: auth.failureThrottle.perSecond });
  if (providers.length === 0 && !auth.allowAnonymous) log.warn({}, 'auth_refuses_everyone');
  const nodeChain = authChain(providers, auth.allowAnonymous, throttle, brokerLog);
  // listeners with an auth section of their own get their own chain (the providers they name,
  // in the node chain's order); the others share the node's
  const perListener = new Map<string, Authenticator>();
  for (const l of config.listeners) {
    if (l.auth === undefined) continue;
    const keys = new Set(l.auth.providers ?? byKey.keys());
    const chosen = [...byKey].filter(([key]) => keys.has(key)).map(([, provider]) => provider);
    perListener.set(l.name, authChain(chosen, l.auth.allowAnonymous ?? auth.allowAnonymous, throttle, brokerLog));
    log.info({ listener: l.name, providers: chosen.map((p) => p.name), allowAnonymous: l.auth.allowAnonymous ?? auth.allowAnonymous }, 'listener_auth_configured');
  }
  const authenticator: Authenticator =
    perListener.size === 0 ? nodeChain : { authenticate: (client) => (perListener.get(client.listener) ?? nodeChain).authenticate(client) };
  const acl = auth.aclFile === undefined ? undefined : new ReloadableAcl(readAcl(auth.aclFile, auth.aclSubscribe, log));
  const authFiles = new AuthFiles(auth, passwords, acl, log);
  const clientLimits = toClientLimits(limits);
  const policy = config.policies.length === 0 ? undefined : policyTable(config, clientLimits);
  log.info(
    {
      providers: providers.map((p) => p.name),
      allowAnonymous: auth.allowAnonymous,
      aclFile: auth.aclFile ?? null,
      usernameFromCertificate: auth.usernameFromCertificate ?? null,
      limits: clientLimits,
      policies: config.policies.map((p, i) => p.name ?? `policies[${i}]`),
    },
    'security_configured',
  );
  const listenerLimits: Record<string, ListenerLimits> = {};
  for (const l of config.listeners) {
    if (l.maxConnections !== undefined || l.connectionRate !== undefined) listenerLimits[l.name] = { maxConnections: l.maxConnections, connectionRate: l.connectionRate };
  }
  return {
    authenticator,
    authorizer: authorizer(acl, auth.aclSubscribe),
    limits: clientLimits,
    ...(policy !== undefined ? { policy } : {}),
    listenerLimits,
    ...(auth.usernameFromCertificate !== undefined ? { usernameFromCertificate: auth.usernameFromCertificate } : {}),
    authFiles,
  };
}

function toClientLimits(limits: LimitsConfig): ClientLimits {
  return {
    maximumQoS: limits.maximumQoS,
    retain: limits.retain,
    maxPacketSize: limits.maxPacketSize,
    maxPayloadSize: limits.maxPayloadSize,
    publishRate: limits.publishRate,
    maxInflight: limits.maxInflight,
    maxQueued: limits.maxQueued,
  };
}

function policyTable(config: EdgeConfig, defaults: ClientLimits): PolicyTable {
  try {
    return new PolicyTable({ defaults, policies: config.policies, groups: config.groups });
  } catch (err) {
    // the schema keeps values in range; what is left is a limit unusable once merged
    throw new ConfigError('policies', (err as Error).message, 'fix that policy\'s limits', { cause: err });
  }
}

/**
 * The acl_file's rules, replaceable while clients are connected: a client's authorization
 * re-reads them (and forgets its cached answers) at its first check after a reload, so the
 * new rules apply from its next PUBLISH, SUBSCRIBE or delivery.
 */
class ReloadableAcl implements Authorizer {
  private generation = 0;

  constructor(private current: Acl) {}

  get acl(): Acl {
    return this.current;
  }

  replace(acl: Acl): void {
    this.current = acl;
    this.generation++;
  }

  forClient(identity: ClientIdentity | undefined, clientId: string): ClientAuthorization {
    let generation = this.generation;
    let inner = cachedAuthorization(this.current.forClient(identity, clientId));
    return {
      cached: true,
      check: (action, topic) => {
        if (generation !== this.generation) {
          generation = this.generation;
          inner = cachedAuthorization(this.current.forClient(identity, clientId));
        }
        return inner.check(action, topic);
      },
    };
  }
}

/**
 * The password file and the acl_file kept in force without a restart: re-read when they
 * change (a watch on their directories, debounced, with a periodic stat for file systems
 * without events) and on `reload()` (SIGHUP). A file that is unreadable or malformed (a line
 * that does not parse, no users at all) leaves the rules in force and logs
 * `auth_reload_failed`; a good one goes into force for the next CONNECT (passwords) or the
 * next check (ACL), with `auth_reloaded`. Connected clients stay connected.
 */
export class AuthFiles {
  readonly stats: AuthReloadStats = { reloads: 0, reloadFailures: 0 };
  private readonly digests = new Map<string, string>();
  private watcher: FileWatcher | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly auth: AuthConfig,
    private readonly passwords: PasswordFileProvider | undefined,
    private readonly acl: ReloadableAcl | undefined,
    private readonly log: Logger,
  ) {
    // what start read is in force: a watch event for an unchanged file changes nothing
    for (const path of this.files()) this.digests.set(path, digestOf(readFileSync(path)));
  }

  /** The files reloaded: the password file and the acl_file, those configured. */
  files(): string[] {
    return [...(this.passwords !== undefined ? [this.auth.passwordFile!] : []), ...(this.acl !== undefined ? [this.auth.aclFile!] : [])];
  }

  /** Watches the files until `stop()`; nothing to watch, nothing done. */
  async watch(options: { debounceMs?: number; pollMs?: number } = {}): Promise<void> {
    const files = this.files();
    if (files.length === 0 || this.watcher !== undefined) return;
    this.watcher = new FileWatcher(files, () => this.reload().then(() => undefined), {
      ...options,
      onWatchError: (dir, err) => this.log.warn({ dir, err: err.message }, 'auth_file_watch_failed'),
    });
    await this.watcher.start();
  }

  stop(): void {
    this.watcher?.stop();
    this.watcher = undefined;
  }

  /**
   * Re-reads every file now (SIGHUP); one reload at a time. Resolves true when none failed;
   * a file whose contents did not change is left as it is.
   */
  reload(): Promise<boolean> {
    const next = this.queue.then(() => this.reloadNow());
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async reloadNow(): Promise<boolean> {
    let ok = true;
    if (this.passwords !== undefined) {
      ok = (await this.reloadFile('auth.passwordFile', this.auth.passwordFile!, (text) => this.usePasswords(text))) && ok;
    }
    if (this.acl !== undefined) {
      ok = (await this.reloadFile('auth.aclFile', this.auth.aclFile!, (text) => this.useAcl(text))) && ok;
    }
    return ok;
  }

  private async reloadFile(key: string, path: string, use: (text: string) => Record<string, unknown>): Promise<boolean> {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      return this.failed(key, path, `cannot read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    }
    const digest = digestOf(bytes);
    if (digest === this.digests.get(path)) return true;
    let fields: Record<string, unknown>;
    try {
      fields = use(bytes.toString('utf8'));
    } catch (err) {
      return this.failed(key, path, (err as Error).message);
    }
    this.digests.set(path, digest);
    this.stats.reloads++;
    this.log.info({ key, file: path, ...fields }, 'auth_reloaded');
    return true;
  }

  private failed(key: string, path: string, reason: string): false {
    this.stats.reloadFailures++;
    this.log.error({ key, file: path, reason }, 'auth_reload_failed');
    return false;
  }

  /** Stricter than at start: a line that does not parse may be a file caught half-written. */
  private usePasswords(text: string): Record<string, unknown> {
    const file = parsePasswordFile(text);
    const problem = file.problems[0];
    if (problem !== undefined) throw new Error(`line ${problem.line}: ${problem.problem}`);
    if (file.users.size === 0) throw new Error('no users');
    this.passwords!.replace(file);
    return { users: file.users.size };
  }

  private useAcl(text: string): Record<string, unknown> {
    let acl: Acl;
    try {
      acl = Acl.parse(text, { subscribe: this.auth.aclSubscribe });
    } catch (err) {
      if (err instanceof AclFileError) throw new Error(err.message);
      throw err;
    }
    this.acl!.replace(acl);
    const { users, patterns, anonymous } = acl.file;
    return { users: users.size, patterns: patterns.length, anonymousRules: anonymous.length };
  }
}

function digestOf(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * With an acl_file: its rules plus the rules tokens carry. Without one: every topic, except
 * for a client whose token carries an ACL claim, which gets exactly its claim.
 */
function authorizer(acl: ReloadableAcl | undefined, subscribe: AuthConfig['aclSubscribe']): Authorizer {
  if (acl !== undefined) return acl;
  const claimsOnly = Acl.empty({ subscribe });
  return {
    forClient: (identity, clientId, info) =>
      identity?.acl !== undefined ? claimsOnly.forClient(identity, clientId) : allowAllTopics.forClient(identity, clientId, info),
  };
}

/** In the order they are asked; each skips credentials that are not its kind. */
/** The configured providers, in the chain's order, by their key in the `auth` section. */
function authProviders(auth: AuthConfig, passwords: PasswordFileProvider | undefined, log: Logger): Map<AuthProviderKey, AuthProvider> {
  const providers = new Map<AuthProviderKey, AuthProvider>();
  if (auth.usernameFromCertificate !== undefined) providers.set('usernameFromCertificate', new CertificateProvider());
  if (auth.deviceTokens !== undefined) {
    const tokens = readDeviceTokens(auth.deviceTokens.tokensFile, log);
    providers.set('deviceTokens', new DeviceTokenProvider({ username: auth.deviceTokens.username, tokenFor: (clientId) => tokens.get(clientId) }));
  }
  if (auth.sharedAccess !== undefined) providers.set('sharedAccess', sasProvider(auth.sharedAccess));
  if (auth.jwt !== undefined) providers.set('jwt', jwtProvider(auth.jwt));
  if (passwords !== undefined) providers.set('passwordFile', passwords);
  return providers;
}

/**
 * One chain of providers (and the anonymous rule); `allowAll` when there is nothing to check.
 * Every chain of the node shares one failure throttle: a source that fails on one listener is
 * slowed on all of them.
 */
function authChain(providers: readonly AuthProvider[], allowAnonymous: boolean, throttle: FailureThrottle | false, log: BrokerLog): Authenticator {
  if (providers.length === 0 && allowAnonymous) return allowAll;
  return createAuthChain(providers, { allowAnonymous, throttle, log });
}

function readText(path: string, key: string, hint: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(key, `cannot read ${path} (${code})`, hint, { cause: err });
  }
}

function readPasswords(path: string, key: string, log: Logger): ParsedPasswordFile {
  const file = parsePasswordFile(readText(path, key, 'create it with fleetmq passwd -c FILE USER (or mosquitto_passwd -c)'));
  for (const p of file.problems) log.warn({ file: path, line: p.line, username: p.username, problem: p.problem }, 'password_file_entry_ignored');
  if (file.users.size === 0) log.warn({ file: path, key }, 'password_file_empty');
  return file;
}

/**
 * A YAML (or JSON) map of client ID → token. IBM client IDs hold ':' (`d:org:type:device`),
 * which a password file cannot, hence a map. A value in `$6$`/`$7$` form (what
 * mosquitto_passwd and `fleetmq passwd` write after `user:`) is a hash; any other string is
 * the token itself, compared in constant time.
 */
function readDeviceTokens(path: string, log: Logger): Map<string, DeviceTokenRecord> {
  const key = 'auth.deviceTokens.tokensFile';
  const hint = 'write one "client-id: token-or-hash" per line (quote IDs with colons)';
  let map: unknown;
  try {
    map = parseYaml(readText(path, key, hint));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(key, `${path} is not YAML or JSON`, hint, { cause: err });
  }
  if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new ConfigError(key, `${path} is not a map of client ID to token`, hint);
  const tokens = new Map<string, DeviceTokenRecord>();
  let plain = 0;
  for (const [clientId, value] of Object.entries(map as Record<string, unknown>)) {
    if (typeof value !== 'string' || value === '') throw new ConfigError(`${key} ${JSON.stringify(clientId)}`, 'has no token', hint);
    const hash = value.startsWith('$') ? parsePasswordHash(value) : undefined;
    if (hash !== undefined && !isPasswordHash(hash)) {
      throw new ConfigError(`${key} ${JSON.stringify(clientId)}`, `is not a usable $6$/$7$ hash (${hash})`, 'copy the hash from a file fleetmq passwd wrote');
    }
    if (hash === undefined) plain++;
    tokens.set(clientId, hash !== undefined ? { hash } : { token: value });
  }
  if (plain > 0) log.warn({ file: path, plainTokens: plain }, 'device_tokens_not_hashed');
  return tokens;
}

function readAcl(path: string, subscribe: AuthConfig['aclSubscribe'], log: Logger): Acl {
  const text = readText(path, 'auth.aclFile', "give the path of a Mosquitto acl_file");
  try {
    const acl = Acl.parse(text, { subscribe });
    for (const w of acl.file.warnings) log.warn({ file: path, warning: w }, 'acl_file_warning');
    return acl;
  } catch (err) {
    if (err instanceof AclFileError) {
      throw new ConfigError('auth.aclFile', `${path}: ${err.message}`, "fix that line; the format is Mosquitto's acl_file (user, topic [read|write|readwrite|deny] TOPIC, pattern)", { cause: err });
    }
    throw err;
  }
}

function jwtProvider(jwt: NonNullable<AuthConfig['jwt']>): JwtProvider {
  let key: JwtKeySource;
  let keyName: string;
  if (jwt.secret !== undefined) {
    key = { secret: jwt.secret };
    keyName = 'auth.jwt.secret';
  } else if (jwt.secretFile !== undefined) {
    key = { secret: readText(jwt.secretFile, 'auth.jwt.secretFile', 'give the path of a file holding the HS256 secret').replace(/\r?\n$/, '') };
    keyName = 'auth.jwt.secretFile';
  } else if (jwt.publicKeyFile !== undefined) {
    keyName = 'auth.jwt.publicKeyFile';
    const pem = readText(jwt.publicKeyFile, keyName, 'give the path of a PEM public key (RSA for RS256, P-256 for ES256)');
    try {
      createPublicKey(pem);
    } catch (err) {
      throw new ConfigError(keyName, `${jwt.publicKeyFile} is not a PEM public key`, 'export the public key with openssl pkey -pubout', { cause: err });
    }
    key = { publicKeyPem: pem };
  } else {
    keyName = 'auth.jwt.jwksFile';
    const path = jwt.jwksFile!;
    let jwks: unknown;
    try {
      jwks = JSON.parse(readText(path, keyName, 'give the path of a JWKS JSON document'));
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(keyName, `${path} is not JSON`, 'give a JWKS document: { "keys": [ … ] }', { cause: err });
    }
    if (jwks === null || typeof jwks !== 'object' || !Array.isArray((jwks as { keys?: unknown }).keys)) {
      throw new ConfigError(keyName, `${path} has no "keys" array`, 'give a JWKS document: { "keys": [ … ] }');
    }
    key = { jwks: jwks as Extract<JwtKeySource, { jwks: unknown }>['jwks'] };
  }
  try {
    return new JwtProvider({
      key,
      usernameClaim: jwt.usernameClaim,
      groupsClaim: jwt.groupsClaim,
      aclClaim: jwt.aclClaim,
      requireClientIdClaim: jwt.requireClientIdClaim,
      requireExpiry: jwt.requireExpiry,
      clockToleranceSeconds: jwt.clockToleranceSeconds,
      ...(jwt.audience !== undefined ? { audience: jwt.audience } : {}),
      ...(jwt.issuer !== undefined ? { issuer: jwt.issuer } : {}),
      ...(jwt.username !== undefined ? { username: jwt.username } : {}),
      ...(jwt.clientIdClaim !== undefined ? { clientIdClaim: jwt.clientIdClaim } : {}),
    });
  } catch (err) {
    // the provider refuses weak secrets and unusable keys; its message holds no key material
    throw new ConfigError(keyName, (err as Error).message, 'use a random secret of at least 32 bytes (openssl rand -base64 48), or an RSA / P-256 key', { cause: err });
  }
}

function sasProvider(sas: NonNullable<AuthConfig['sharedAccess']>): SasTokenProvider {
  const devices = new Map<string, SasKey>();
  const policies = new Map<string, SasKey>();
  const addAll = (target: Map<string, SasKey>, entries: Record<string, unknown>, key: string): void => {
    for (const [name, value] of Object.entries(entries)) target.set(name, { key: decodeKey(value, `${key}.${name}`) });
  };
  if (sas.keysFile !== undefined) {
    const key = 'auth.sharedAccess.keysFile';
    let map: unknown;
    try {
      map = parseYaml(readText(sas.keysFile, key, 'give the path of a YAML or JSON map of client ID to base64 key'));
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(key, `${sas.keysFile} is not YAML or JSON`, 'write one "client-id: base64key" per line', { cause: err });
    }
    if (map === null || typeof map !== 'object' || Array.isArray(map)) {
      throw new ConfigError(key, `${sas.keysFile} is not a map of client ID to key`, 'write one "client-id: base64key" per line');
    }
    addAll(devices, map as Record<string, unknown>, key);
  }
  if (sas.keys !== undefined) addAll(devices, sas.keys, 'auth.sharedAccess.keys');
  if (sas.policies !== undefined) addAll(policies, sas.policies, 'auth.sharedAccess.policies');
  const resource = sas.resource;
  return new SasTokenProvider({
    keyFor: ({ keyName, clientId }) => (keyName === undefined ? devices.get(clientId) : policies.get(keyName)),
    ...(resource !== undefined ? { resourceFor: (c) => resource.split('%c').join(c.clientId) } : {}),
    ...(sas.maxTtlSeconds !== undefined ? { maxTtlSeconds: sas.maxTtlSeconds } : {}),
  });
}

/** A base64 key of at least 16 bytes (Azure's are 32); the key itself is never in the error. */
function decodeKey(value: unknown, key: string): Buffer {
  const bytes = typeof value === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(value.trim()) ? Buffer.from(value.trim(), 'base64') : undefined;
  if (bytes === undefined || bytes.length < 16) {
    throw new ConfigError(key, 'is not a base64 key of at least 16 bytes', 'generate one with openssl rand -base64 32');
  }
  return bytes;
}
