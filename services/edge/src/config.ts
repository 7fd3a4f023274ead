import { readFileSync } from 'node:fs';
import os from 'node:os';
import { closest as closestMatch, distance } from 'fastest-levenshtein';
import { parse as parseYaml } from 'yaml';
import * as z from 'zod';
import { ConfigError } from '@fleetmq/protocol';
import { defaultBrokerOptions } from '@fleetmq/broker';
import { bridgesSchema, redactBridge } from './bridge-config.js';
import { isGlob } from '@fleetmq/auth';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const LISTENER_TYPES = ['tcp', 'ws', 'tls', 'wss'] as const;
/** Other names for TLS that configs from other brokers use: named so the error can say so. */
const TLS_ALIASES = ['ssl', 'mqtts'];
const TLS_VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
/** The authentication providers of the `auth` section, by their key there. */
export const AUTH_PROVIDERS = ['usernameFromCertificate', 'deviceTokens', 'sharedAccess', 'jwt', 'passwordFile'] as const;
export type AuthProviderKey = (typeof AUTH_PROVIDERS)[number];

const port = z.number().int().min(0).max(65535);
const qos = z.union([z.literal(0), z.literal(1), z.literal(2)]);
/** A token bucket: events per second, and how many may come at once (default perSecond rounded up). */
const rateSchema = z.strictObject({
  perSecond: z.number().positive(),
  burst: z.number().int().min(1).optional(),
});

const tlsSchema = z.strictObject({
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  /** CA bundle for client certificates (mutual TLS). */
  caFile: z.string().min(1).optional(),
  crlFile: z.string().min(1).optional(),
  minVersion: z.enum(TLS_VERSIONS).default('TLSv1.2'),
  maxVersion: z.enum(TLS_VERSIONS).default('TLSv1.3'),
  ciphers: z.string().min(1).optional(),
  alpnProtocols: z.array(z.string().min(1)).optional(),
  clientCertificate: z.enum(['none', 'optional', 'required']).default('none'),
});

const listenerSchema = z
  .strictObject({
    type: z.enum(LISTENER_TYPES),
    name: z.string().min(1).optional(),
    host: z.string().min(1).default('127.0.0.1'),
    port,
    path: z.string().startsWith('/').default('/mqtt'),
    /** A PROXY protocol v1/v2 header (HAProxy, AWS NLB) precedes MQTT: tcp and tls listeners. */
    proxyProtocol: z.boolean().default(false),
    tls: tlsSchema.optional(),
    /** Connections open at once; over it a CONNECT gets 0x97 Quota exceeded (3.x: 3). */
    maxConnections: z.number().int().min(1).optional(),
    /** New connections per second; over it a CONNECT gets 0x9F Connection rate exceeded (3.x: 3). */
    connectionRate: rateSchema.optional(),
    /**
     * This listener's authentication: which of the providers configured in `auth` it uses (in
     * the chain's order) and whether it lets anonymous clients in; absent: the `auth` section's.
     */
    auth: z
      .strictObject({
        providers: z.array(z.enum(AUTH_PROVIDERS)).optional(),
        allowAnonymous: z.boolean().optional(),
      })
      .optional(),
  })
  .superRefine((l, ctx) => {
    const secure = l.type === 'tls' || l.type === 'wss';
    if (secure && l.tls === undefined) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: `a ${l.type} listener needs tls.certFile and tls.keyFile` });
    }
    if (!secure && l.tls !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: `a ${l.type} listener does not take tls settings` });
    }
    if (l.proxyProtocol && l.type === 'wss') {
      // the header would have to come before the TLS handshake of an HTTPS server: terminate
      // TLS at the load balancer and forward to a ws listener instead
      ctx.addIssue({ code: 'custom', path: ['proxyProtocol'], message: 'PROXY protocol is for tcp, tls and ws listeners' });
    }
  });

