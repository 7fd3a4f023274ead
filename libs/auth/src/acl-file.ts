import { isValidTopicFilter } from '@fleetmq/protocol';

export type AclAccess = 'read' | 'write' | 'readwrite' | 'deny';

export interface AclRule {
  readonly access: AclAccess;
  /** A topic filter; for `pattern` rules it may hold `%c` and `%u`. */
  readonly topic: string;
  /** 1-based line in the file (0 for rules that did not come from a file). */
  readonly line: number;
}

/**
 * Mosquitto's `acl_file`, parsed:
 *  - `topic [read|write|readwrite|deny] <topic>` before any `user` line: rules for anonymous
 *    clients (no username), as Mosquitto applies them;
 *  - `user <name>` starts a section; its `topic` lines are that user's rules (sections of
 *    the same user add up);
 *  - `pattern [read|write|readwrite|deny] <topic>` anywhere: rules for every client, with
 *    `%c` replaced by the client ID and `%u` by the username.
 * No access word means readwrite; the topic is the rest of the line and may hold spaces.
 */
export interface AclFile {
  readonly anonymous: readonly AclRule[];
  readonly users: ReadonlyMap<string, readonly AclRule[]>;
  readonly patterns: readonly AclRule[];
  /** Lines Mosquitto would warn about (a pattern without `%c`/`%u`). */
  readonly warnings: readonly { readonly line: number; readonly message: string }[];
}

/** An acl_file line Mosquitto would refuse to start with. */
export class AclFileError extends Error {
  override readonly name = 'AclFileError';
  readonly line: number;
  constructor(line: number, message: string) {
    super(`acl_file line ${line}: ${message}`);
    this.line = line;
  }
}

const ACCESS: Record<string, AclAccess> = { read: 'read', write: 'write', readwrite: 'readwrite', deny: 'deny' };

/** Parses the text of an acl_file; throws AclFileError on a line Mosquitto 2.0 refuses. */
export function parseAclFile(text: string): AclFile {
  const anonymous: AclRule[] = [];
  const users = new Map<string, AclRule[]>();
  const patterns: AclRule[] = [];
  const warnings: { line: number; message: string }[] = [];
  let user: string | undefined;

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = (lines[i] ?? '').replace(/\s+$/, '');
    const m = /^[ \t]*(\S+)(?:[ \t]+(.*))?$/.exec(line);
    if (m === null) continue; // blank
    const keyword = m[1] ?? '';
    const rest = m[2];
    if (keyword.startsWith('#')) continue;
    if (keyword === 'topic' || keyword === 'pattern') {
      if (rest === undefined) throw new AclFileError(lineNo, `empty topic after "${keyword}"`);
      const r = /^(\S+)(?:[ \t]+(.*))?$/.exec(rest);
      const first = r?.[1] ?? '';
      const remainder = r?.[2]?.trim();
      let access: AclAccess;
      let topic: string;
      if (remainder === undefined || remainder === '') {
        access = 'readwrite';
        topic = first;
      } else {
        const a = ACCESS[first];
        if (a === undefined) throw new AclFileError(lineNo, `invalid access type "${first}" (read, write, readwrite or deny)`);
        access = a;
        topic = remainder;
      }
      if (!isValidTopicFilter(topic)) throw new AclFileError(lineNo, `invalid ACL topic "${topic}"`);
      const rule: AclRule = { access, topic, line: lineNo };
      if (keyword === 'pattern') {
        if (!topic.includes('%c') && !topic.includes('%u')) {
          warnings.push({ line: lineNo, message: `pattern "${topic}" contains neither %c nor %u` });
        }
        patterns.push(rule);
      } else if (user === undefined) {
        anonymous.push(rule);
      } else {
        let list = users.get(user);
        if (list === undefined) users.set(user, (list = []));
        list.push(rule);
      }
    } else if (keyword === 'user') {
      const name = rest?.trim() ?? '';
      if (name === '') throw new AclFileError(lineNo, 'missing username after "user"');
      user = name;
      // a user with a section but no topic lines still counts as having rules (none): only patterns apply
      if (!users.has(user)) users.set(user, []);
    } else {
      throw new AclFileError(lineNo, `invalid line (expected topic, pattern or user)`);
    }
  }
  return { anonymous, users, patterns, warnings };
}
