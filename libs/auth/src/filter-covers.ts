/**
 * True when every topic that `filter` matches is also matched by `rule` (both valid MQTT
 * topic filters), under the matching of @fleetmq/protocol's topicMatches: '+' one level,
 * '#' the level it stands in and everything below, including the parent ('a/#' matches 'a'),
 * and no wildcard in the first level matching a topic that starts with '$' [MQTT-4.7.2-1].
 * Used to decide whether a SUBSCRIBE is within what the ACL lets a client read.
 */
export function filterCovers(rule: string, filter: string): boolean {
  const r = rule.split('/');
  const f = filter.split('/');
  const r0 = r[0];
  // a rule starting with a wildcard never reaches '$' topics; a filter with a literal '$' first level asks for them
  if ((r0 === '+' || r0 === '#') && (f[0] ?? '').startsWith('$')) return false;
  for (let i = 0; i < r.length; i++) {
    const rl = r[i];
    if (rl === '#') return true; // the rest of the filter, its parent level included
    if (i >= f.length) return false; // the rule needs a level the filter's topics lack
    const fl = f[i];
    if (fl === '#') {
      // The rule has no '#' here, so it can cover only if the filter's '#' has no parent topic
      // to match: its parent is the empty string ('#' first, or '/#'), which is no topic. Then
      // the filter matches one level or more here, which is what '+/#' matches.
      const noParent = i === 0 || (i === 1 && f[0] === '');
      return noParent && rl === '+' && r.length === i + 2 && r[i + 1] === '#';
    }
    if (rl === '+') continue;
    if (fl === '+' || fl !== rl) return false;
  }
  return f.length === r.length;
}
