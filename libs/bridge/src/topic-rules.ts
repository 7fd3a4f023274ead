import { isValidTopicFilter, isValidTopicName, topicMatches, type QoS } from '@fleetmq/protocol';

export type BridgeDirection = 'in' | 'out' | 'both';

/**
 * One `topic` line of a Mosquitto bridge: `topic pattern [[[ out | in | both ] qos] local-prefix remote-prefix]`.
 * The local side of the rule is `localPrefix + pattern`, the remote side `remotePrefix + pattern`;
 * an empty pattern with both prefixes maps one local topic to one remote topic.
 */
export interface TopicRule {
  readonly pattern: string;
  readonly direction: BridgeDirection;
  readonly qos: QoS;
  readonly localPrefix: string;
  readonly remotePrefix: string;
}

/** A rule that is not valid, with the reason (Mosquitto refuses the same rules). */
export class TopicRuleError extends Error {
  override readonly name = 'TopicRuleError';
}

const DIRECTIONS: readonly string[] = ['in', 'out', 'both'];

/** `""` is Mosquitto's marker for an empty pattern or prefix. */
function token(t: string): string {
  return t === '""' ? '' : t;
}

/**
 * Parses Mosquitto's one-line form, with or without the leading `topic` keyword:
 * `supla/# in`, `topic sensors/# out 1 local/ site-1/`, `topic "" in 0 local/state remote/state`.
 * Defaults as Mosquitto: direction out, QoS 0, no prefixes.
 */
export function parseTopicRule(line: string): TopicRule {
  const tokens = line.trim().split(/\s+/).filter((t) => t !== '');
  if (tokens[0] === 'topic') tokens.shift();
  if (tokens.length === 0) throw new TopicRuleError('a topic rule needs a pattern');
  if (tokens.length > 5) throw new TopicRuleError(`too many words in ${JSON.stringify(line)}: pattern [direction [qos [local-prefix [remote-prefix]]]]`);
  const [pattern, direction = 'out', qos = '0', localPrefix = '""', remotePrefix = '""'] = tokens as [string, ...string[]];
  if (!DIRECTIONS.includes(direction)) throw new TopicRuleError(`direction ${JSON.stringify(direction)} is not one of in, out, both`);
  if (!/^[012]$/.test(qos)) throw new TopicRuleError(`QoS ${JSON.stringify(qos)} is not 0, 1 or 2`);
  return checkTopicRule({
    pattern: token(pattern),
    direction: direction as BridgeDirection,
    qos: Number(qos) as QoS,
    localPrefix: token(localPrefix),
    remotePrefix: token(remotePrefix),
  });
}

/** Returns the rule when Mosquitto would accept it; throws TopicRuleError otherwise. */
export function checkTopicRule(rule: TopicRule): TopicRule {
  const { pattern, localPrefix, remotePrefix } = rule;
  for (const [what, prefix] of [['local prefix', localPrefix], ['remote prefix', remotePrefix]] as const) {
    if (/[+#]/.test(prefix)) throw new TopicRuleError(`the ${what} ${JSON.stringify(prefix)} may not contain wildcards`);
  }
  if (pattern === '') {
    // the mosquitto.conf(5) table: "" needs both prefixes (a single topic remapped)
    if (localPrefix === '' || remotePrefix === '') {
      throw new TopicRuleError('an empty pattern ("") needs both a local and a remote prefix: the topics it maps');
    }
    if (!isValidTopicName(localPrefix) || !isValidTopicName(remotePrefix)) {
      throw new TopicRuleError(`${JSON.stringify(localPrefix)} and ${JSON.stringify(remotePrefix)} must be topic names`);
    }
    return rule;
  }
  if (!isValidTopicFilter(pattern)) throw new TopicRuleError(`${JSON.stringify(pattern)} is not a valid topic filter`);
  for (const full of [localPrefix + pattern, remotePrefix + pattern]) {
    if (!isValidTopicFilter(full)) throw new TopicRuleError(`${JSON.stringify(full)} is not a valid topic filter`);
  }
  return rule;
}

/** The filter the bridge subscribes to on the local broker (out, both). */
export function localFilter(rule: TopicRule): string {
  return rule.localPrefix + rule.pattern;
}

/** The filter the bridge subscribes to on the remote broker (in, both). */
export function remoteFilter(rule: TopicRule): string {
  return rule.remotePrefix + rule.pattern;
}

function carriesOut(rule: TopicRule): boolean {
  return rule.direction !== 'in';
}

function carriesIn(rule: TopicRule): boolean {
  return rule.direction !== 'out';
}

/** The remote topic for a local one: the first out/both rule that matches it decides (undefined: none). */
export function toRemoteTopic(rules: readonly TopicRule[], topic: string): string | undefined {
  for (const rule of rules) {
    if (!carriesOut(rule) || !topicMatches(localFilter(rule), topic)) continue;
    // the local prefix comes off, the remote one goes on
    return rule.remotePrefix + topic.slice(rule.localPrefix.length);
  }
  return undefined;
}

/** The local topic for a remote one: the first in/both rule that matches it decides (undefined: none). */
export function toLocalTopic(rules: readonly TopicRule[], topic: string): string | undefined {
  for (const rule of rules) {
    if (!carriesIn(rule) || !topicMatches(remoteFilter(rule), topic)) continue;
    return rule.localPrefix + topic.slice(rule.remotePrefix.length);
  }
  return undefined;
}

/** Local subscriptions of the bridge (out and both rules), one per distinct filter at the highest QoS. */
export function localSubscriptions(rules: readonly TopicRule[]): Map<string, QoS> {
  return subscriptions(rules.filter(carriesOut), localFilter);
}

/** Remote subscriptions of the bridge (in and both rules), one per distinct filter at the highest QoS. */
export function remoteSubscriptions(rules: readonly TopicRule[]): Map<string, QoS> {
  return subscriptions(rules.filter(carriesIn), remoteFilter);
}

function subscriptions(rules: readonly TopicRule[], filterOf: (r: TopicRule) => string): Map<string, QoS> {
  const out = new Map<string, QoS>();
  for (const rule of rules) {
    const filter = filterOf(rule);
    const qos = out.get(filter);
    if (qos === undefined || rule.qos > qos) out.set(filter, rule.qos);
  }
  return out;
}
