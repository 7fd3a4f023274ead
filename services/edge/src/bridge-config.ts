import * as z from 'zod';
import type { BridgeOptions } from '@fleetmq/bridge';
import { checkTopicRule, parseTopicRule, TopicRuleError, type TopicRule } from '@fleetmq/bridge/topic-rules';

/** `host`, `host:port`, `[v6]:port`; the port defaults to 1883 as in Mosquitto. */
export function parseBridgeAddress(text: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:\s]+)(?::(\d+))?$/.exec(text);
  if (m === null) return undefined;
  const port = m[2] === undefined ? 1883 : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host: m[1]!, port };
}

const address = z.string().transform((text, ctx) => {
  const parsed = parseBridgeAddress(text.trim());
  if (parsed === undefined) {
    ctx.addIssue({ code: 'custom', message: 'not host[:port]' });
    return z.NEVER;
  }
  return parsed;
});

/** Mosquitto's `address a:1883 b:1883` (one string, spaces between) or a YAML list. */
const addresses = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(/[\s,]+/).filter((s) => s !== '') : v),
  z.array(address).min(1),
);

const ruleObject = z
  .strictObject({
    pattern: z.string(),
    direction: z.enum(['in', 'out', 'both']).default('out'),
    qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(0),
    localPrefix: z.string().default(''),
    remotePrefix: z.string().default(''),
  })
  .transform((rule, ctx): TopicRule => {
    try {
      return checkTopicRule(rule);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/** A topic rule: Mosquitto's one line (`supla/# in 1 "" cloud/`) or `{ pattern, direction, qos, localPrefix, remotePrefix }`. */
const topicRule = z.unknown().transform((value, ctx): TopicRule => {
  if (typeof value === 'string') {
    try {
      return parseTopicRule(value);
    } catch (err) {
      if (!(err instanceof TopicRuleError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.message });
      return z.NEVER;
    }
  }
  const parsed = ruleObject.safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  return z.NEVER;
});

const PROTOCOLS: Record<string, 3 | 4 | 5> = { '3': 3, '4': 4, '5': 5, mqttv31: 3, mqttv311: 4, mqttv50: 5, mqttv5: 5 };

export const bridgeSchema = z
  .strictObject({
    /** Mosquitto `connection`: names the bridge (lease `bridge:<name>`, metrics label). */
    name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
    /** Mosquitto `address`/`addresses`: tried in order. */
    addresses,
    /** Mosquitto `remote_clientid`; default the name (the same on every node of a cluster). */
    remoteClientId: z.string().min(1).optional(),
    /** Mosquitto `local_clientid`; default `local.<remoteClientId>`. */
    localClientId: z.string().min(1).optional(),
    /** Mosquitto `cleansession` (default false, as Mosquitto). */
    cleanSession: z.boolean().default(false),
    /** Mosquitto `local_cleansession`; default cleanSession. */
    localCleanSession: z.boolean().optional(),
    /** Mosquitto `keepalive_interval`, seconds (minimum 5). */
    keepAlive: z.number().int().min(5).max(65535).default(60),
    /** Mosquitto `bridge_protocol_version`: 3, 4, 5 or mqttv31, mqttv311, mqttv50. */
    protocolVersion: z
      .union([z.number(), z.string()])
      .transform((v, ctx) => {
        const version = PROTOCOLS[String(v)];
        if (version === undefined) {
          ctx.addIssue({ code: 'custom', message: 'not a protocol version' });
          return z.NEVER;
        }
        return version;
      })
      .default(4),
    /** Mosquitto `remote_username` / `remote_password`. */
    username: z.string().optional(),
    password: z.string().optional(),
    /** Mosquitto `local_username` / `local_password`: how the bridge authenticates to this broker. */
    localUsername: z.string().optional(),
    localPassword: z.string().optional(),
    /** TLS to the remote (Mosquitto bridge_cafile, bridge_certfile, bridge_keyfile, bridge_insecure). */
    tls: z
      .strictObject({
        caFile: z.string().min(1).optional(),
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        insecure: z.boolean().default(false),
        serverName: z.string().min(1).optional(),
      })
      .optional(),
    /** Mosquitto `try_private`. */
    tryPrivate: z.boolean().default(true),
    /** Mosquitto `notifications`, `notifications_local_only`, `notification_topic`. */
    notifications: z.boolean().default(true),
    notificationsLocalOnly: z.boolean().default(false),
    notificationTopic: z.string().min(1).optional(),
    /** Mosquitto `bridge_outgoing_retain`. */
    outgoingRetain: z.boolean().default(true),
    /** Mosquitto `round_robin`. */
    roundRobin: z.boolean().default(false),
    /** Mosquitto `topic` lines. */
    topics: z.array(topicRule).min(1),
    /** QoS 1/2 messages queued for the remote (Mosquitto `max_queued_messages`); drop-oldest beyond. */
    maxQueued: z.number().int().min(1).default(1000),
    /** QoS 1/2 messages unacknowledged by the remote (Mosquitto `max_inflight_messages`). */
    maxInflight: z.number().int().min(1).max(65535).default(20),
    /** Mosquitto `restart_timeout base cap`, here in ms. */
    reconnectDelay: z
      .strictObject({ base: z.number().int().min(10).default(5_000), cap: z.number().int().min(10).default(30_000) })
      .default({ base: 5_000, cap: 30_000 }),
    connectTimeout: z.number().int().min(100).default(10_000),
    /** Cluster: how long a node holds the bridge's lease unrenewed (ms); renewed every third. */
    leaseTtl: z.number().int().min(300).default(15_000),
  })
  .superRefine((b, ctx) => {
    if (b.password !== undefined && b.username === undefined) {
      ctx.addIssue({ code: 'custom', path: ['password'], message: 'needs username (as Mosquitto remote_password)' });
    }
    if ((b.tls?.certFile === undefined) !== (b.tls?.keyFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'certFile and keyFile go together' });
    }
    if (b.reconnectDelay.cap < b.reconnectDelay.base) {
      ctx.addIssue({ code: 'custom', path: ['reconnectDelay'], message: 'cap must not be below base' });
    }
  });

/** The `bridges` section: a list of bridges with distinct names. */
export const bridgesSchema = z
  .array(bridgeSchema)
  .superRefine((bridges, ctx) => {
    const seen = new Set<string>();
    bridges.forEach((b, i) => {
      if (seen.has(b.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: 'another bridge has this name' });
      seen.add(b.name);
    });
  })
  .default([]);

export type BridgeConfig = z.output<typeof bridgeSchema>;

/** What the bridge library takes, defaults filled in as Mosquitto fills them. */
export function bridgeOptions(b: BridgeConfig): BridgeOptions {
  const remoteClientId = b.remoteClientId ?? b.name;
  return {
    name: b.name,
    addresses: b.addresses,
    remoteClientId,
    localClientId: b.localClientId ?? `local.${remoteClientId}`,
    cleanSession: b.cleanSession,
    localCleanSession: b.localCleanSession ?? b.cleanSession,
    keepAlive: b.keepAlive,
    protocolVersion: b.protocolVersion,
    username: b.username,
    password: b.password,
    localUsername: b.localUsername,
    localPassword: b.localPassword,
    tls: b.tls,
    tryPrivate: b.tryPrivate,
    notifications: b.notifications,
    notificationsLocalOnly: b.notificationsLocalOnly,
    notificationTopic: b.notificationTopic ?? `$SYS/broker/connection/${remoteClientId}/state`,
    outgoingRetain: b.outgoingRetain,
    topics: b.topics,
    maxQueued: b.maxQueued,
    maxInflight: b.maxInflight,
    reconnect: { baseMs: b.reconnectDelay.base, capMs: b.reconnectDelay.cap },
    roundRobin: b.roundRobin,
    connectTimeoutMs: b.connectTimeout,
    leaseTtlMs: b.leaseTtl,
  };
}

/** The bridge with its passwords replaced by "[redacted]", for printing. */
export function redactBridge(b: BridgeConfig): BridgeConfig {
  return {
    ...b,
    ...(b.password !== undefined ? { password: '[redacted]' } : {}),
    ...(b.localPassword !== undefined ? { localPassword: '[redacted]' } : {}),
  };
}
