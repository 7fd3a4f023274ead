import { checkClientLimits, type ClientIdentity, type ClientLimits, type ConnectionInfo, type LimitPolicy } from '@fleetmq/broker';

/**
 * Which clients a policy is for. Every criterion given must match (AND); within one, any
 * listed pattern may (OR). Patterns are globs: `*` any run of characters, `?` one character,
 * everything else literal. `users` never matches a client without a username (anonymous).
 */
export interface PolicyMatch {
  /** Listener names (`listeners[].name`). */
  readonly listeners?: readonly string[] | undefined;
  /** The authenticated username (a certificate's CN, a token's subject, …). */
  readonly users?: readonly string[] | undefined;
  /** Any of the client's groups: its token's groups claim plus the `groups` map's. */
  readonly groups?: readonly string[] | undefined;
  readonly clientIds?: readonly string[] | undefined;
}

export interface LimitsPolicyRule {
  /** For logs; default `policies[<index>]`. */
  readonly name?: string | undefined;
  readonly match: PolicyMatch;
  /** What this policy changes; keys it leaves out (or undefined) keep the node-wide value. */
  readonly limits: PolicyLimits;
}

export interface PolicyTableOptions {
  /** The node-wide limits (config `limits`): clients no policy matches get these. */
  readonly defaults: ClientLimits;
  /** In order: the first that matches a client decides (like firewall rules and Mosquitto's acl_file sections). */
  readonly policies: readonly LimitsPolicyRule[];
  /** Group name → usernames, for credentials that carry no groups (password files, certificates). */
  readonly groups?: Readonly<Record<string, readonly string[]>> | undefined;
}

/** Some of a client's limits. */
export type PolicyLimits = { readonly [K in keyof ClientLimits]?: ClientLimits[K] | undefined };

interface CompiledPolicy {
  readonly name: string;
  readonly listeners: RegExp | undefined;
  readonly users: RegExp | undefined;
  readonly groups: RegExp | undefined;
  readonly clientIds: RegExp | undefined;
  /** The node-wide limits with this policy's merged over them, built once. */
  readonly limits: ClientLimits;
}

/**
 * Policy limits per listener, user, group and client ID (the config's `policies`), resolved
 * once per client at CONNECT: the first policy whose criteria all match gives the client's
 * limits, its keys merged over the node-wide `limits`; no match, the node-wide limits. Merged
 * limits are built once, so a CONNECT allocates nothing here.
 */
export class PolicyTable implements LimitPolicy {
  private readonly defaults: ClientLimits;
  private readonly policies: readonly CompiledPolicy[];
  /** Username → the groups the `groups` map gives it. */
  private readonly groupsOf = new Map<string, string[]>();

  constructor(options: PolicyTableOptions) {
    this.defaults = options.defaults;
    checkClientLimits(options.defaults);
    this.policies = options.policies.map((p, i) => {
      const name = p.name ?? `policies[${i}]`;
      const limits = mergeLimits(options.defaults, p.limits);
      checkClientLimits(limits, `${name}.limits`); // RangeError naming the policy
      return {
        name,
        listeners: globs(p.match.listeners),
        users: globs(p.match.users),
        groups: globs(p.match.groups),
        clientIds: globs(p.match.clientIds),
        limits,
      };
    });
    for (const [group, users] of Object.entries(options.groups ?? {})) {
      for (const user of users) {
        const list = this.groupsOf.get(user);
        if (list === undefined) this.groupsOf.set(user, [group]);
        else if (!list.includes(group)) list.push(group);
      }
    }
  }

  limitsFor(identity: ClientIdentity | undefined, clientId: string, info: ConnectionInfo): ClientLimits {
    return this.policyFor(identity, clientId, info.listener)?.limits ?? this.defaults;
  }

  /** The name of the policy that applies to such a client; undefined: the node-wide limits. */
  policyName(identity: ClientIdentity | undefined, clientId: string, listener: string): string | undefined {
    return this.policyFor(identity, clientId, listener)?.name;
  }

  /** The client's groups: its credential's and the `groups` map's. */
  groupsFor(identity: ClientIdentity | undefined): readonly string[] {
    const mapped = identity?.username === undefined ? undefined : this.groupsOf.get(identity.username);
    const own = identity?.groups ?? [];
    if (mapped === undefined) return own;
    return own.length === 0 ? mapped : [...new Set([...own, ...mapped])];
  }

  private policyFor(identity: ClientIdentity | undefined, clientId: string, listener: string): CompiledPolicy | undefined {
    const username = identity?.username;
    let groups: readonly string[] | undefined;
    for (const p of this.policies) {
      if (p.listeners !== undefined && !p.listeners.test(listener)) continue;
      if (p.clientIds !== undefined && !p.clientIds.test(clientId)) continue;
      if (p.users !== undefined && (username === undefined || !p.users.test(username))) continue;
      if (p.groups !== undefined) {
        groups ??= this.groupsFor(identity);
        const re = p.groups;
        if (!groups.some((g) => re.test(g))) continue;
      }
      return p;
    }
    return undefined;
  }
}

/** `base` with every key `over` gives (undefined values included only where given). */
function mergeLimits(base: ClientLimits, over: PolicyLimits): ClientLimits {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) if (value !== undefined) out[key] = value;
  return Object.freeze(out) as unknown as ClientLimits;
}

/** One anchored RegExp for a list of globs; undefined when the criterion is not given. */
function globs(patterns: readonly string[] | undefined): RegExp | undefined {
  if (patterns === undefined) return undefined;
  const alternatives = patterns.map((p) => p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.'));
  return new RegExp(`^(?:${alternatives.join('|')})$`, 's');
}

/** True when a pattern has glob characters (`*`, `?`). */
export function isGlob(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}