const d = defaultBrokerOptions;
const mqttSchema = z.strictObject({
  maxPacketSize: z.number().int().min(64).max(268_435_460).default(d.maxPacketSize),
  receiveMaximum: z.number().int().min(1).max(65535).default(d.receiveMaximum),
  maxQueuedMessages: z.number().int().min(1).default(d.maxQueuedMessages),
  queueDropPolicy: z.enum(['drop-oldest', 'drop-newest']).default(d.queueDropPolicy),
  topicAliasMaximum: z.number().int().min(0).max(65535).default(d.topicAliasMaximum),
  maxKeepAlive: z.number().int().min(1).max(65535).default(d.maxKeepAlive),
  maxSessionExpiryInterval: z.number().int().min(0).max(0xffffffff).default(d.maxSessionExpiryInterval),
  retainAvailable: z.boolean().default(d.retainAvailable),
  maximumQoS: qos.default(d.maximumQoS),
  wildcardSubscriptionAvailable: z.boolean().default(d.wildcardSubscriptionAvailable),
  subscriptionIdentifierAvailable: z.boolean().default(d.subscriptionIdentifierAvailable),
  sharedSubscriptionAvailable: z.boolean().default(d.sharedSubscriptionAvailable),
  maxClientIdLength: z.number().int().min(23).max(65535).default(d.maxClientIdLength),
  connectTimeout: z.number().int().min(100).default(10_000),
  outputBufferLimit: z.number().int().min(65_536).default(4 * 1024 * 1024),
  slowConsumerTimeout: z.number().int().min(100).default(30_000),
});

const nonEmpty = z.string().min(1);
const oneOrMore = z.union([nonEmpty, z.array(nonEmpty).min(1)]);
const JWT_KEYS = ['secret', 'secretFile', 'publicKeyFile', 'jwksFile'] as const;

const authSchema = z.strictObject({
  /**
   * Clients with no username and no password. Default: true when no provider is configured
   * (the local default), false as soon as one is.
   */
  allowAnonymous: z.boolean().optional(),
  /** A Mosquitto password file (mosquitto_passwd or `fleetmq passwd`). */
  passwordFile: nonEmpty.optional(),
  /** Signed tokens as the MQTT password: exactly one key source. */
  jwt: z
    .strictObject({
      /** HS256 shared secret, at least 32 bytes; better given as FLEETMQ_AUTH__JWT__SECRET or secretFile. */
      secret: nonEmpty.optional(),
      secretFile: nonEmpty.optional(),
      /** PEM public key: RS256 (RSA) or ES256 (P-256), decided by the key. */
      publicKeyFile: nonEmpty.optional(),
      /** A JWKS document (RS256, ES256), read at start. */
      jwksFile: nonEmpty.optional(),
      audience: oneOrMore.optional(),
      issuer: oneOrMore.optional(),
      /** Only tokens sent with this CONNECT username; default any username. */
      username: nonEmpty.optional(),
      usernameClaim: nonEmpty.default('sub'),
      groupsClaim: nonEmpty.default('groups'),
      /** Claim that must equal the client ID when present. */
      clientIdClaim: nonEmpty.optional(),
      requireClientIdClaim: z.boolean().default(false),
      /** Claim with ACL rules `{ pub, sub, all }`. */
      aclClaim: nonEmpty.default('acl'),
      requireExpiry: z.boolean().default(true),
      clockToleranceSeconds: z.number().int().min(0).max(3600).default(0),
    })
    .superRefine((j, ctx) => {
      const given = JWT_KEYS.filter((k) => j[k] !== undefined);
      if (given.length !== 1) {
        ctx.addIssue({ code: 'custom', path: [], message: given.length === 0 ? 'no key given' : `${given.join(' and ')} given together` });
      }
      if (j.requireClientIdClaim && j.clientIdClaim === undefined) {
        ctx.addIssue({ code: 'custom', path: ['requireClientIdClaim'], message: 'needs clientIdClaim' });
      }
    })
    .optional(),
  /** Azure IoT Hub style shared access signatures (`SharedAccessSignature sr=…&sig=…&se=…`) as the password. */
  sharedAccess: z
    .strictObject({
      /** Per-device keys: client ID → base64 key. */
      keys: z.record(z.string(), nonEmpty).optional(),
      /** The same map in a YAML or JSON file. */
      keysFile: nonEmpty.optional(),
      /** Policy keys for tokens with `skn=<policy>`: policy name → base64 key. */
      policies: z.record(z.string(), nonEmpty).optional(),
      /** The resource a client's token must cover; `%c` is the client ID. Absent: any resource its key verifies. */
      resource: nonEmpty.optional(),
      maxTtlSeconds: z.number().int().min(1).optional(),
    })
    .superRefine((a, ctx) => {
      if (a.keys === undefined && a.keysFile === undefined && a.policies === undefined) {
        ctx.addIssue({ code: 'custom', path: [], message: 'no keys given' });
      }
    })
    .optional(),
  /** IBM Watson IoT style per-device tokens: username `use-token-auth`, the token as the password. */
  deviceTokens: z
    .strictObject({
      /** YAML map of client ID → token, or its $7$ hash as `fleetmq passwd` writes it. */
      tokensFile: nonEmpty,
      username: nonEmpty.default('use-token-auth'),
    })
    .optional(),
  /** A Mosquitto acl_file; absent: every topic is allowed (but $SYS and $share for publishing). */
  aclFile: nonEmpty.optional(),
  /** `covered`: a SUBSCRIBE needs a read rule covering the filter; `mosquitto`: every filter is granted, delivery is checked. */
  aclSubscribe: z.enum(['covered', 'mosquitto']).default('covered'),
  /** A verified client certificate's subject attribute (CN, serialNumber, …) becomes the username and authenticates the client. */
  usernameFromCertificate: z.string().regex(/^[A-Za-z][A-Za-z0-9.]*$/).optional(),
  /**
   * Re-read passwordFile and aclFile when they change (a watch on their directories and a
   * stat every 5 s); false: only on SIGHUP. Either way a bad file keeps the rules in force.
   */
  watchFiles: z.boolean().default(true),
  /** Failed attempts per source address before CONNACK 0x9F; false: not throttled. */
  failureThrottle: z
    .union([z.literal(false), z.strictObject({ burst: z.number().int().min(1).default(10), perSecond: z.number().positive().default(0.2) })])
    .default({ burst: 10, perSecond: 0.2 }),
});

