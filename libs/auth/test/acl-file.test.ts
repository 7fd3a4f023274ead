import { describe, expect, it } from 'vitest';
import { AclFileError, parseAclFile } from '@fleetmq/auth';

describe('parseAclFile', () => {
  it('reads Mosquitto’s aclfile.example', () => {
    const file = parseAclFile(
      [
        '# This affects access control for clients with no username.',
        'topic read $SYS/#',
        '',
        '# This only affects clients with username "roger".',
        'user roger',
        'topic foo/bar',
        '',
        '# This affects all clients.',
        'pattern write $SYS/broker/connection/%c/state',
      ].join('\n'),
    );
    expect(file.anonymous).toEqual([{ access: 'read', topic: '$SYS/#', line: 2 }]);
    expect([...file.users]).toEqual([['roger', [{ access: 'readwrite', topic: 'foo/bar', line: 6 }]]]);
    expect(file.patterns).toEqual([{ access: 'write', topic: '$SYS/broker/connection/%c/state', line: 9 }]);
    expect(file.warnings).toEqual([]);
  });

  it('access words, topics with spaces, trailing blanks, CRLF, tabs, repeated user sections', () => {
    const file = parseAclFile(
      [
        'user a',
        'topic read r/#  ',
        'topic write w/+\r',
        'topic readwrite rw',
        'topic deny rw/secret',
        'topic read topic with spaces/x',
        'user b',
        'topic\tread\tb/t',
        'user a',
        'topic c',
        'pattern  read   p/%u/%c  ',
      ].join('\n'),
    );
    expect(file.users.get('a')).toEqual([
      { access: 'read', topic: 'r/#', line: 2 },
      { access: 'write', topic: 'w/+', line: 3 },
      { access: 'readwrite', topic: 'rw', line: 4 },
      { access: 'deny', topic: 'rw/secret', line: 5 },
      { access: 'read', topic: 'topic with spaces/x', line: 6 },
      { access: 'readwrite', topic: 'c', line: 10 },
    ]);
    expect(file.users.get('b')).toEqual([{ access: 'read', topic: 'b/t', line: 8 }]);
    expect(file.patterns).toEqual([{ access: 'read', topic: 'p/%u/%c', line: 11 }]);
  });

  it('as in Mosquitto: a single word after topic is the topic (readwrite), even "read"', () => {
    expect(parseAclFile('topic read').anonymous).toEqual([{ access: 'readwrite', topic: 'read', line: 1 }]);
  });

  it('user names may hold spaces; pattern lines after a user line still apply to everyone', () => {
    const file = parseAclFile('user Jane Doe\npattern readwrite d/%c\ntopic x');
    expect(file.users.get('Jane Doe')).toEqual([{ access: 'readwrite', topic: 'x', line: 3 }]);
    expect(file.patterns).toHaveLength(1);
  });

  it('warns about a pattern without %c or %u, as Mosquitto does', () => {
    expect(parseAclFile('pattern read fixed/topic').warnings).toEqual([{ line: 1, message: 'pattern "fixed/topic" contains neither %c nor %u' }]);
  });

  it.each([
    ['an unknown keyword', 'topics read a', 1, /invalid line/],
    ['an unknown access word', 'topic readonly a/b', 1, /invalid access type "readonly"/],
    ['topic with nothing after it', 'topic', 1, /empty topic/],
    ['an invalid filter', '\ntopic read a/#/b', 2, /invalid ACL topic "a\/#\/b"/],
    ['a + inside a level', 'pattern read a/b+/c', 1, /invalid ACL topic/],
    ['user without a name', 'user   ', 1, /missing username/],
  ])('refuses %s with the line number', (_name, text, line, message) => {
    let caught: unknown;
    try {
      parseAclFile(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AclFileError);
    expect((caught as AclFileError).line).toBe(line);
    expect((caught as AclFileError).message).toMatch(message);
  });
});
