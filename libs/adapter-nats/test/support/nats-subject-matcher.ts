/**
 * A tiny emulation of nats-server's subject matching (its sublist), for tests only: subjects
 * and patterns are '.'-separated tokens; in a pattern a token `*` matches exactly one token and
 * a last token `>` matches one or more tokens; any other token matches only itself.
 */
export function natsSubjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === '>' && i === p.length - 1) return s.length > i;
    if (i >= s.length) return false;
    if (token !== '*' && token !== s[i]) return false;
  }
  return p.length === s.length;
}

/**
 * Whether a string is a valid NATS subject as nats-server parses one from a PUB or SUB line:
 * non-empty '.'-separated tokens, none empty, no whitespace or control bytes (they end a
 * protocol argument). With `literal`, no token may be a wildcard (a publish subject).
 */
export function isValidNatsSubject(subject: string, literal: boolean): boolean {
  if (subject.length === 0) return false;
  const tokens = subject.split('.');
  return tokens.every((t, i) => {
    if (t.length === 0) return false;
    if (/[\x00-\x20\x7f]/.test(t)) return false;
    if (t === '*' || t === '>') return !literal && (t === '*' || i === tokens.length - 1);
    return true;
  });
}