const limitsShape = {
  /** Capped by mqtt.maximumQoS (the lower of the two applies). */
  maximumQoS: qos,
  retain: z.enum(['allowed', 'stripped']),
  /** Bytes per packet from the client; capped by mqtt.maxPacketSize. */
  maxPacketSize: z.number().int().min(64),
  /** Bytes of application payload per message; absent: only mqtt.maxPacketSize. */
  maxPayloadSize: z.number().int().min(0),
  /** PUBLISH packets per client: a token bucket. */
  publishRate: rateSchema,
  /** QoS 1/2 messages in flight each way; caps the Receive Maximum (mqtt.receiveMaximum). */
  maxInflight: z.number().int().min(1).max(65535),
  /** Messages in the session's queue (mqtt.maxQueuedMessages for everyone else). */
  maxQueued: z.number().int().min(0),
};

const limitsSchema = z.strictObject({
  ...limitsShape,
  maximumQoS: qos.default(2),
  retain: limitsShape.retain.default('allowed'),
  maxPacketSize: limitsShape.maxPacketSize.optional(),
  maxPayloadSize: limitsShape.maxPayloadSize.optional(),
  publishRate: rateSchema.optional(),
  maxInflight: limitsShape.maxInflight.optional(),
  maxQueued: limitsShape.maxQueued.optional(),
});

const globList = z.array(z.string().min(1)).min(1);
/** Limits for the clients a policy matches; the first matching policy's keys replace `limits`' keys. */
const policySchema = z.strictObject({
  name: z.string().min(1).optional(),
  match: z
    .strictObject({ listeners: globList.optional(), users: globList.optional(), groups: globList.optional(), clientIds: globList.optional() })
    .refine((m) => Object.values(m).some((v) => v !== undefined), 'give listeners, users, groups or clientIds'),
  limits: z.strictObject(limitsShape).partial(),
});

/** A list given as YAML sequence or as one comma-separated string (environment variables). */
const stringList = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : v),
  z.array(z.string().min(1)).min(1),
);

