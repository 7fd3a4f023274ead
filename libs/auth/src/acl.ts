import { parseSharedFilter, topicMatches } from '@fleetmq/protocol';
import type { Authorizer, AuthzAction, ClientAuthorization } from '@fleetmq/broker';
import { parseAclFile, type AclFile } from './acl-file.js';
import { filterCovers } from './filter-covers.js';
import type { AuthIdentity } from './identity.js';

/**
 * `publish`: may the client send a PUBLISH to this topic name (write access)?
 * `subscribe`: may it SUBSCRIBE with this filter (read access covering the whole filter)?
 * `read`: may a message on this topic name be delivered to it (read access)?
 */
export type AclAction = AuthzAction;

export interface AclOptions {
  /**
   * How SUBSCRIBE is checked.
   * 'covered' (default): allowed when one read rule covers the whole filter (every topic the
   *   filter matches, the rule matches) and no deny rule covers it; a deny rule covering only
   *   part of the filter is enforced on delivery (`read`).
   * 'mosquitto': every subscription is allowed and only delivery is checked, as Mosquitto
   *   2.0's acl_file does (its SUBSCRIBE check is a no-op).
   */
  readonly subscribe?: 'covered' | 'mosquitto';
}

interface CompiledRule {
  readonly topic: string;
  readonly read: boolean;
  readonly write: boolean;
}

/** One client's rules, with `%c`/`%u` already substituted: build once at CONNECT, check per packet. */
export class ClientAcl implements ClientAuthorization {
  private readonly allow: readonly CompiledRule[];
  private readonly deny: readonly string[];
  private readonly subscribeMode: 'covered' | 'mosquitto';

  constructor(allow: readonly CompiledRule[], deny: readonly string[], subscribeMode: 'covered' | 'mosquitto') {
    this.allow = allow;
    this.deny = deny;
    this.subscribeMode = subscribeMode;
  }

  check(action: AclAction, topic: string): boolean {
    switch (action) {
      case 'publish':
        return !isReservedTopic(topic) && this.decide(topic, false);
      case 'read':
        return this.decide(topic, true);
      case 'subscribe': {
        if (this.subscribeMode === 'mosquitto') return true;
        const shared = parseSharedFilter(topic);
        if (shared === 'invalid') return false;
        const filter = shared === null ? topic : shared.filter;
        for (const d of this.deny) if (filterCovers(d, filter)) return false;
        for (const r of this.allow) if (r.read && filterCovers(r.topic, filter)) return true;
        return false;
      }
    }
  }

  /** A topic name: any matching deny refuses; else any matching rule with the access allows; else refused. */
  private decide(topic: string, read: boolean): boolean {
    for (const d of this.deny) if (topicMatches(d, topic)) return false;
    for (const r of this.allow) if ((read ? r.read : r.write) && topicMatches(r.topic, topic)) return true;
    return false;
  }
}

/**
 * Topic authorization from a Mosquitto acl_file plus the rules a credential carries.
 *
 * Rules that apply to a client: its `user` section (or, with no username, the rules before
 * the first `user` line), every `pattern` with `%c`/`%u` substituted (patterns with `%u`
 * skip clients without a username), and the `acl` claim of its token. A deny rule that
 * matches refuses, whichever of these it came from; otherwise a rule granting the access
 * allows; otherwise the answer is no (an ACL denies by default). `$` topics are reached only
 * by rules whose first level is literally `$…` (no wildcard-first rule matches them).
 *
 * As in Mosquitto, a client ID or username containing `+` or `#` gets no access from
 * `pattern` rules (it could widen them); deny patterns still apply to it. And as in
 * Mosquitto, no rule lets a client publish to `$SYS` (but for a bridge's connection state)
 * or to `$share` (see {@link isReservedTopic}).
 */
export class Acl implements Authorizer {
  readonly file: AclFile;
  private readonly subscribeMode: 'covered' | 'mosquitto';

  constructor(file: AclFile, options: AclOptions = {}) {
    this.file = file;
    this.subscribeMode = options.subscribe ?? 'covered';
  }

  static parse(text: string, options: AclOptions = {}): Acl {
    return new Acl(parseAclFile(text), options);
  }

  /** No file rules: only the rules carried by credentials grant anything. */
  static empty(options: AclOptions = {}): Acl {
    return new Acl({ anonymous: [], users: new Map(), patterns: [], warnings: [] }, options);
  }

  forClient(identity: AuthIdentity | undefined, clientId: string): ClientAcl {
    const username = identity?.username;
    const allow: CompiledRule[] = [];
    const deny: string[] = [];
    const add = (topic: string, access: 'read' | 'write' | 'readwrite' | 'deny'): void => {
      if (access === 'deny') deny.push(topic);
      else allow.push({ topic, read: access !== 'write', write: access !== 'read' });
    };

    const own = username === undefined ? this.file.anonymous : (this.file.users.get(username) ?? []);
    for (const rule of own) add(rule.topic, rule.access);

    const dangerous = /[+#]/.test(clientId) || (username !== undefined && /[+#]/.test(username));
    for (const rule of this.file.patterns) {
      if (rule.topic.includes('%u') && username === undefined) continue;
      if (dangerous && rule.access !== 'deny') continue;
      add(substitute(rule.topic, clientId, username), rule.access);
    }

    const claims = identity?.acl;
    if (claims !== undefined) {
      for (const t of claims.pub) add(t, 'write');
      for (const t of claims.sub) add(t, 'read');
      for (const t of claims.all) add(t, 'readwrite');
    }
    return new ClientAcl(allow, deny, this.subscribeMode);
  }

  check(identity: AuthIdentity | undefined, clientId: string, action: AclAction, topic: string): boolean {
    return this.forClient(identity, clientId).check(action, topic);
  }
}

const BRIDGE_STATE = '$SYS/broker/connection/+/state';

/**
 * Topics no client may publish to, whatever the rules say (Mosquitto 2.0's
 * `acl__check_dollar`): `$SYS…` belongs to the broker, except a bridge's
 * `$SYS/broker/connection/<id>/state`; `$share…` is only a subscription prefix.
 * The broker should apply this even when no ACL is configured.
 */
export function isReservedTopic(topic: string): boolean {
  if (topic.startsWith('$SYS')) return !topicMatches(BRIDGE_STATE, topic);
  return topic.startsWith('$share');
}

/**
 * Mosquitto's substitution: left to right, `%c` → client ID, `%u` → username; any other
 * `%` stays as it is. Replacement text is never rescanned.
 */
export function substitute(pattern: string, clientId: string, username: string | undefined): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '%' && i < pattern.length - 1) {
      const next = pattern[i + 1];
      if (next === 'c') {
        out += clientId;
        i++;
        continue;
      }
      if (next === 'u' && username !== undefined) {
        out += username;
        i++;
        continue;
      }
    }
    out += ch;
  }
  return out;
}