const clusterSchema = z.strictObject({
  /** NATS carries publishes between nodes; absent: the in-process bus (one node alone). */
  nats: z
    .strictObject({
      servers: stringList,
      /** Milliseconds between reconnect attempts (with jitter). */
      reconnectTimeWait: z.number().int().min(10).default(1000),
    })
    .optional(),
  /** Redis says which node owns each client ID; absent: each node owns what connects to it. */
  redis: z
    .strictObject({
      url: z.string().regex(/^rediss?:\/\//),
      keyPrefix: z.string().default('fleetmq:'),
      /**
       * Milliseconds a node's heartbeat keeps it live (it beats every third of this). When it
       * lapses, live nodes adopt the dead node's sessions and publish its clients' wills.
       */
      nodeTtl: z.number().int().min(300).default(10_000),
    })
    .optional(),
});

const dynamodbSchema = z.strictObject({
  /** Endpoint URL (DynamoDB Local, dynalite); absent: the AWS endpoint of the region. */
  endpoint: z.url().optional(),
  region: z.string().min(1).default('us-east-1'),
  tablePrefix: z.string().regex(/^[A-Za-z0-9_.-]*$/).default('fleetmq-'),
  /** Create missing tables at start (development); production creates them with `fleetmq dynamo create-tables` or infra. */
  createTables: z.boolean().default(false),
});

/** The ops HTTP server: /healthz, /readyz, /metrics and the admin API (services/edge/src/ops). */
const opsSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    host: z.string().min(1).default('127.0.0.1'),
    port: port.default(8081),
    /** Bearer token of the admin API; absent (and no adminTokenFile): the admin API answers 404. */
    adminToken: z.string().min(16).optional(),
    /** A file whose first line is the admin token (a Kubernetes or Docker secret). */
    adminTokenFile: nonEmpty.optional(),
  })
  .superRefine((o, ctx) => {
    if (o.adminToken !== undefined && o.adminTokenFile !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['adminToken'], message: 'adminToken and adminTokenFile given together' });
    }
  });

const configSchema = z.strictObject({
  nodeId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .default(() => `${os.hostname()}-${process.pid}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64)),
  listeners: z.array(listenerSchema).min(1).default([{ type: 'tcp', host: '127.0.0.1', port: 1883, path: '/mqtt', proxyProtocol: false }]),
  log: z.strictObject({ level: z.enum(LOG_LEVELS).default('info') }).default({ level: 'info' }),
  mqtt: mqttSchema.default(() => mqttSchema.parse({})),
  auth: authSchema.default(() => authSchema.parse({})),
  limits: limitsSchema.default(() => limitsSchema.parse({})),
  /** Limits per listener, user, group or client ID, merged over `limits`: the first policy that matches a client applies. */
  policies: z.array(policySchema).default([]),
  /** Group name → usernames, for policies matched by group (tokens may also carry groups). */
  groups: z.record(z.string().min(1), z.array(z.string().min(1))).default({}),
  cluster: clusterSchema.default({}),
  drain: z
    .strictObject({
      /** Milliseconds a stopping node (SIGTERM) may take to hand over and disconnect before it exits anyway. */
      gracePeriod: z.number().int().min(0).default(25_000),
      /**
       * Where MQTT 5 clients should reconnect (a load balancer's name, `host:port`): sent as the
       * Server Reference of DISCONNECT 0x9C Use another server instead of 0x8B Server shutting down.
       */
      serverReference: z.string().min(1).optional(),
    })
    .default({ gracePeriod: 25_000 }),
  /** DynamoDB keeps retained messages (and, later, sessions and queues); absent: in-process. */
  dynamodb: dynamodbSchema.optional(),
  /** Bridges to other MQTT brokers (Mosquitto `connection` sections); in a cluster each runs on one node. */
  bridges: bridgesSchema,
  ops: opsSchema.default(() => opsSchema.parse({})),
});

type ParsedConfig = z.output<typeof configSchema>;
/** A token bucket with its burst resolved. */
export interface RateConfig {
  readonly perSecond: number;
  readonly burst: number;
}
export type ListenerConfig = Omit<ParsedConfig['listeners'][number], 'name' | 'connectionRate'> & {
  readonly name: string;
  readonly connectionRate?: RateConfig | undefined;
};
export type AuthConfig = Omit<ParsedConfig['auth'], 'allowAnonymous'> & { readonly allowAnonymous: boolean };
export type LimitsConfig = Omit<ParsedConfig['limits'], 'publishRate'> & { readonly publishRate?: RateConfig | undefined };
type ParsedPolicy = ParsedConfig['policies'][number];
export type PolicyConfig = Omit<ParsedPolicy, 'limits'> & {
  readonly limits: Omit<ParsedPolicy['limits'], 'publishRate'> & { readonly publishRate?: RateConfig | undefined };
};
export type EdgeConfig = Omit<ParsedConfig, 'listeners' | 'auth' | 'limits' | 'policies'> & {
  readonly listeners: readonly ListenerConfig[];
  readonly auth: AuthConfig;
  readonly limits: LimitsConfig;
  readonly policies: readonly PolicyConfig[];
};

/** True when any way of authenticating beyond anonymous access is configured. */
export function hasAuthProviders(auth: ParsedConfig['auth']): boolean {
  return (
    auth.passwordFile !== undefined ||
    auth.jwt !== undefined ||
    auth.sharedAccess !== undefined ||
    auth.deviceTokens !== undefined ||
    auth.usernameFromCertificate !== undefined
  );
}

/** Hints for keys whose valid values a message alone does not make obvious. */
const HINTS: Record<string, string> = {
  'listeners.type': `use one of ${LISTENER_TYPES.join(', ')}`,
  'listeners.tls': 'give tls: { certFile, keyFile } for tls and wss listeners only',
  'listeners.tls.minVersion': `use one of ${TLS_VERSIONS.join(', ')}`,
  'listeners.tls.maxVersion': `use one of ${TLS_VERSIONS.join(', ')}`,
  'listeners.tls.clientCertificate': 'use none, optional or required',
  'listeners.proxyProtocol': 'remove it from wss listeners (terminate TLS at the load balancer and forward to a ws listener with proxyProtocol)',
  'log.level': `use one of ${LOG_LEVELS.join(', ')}`,
  'mqtt.queueDropPolicy': 'use drop-oldest or drop-newest',
  'mqtt.maximumQoS': 'use 0, 1 or 2',
  'auth.jwt': `give exactly one of ${JWT_KEYS.map((k) => `jwt.${k}`).join(', ')}`,
  'auth.jwt.requireClientIdClaim': 'set jwt.clientIdClaim (e.g. client_id) or remove requireClientIdClaim',
  'auth.sharedAccess': 'give sharedAccess.keys (client ID: base64 key), sharedAccess.keysFile or sharedAccess.policies',
  'auth.deviceTokens.tokensFile': 'give a YAML file of "client-id: token-or-$7$-hash" lines',
  'auth.aclSubscribe': 'use covered or mosquitto',
  'auth.usernameFromCertificate': 'use a subject attribute name such as CN or serialNumber',
  'auth.failureThrottle': 'use false, or { burst: 10, perSecond: 0.2 }',
  'limits.maximumQoS': 'use 0, 1 or 2',
  'limits.retain': 'use allowed or stripped',
  'limits.maxPayloadSize': 'give a number of bytes such as 131072, or remove the key for no limit',
  'limits.publishRate.perSecond': 'give PUBLISH packets per second per client, e.g. 10 (fractions allowed)',
  'limits.publishRate.burst': 'give a whole number of packets >= 1, or remove it to use perSecond rounded up',
  'limits.maxInflight': 'give a number of messages from 1 to 65535, or remove it to use mqtt.receiveMaximum',
  'limits.maxQueued': 'give a number of messages >= 0, or remove it to use mqtt.maxQueuedMessages',
  'limits.maxPacketSize': 'give a number of bytes >= 64, or remove it to use mqtt.maxPacketSize',
  policies: 'give a list of { match: { listeners, users, groups, clientIds }, limits: { … } }',
  'policies.match': 'give listeners, users, groups or clientIds: lists of names (globs with * and ?)',
  'policies.limits.maximumQoS': 'use 0, 1 or 2',
  'policies.limits.retain': 'use allowed or stripped',
  'policies.limits.publishRate.perSecond': 'give PUBLISH packets per second per client, e.g. 10 (fractions allowed)',
  'listeners.maxConnections': 'give a whole number of connections >= 1, or remove it for no limit',
  'listeners.connectionRate.perSecond': 'give new connections per second, e.g. 100 (fractions allowed)',
  'listeners.connectionRate.burst': 'give a whole number >= 1, or remove it to use perSecond rounded up',
  groups: 'give a map of group name to a list of usernames',
  nodeId: 'use 1-64 characters from A-Z a-z 0-9 . _ -',
  'cluster.nats.servers': 'give NATS URLs, e.g. [nats://nats-1:4222, nats://nats-2:4222]',
  'cluster.redis.url': 'give a URL such as redis://redis:6379 (rediss:// for TLS)',
  'dynamodb.endpoint': 'give a URL such as http://localhost:8000, or remove the key to use AWS',
  'dynamodb.tablePrefix': 'use letters, digits, _ . -',
  'bridges.topics': 'write Mosquitto\'s "pattern [in|out|both [qos [local-prefix remote-prefix]]]" or { pattern, direction, qos, localPrefix, remotePrefix }; see "Bridges to other brokers" in the README',
  'bridges.addresses': 'give host[:port] (default port 1883), several separated by spaces or as a list',
  'bridges.protocolVersion': 'use 3, 4, 5 (or mqttv31, mqttv311, mqttv50)',
  'ops.port': 'give a TCP port for /healthz, /readyz, /metrics and the admin API (0: any free port)',
  'ops.adminToken': 'give a random token of at least 16 characters (openssl rand -hex 32), or adminTokenFile, not both',
};

export interface LoadOptions {
  /** Path of a YAML file; FLEETMQ_CONFIG when absent. */
  readonly file?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * The effective config: YAML file, then environment overrides, then validation. Every
 * failure is a ConfigError that names the key, the bad value and the fix.
 */
export function loadConfig(options: LoadOptions = {}): EdgeConfig {
  const env = options.env ?? process.env;
  const file = options.file ?? env.FLEETMQ_CONFIG;
  const raw = file === undefined ? {} : readConfigFile(file);
  return parseConfig(applyEnv(raw, env), file ?? 'config');
}

/** Validates an already-read config object (file contents plus overrides). */
export function parseConfig(raw: unknown, source = 'config'): EdgeConfig {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError('(root)', `${source} must be a YAML mapping of keys to values`, 'see the Configuration section of the README');
  }
  rejectTlsAliases(raw as Record<string, unknown>);
  const result = configSchema.safeParse(raw);
  if (!result.success) throw toConfigError(result.error.issues[0]!, raw);
  const config = result.data;
  const listeners = config.listeners.map(({ connectionRate, ...l }) => ({
    ...l,
    name: l.name ?? `${l.type}-${l.port}`,
    ...(connectionRate !== undefined ? { connectionRate: withBurst(connectionRate) } : {}),
  }));
  const seen = new Set<string>();
  listeners.forEach((l, i) => {
    (l.auth?.providers ?? []).forEach((key, j) => {
      if (config.auth[key] === undefined) {
        throw new ConfigError(`listeners[${i}].auth.providers[${j}]`, `${key} is not configured in the auth section`, `configure auth.${key}, or use one of the configured providers`);
      }
    });
    if (seen.has(l.name)) {
      throw new ConfigError(`listeners[${i}].name`, `${JSON.stringify(l.name)} is used by two listeners`, 'give each listener its own name');
    }
    seen.add(l.name);
  });
  const { publishRate, ...limits } = config.limits;
  // mqtt.maximumQoS is the ceiling (policies may not go above it); limits.maximumQoS shows what applies
  const maximumQoS = Math.min(config.mqtt.maximumQoS, limits.maximumQoS) as 0 | 1 | 2;
  const policies = config.policies.map((policy, i) => checkPolicy(policy, i, listeners));
  refuseAnonymousCluster(config);
  return {
    ...config,
    listeners,
    auth: { ...config.auth, allowAnonymous: config.auth.allowAnonymous ?? !hasAuthProviders(config.auth) },
    limits: { ...limits, maximumQoS, ...(publishRate !== undefined ? { publishRate: withBurst(publishRate) } : {}) },
    policies,
  };
}

/** A token bucket's burst defaults to its rate rounded up. */
function withBurst(rate: { perSecond: number; burst?: number | undefined }): RateConfig {
  return { perSecond: rate.perSecond, burst: rate.burst ?? Math.max(1, Math.ceil(rate.perSecond)) };
}

/** A policy with its publish rate's burst resolved; a listener name it gives must exist. */
function checkPolicy(policy: ParsedPolicy, i: number, listeners: readonly { name: string }[]): PolicyConfig {
  const names = listeners.map((l) => l.name);
  (policy.match.listeners ?? []).forEach((name, j) => {
    if (!isGlob(name) && !names.includes(name)) {
      throw new ConfigError(`policies[${i}].match.listeners[${j}]`, `${JSON.stringify(name)} names no listener`, `use one of ${names.join(', ')} (listeners[].name)`);
    }
  });
  const { publishRate, ...limits } = policy.limits;
  return { ...policy, limits: { ...limits, ...(publishRate !== undefined ? { publishRate: withBurst(publishRate) } : {}) } };
}

/**
 * A cluster (NATS or Redis configured) serves devices beyond this machine: with no way of
 * authenticating configured, it would let anyone in. That takes `auth.allowAnonymous: true`,
 * said on purpose; one node alone (the embedded default) stays open like Mosquitto on localhost.
 */
function refuseAnonymousCluster(config: ParsedConfig): void {
  const { nats, redis } = config.cluster;
  if (nats === undefined && redis === undefined) return;
  if (hasAuthProviders(config.auth) || config.auth.allowAnonymous !== undefined) return;
  throw new ConfigError(
    'auth.allowAnonymous',
    `is not set, and ${nats !== undefined ? 'cluster.nats' : 'cluster.redis'} is configured with no auth provider: every client would be let in anonymously`,
    'configure auth.passwordFile, auth.jwt, auth.sharedAccess, auth.deviceTokens or auth.usernameFromCertificate; or set auth.allowAnonymous: true (FLEETMQ_AUTH__ALLOW_ANONYMOUS=true) to let anonymous clients in on purpose',
  );
}

function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError('--config', `cannot read ${file} (${code})`, 'pass the path of a readable YAML file', { cause: err });
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new ConfigError('--config', `${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`, 'fix the YAML syntax', { cause: err });
  }
}

/** FLEETMQ_NODE_ID, FLEETMQ_LOG_LEVEL, FLEETMQ_LISTENERS and FLEETMQ_<SECTION>__<KEY> overrides. */
function applyEnv(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  const config: Record<string, unknown> = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? { ...raw } : {};
  if (env.FLEETMQ_NODE_ID) config.nodeId = env.FLEETMQ_NODE_ID;
  if (env.FLEETMQ_LOG_LEVEL) config.log = { ...(config.log as object), level: env.FLEETMQ_LOG_LEVEL };
  if (env.FLEETMQ_LISTENERS) config.listeners = parseListenerUrls(env.FLEETMQ_LISTENERS);
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !/^FLEETMQ_[A-Z0-9_]+__[A-Z0-9_]+$/.test(name)) continue;
    // FLEETMQ_MQTT__MAX_PACKET_SIZE -> mqtt.maxPacketSize; FLEETMQ_CLUSTER__NATS__SERVERS -> cluster.nats.servers
    const path = name
      .slice('FLEETMQ_'.length)
      .split('__')
      .map((part) => part.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()));
    setPath(config, path, parseScalar(value));
  }
  return config;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    const copy: Record<string, unknown> = next !== null && typeof next === 'object' && !Array.isArray(next) ? { ...next } : {};
    node[key] = copy;
    node = copy;
  }
  node[path[path.length - 1]!] = value;
}

function parseScalar(value: string): unknown {
  try {
    const parsed: unknown = parseYaml(value);
    return parsed !== null && typeof parsed === 'object' ? value : parsed;
  } catch {
    return value;
  }
}

const DEFAULT_PORTS: Record<string, number> = { tcp: 1883, ws: 8083, tls: 8883, wss: 8084 };

/** `tcp://0.0.0.0:1883,ws://0.0.0.0:8083/mqtt` (tls and wss need their certificates in the config file) */
export function parseListenerUrls(list: string): unknown[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((spec) => {
      let url: URL;
      try {
        url = new URL(spec);
      } catch {
        throw new ConfigError('FLEETMQ_LISTENERS', `${JSON.stringify(spec)} is not a URL`, 'write listeners as tcp://host:port or ws://host:port/path, comma-separated');
      }
      const type = url.protocol.replace(/:$/, '');
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const defaultPort = DEFAULT_PORTS[type] ?? 1883;
      const listener: Record<string, unknown> = { type, host, port: url.port === '' ? defaultPort : Number(url.port) };
      if ((type === 'ws' || type === 'wss') && url.pathname !== '/') listener.path = url.pathname;
      return listener;
    });
}

function rejectTlsAliases(raw: Record<string, unknown>): void {
  const listeners = raw.listeners;
  if (!Array.isArray(listeners)) return;
  listeners.forEach((l: unknown, i) => {
    const type = (l as { type?: unknown } | null)?.type;
    if (typeof type === 'string' && TLS_ALIASES.includes(type)) {
      throw new ConfigError(`listeners[${i}].type`, `${JSON.stringify(type)} is not a listener type`, 'use tls (MQTT over TLS) or wss (secure WebSocket)');
    }
  });
}

/** Keys whose values are secrets: never printed in errors or by check-config. */
const SECRET_KEYS: ReadonlySet<PropertyKey> = new Set(['secret', 'keys', 'policies', 'password', 'localPassword', 'adminToken']);

function holdsSecret(path: readonly PropertyKey[], value: unknown): boolean {
  if (path[0] === 'policies') return false; // limits, not sharedAccess.policies
  if (path.some((p) => SECRET_KEYS.has(p))) return true;
  return value !== null && typeof value === 'object' && Object.keys(value).some((k) => SECRET_KEYS.has(k));
}

/** The config with secret values replaced by "[redacted]", for printing. */
export function redactSecrets(config: EdgeConfig): EdgeConfig {
  const { jwt, sharedAccess } = config.auth;
  const hide = (m: Record<string, string> | undefined) => (m === undefined ? undefined : Object.fromEntries(Object.keys(m).map((k) => [k, '[redacted]'])));
  const auth = {
    ...config.auth,
    ...(jwt !== undefined ? { jwt: { ...jwt, ...(jwt.secret !== undefined ? { secret: '[redacted]' } : {}) } } : {}),
    ...(sharedAccess !== undefined
      ? {
          sharedAccess: {
            ...sharedAccess,
            ...(sharedAccess.keys !== undefined ? { keys: hide(sharedAccess.keys)! } : {}),
            ...(sharedAccess.policies !== undefined ? { policies: hide(sharedAccess.policies)! } : {}),
          },
        }
      : {}),
  };
  const ops = config.ops.adminToken === undefined ? config.ops : { ...config.ops, adminToken: '[redacted]' };
  const bridges = config.bridges.map(redactBridge);
  return { ...config, bridges, auth, ops };
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`;
  return out === '' ? '(root)' : out;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw;
  for (const part of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[part] : undefined;
  return v;
}

function toConfigError(issue: z.core.$ZodIssue, raw: unknown): ConfigError {
  const path = issue.path;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const known = knownKeys(configSchema, path);
    const suggestion = closest(key, known);
    return new ConfigError(
      formatPath([...path, key]),
      'unknown key',
      suggestion !== undefined ? `did you mean ${suggestion}?` : `remove it; known keys here: ${known.join(', ')}`,
    );
  }
  const genericPath = path.filter((p) => typeof p !== 'number').join('.');
  const value = valueAt(raw, path);
  const shown = value === undefined ? 'missing' : holdsSecret(path, value) ? 'the value (not shown) is invalid' : `${JSON.stringify(value)} is invalid`;
  return new ConfigError(formatPath(path), `${shown}: ${issue.message}`, HINTS[genericPath] ?? 'see the Configuration section of the README');
}

/** The keys the schema accepts at `path` (for "did you mean"). */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: z.ZodType = schema;
  for (const part of [...path, undefined]) {
    for (;;) {
      const def = (s as unknown as { def: { type: string; innerType?: z.ZodType; element?: z.ZodType } }).def;
      if ((def.type === 'default' || def.type === 'optional') && def.innerType) s = def.innerType;
      else if (def.type === 'array' && def.element) s = def.element;
      else break;
    }
    if (part === undefined || typeof part === 'number') continue;
    const shape = (s as unknown as { shape?: Record<string, z.ZodType> }).shape;
    if (shape?.[part as string] === undefined) return [];
    s = shape[part as string]!;
  }
  return Object.keys((s as unknown as { shape?: Record<string, z.ZodType> }).shape ?? {});
}

/** The candidate within a few edits of `word`, if any. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  if (candidates.length === 0) return undefined;
  const best = closestMatch(word, [...candidates]);
  return distance(word.toLowerCase(), best.toLowerCase()) <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
