import { readFile, stat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  formatPasswordFile,
  hashPassword,
  parsePasswordFile,
  readPasswordFile,
  removeUser,
  upsertUser,
  usernameProblem,
  verifyPassword,
  writePasswordFile,
} from '@fleetmq/auth';
import { tempDir } from './support.js';

const SALT = Buffer.alloc(12, 7);

describe('parsePasswordFile', () => {
  it('reads users, skips comments, blank lines and lines without a colon, trims CRLF and blanks', async () => {
    const alice = await hashPassword('a-pass', { iterations: 5, salt: SALT });
    const bob = await hashPassword('b-pass', { format: 6, salt: SALT });
    const text = ['# a comment: with a colon', '', 'not an entry', `alice:${alice}\r`, `  bob  :  ${bob}  `, ''].join('\n');
    const file = parsePasswordFile(text);
    expect([...file.users.keys()]).toEqual(['alice', 'bob']);
    expect(file.users.get('alice')?.line).toBe(4);
    expect(file.problems).toEqual([]);
    expect(await verifyPassword('a-pass', file.users.get('alice')!.hash)).toBe(true);
    expect(await verifyPassword('b-pass', file.users.get('bob')!.hash)).toBe(true);
  });

  it('drops entries Mosquitto drops and says why, without quoting the hash', async () => {
    const good = await hashPassword('x', { iterations: 2, salt: SALT });
    const text = [`plain:secret`, `empty:`, `:${good}`, `short:$6$AAAA$BBBB`, `ok:${good}:trailing-field`].join('\n');
    const file = parsePasswordFile(text);
    expect([...file.users.keys()]).toEqual(['ok']); // the text after a second ':' is ignored, as by strtok
    expect(file.problems).toEqual([
      { line: 1, username: 'plain', problem: 'unknown_hash_type' },
      { line: 2, username: 'empty', problem: 'no_password' },
      { line: 3, problem: 'no_username' },
      { line: 4, username: 'short', problem: 'bad_salt' },
    ]);
    expect(JSON.stringify(file.problems)).not.toContain('secret');
  });

  it('a user listed twice: the last usable line wins, and the duplicate is reported', async () => {
    const first = await hashPassword('one', { iterations: 2, salt: SALT });
    const second = await hashPassword('two', { iterations: 2, salt: SALT });
    const file = parsePasswordFile(`u:${first}\nu:${second}\nu:garbage\n`);
    expect(await verifyPassword('two', file.users.get('u')!.hash)).toBe(true);
    expect(file.problems.map((p) => p.problem)).toEqual(['duplicate_user', 'unknown_hash_type']);
  });
});

describe('editing (for `fleetmq passwd`)', () => {
  it('upsertUser replaces a user in place and keeps comments and order; appends a new user', async () => {
    const h1 = await hashPassword('1', { iterations: 2, salt: SALT });
    const h2 = await hashPassword('2', { iterations: 2, salt: SALT });
    const h3 = await hashPassword('3', { iterations: 2, salt: SALT });
    const start = `# fleet gateways\nalice:${h1}\n\nbob:${h1}\n`;
    const updated = upsertUser(start, 'alice', h2);
    expect(updated).toBe(`# fleet gateways\nalice:${h2}\n\nbob:${h1}\n`);
    expect(upsertUser(updated, 'carol', h3)).toBe(`# fleet gateways\nalice:${h2}\n\nbob:${h1}\ncarol:${h3}\n`);
    expect(upsertUser('', 'dave', h3)).toBe(`dave:${h3}\n`);
    expect(upsertUser(`x:${h1}`, 'y', h2)).toBe(`x:${h1}\ny:${h2}\n`); // a file without a final newline
  });

  it('removeUser removes every line of that user and nothing else', async () => {
    const h = await hashPassword('1', { iterations: 2, salt: SALT });
    expect(removeUser(`# c\na:${h}\nb:${h}\na:${h}\n`, 'a')).toBe(`# c\nb:${h}\n`);
    expect(removeUser(`b:${h}\n`, 'a')).toBe(`b:${h}\n`);
    expect(removeUser(`a:${h}\n`, 'a')).toBe('');
  });

  it('refuses usernames the format cannot hold and text that is not a hash', async () => {
    const h = await hashPassword('1', { iterations: 2, salt: SALT });
    for (const bad of ['', 'a:b', 'a\nb', ' lead', 'trail ', '#c']) {
      expect(usernameProblem(bad)).toBeDefined();
      expect(() => upsertUser('', bad, h)).toThrow(RangeError);
    }
    expect(() => upsertUser('', 'ok', 'plaintext')).toThrow(/hash/);
    expect(() => formatPasswordFile([{ username: 'ok', hash: 'plaintext' }])).toThrow(/hash/);
  });

  it('property: any valid username survives format → parse, and upsert then parse finds the new hash', async () => {
    const h = await hashPassword('p', { iterations: 1, salt: SALT });
    const h2 = await hashPassword('q', { iterations: 1, salt: SALT });
    const username = fc.string({ minLength: 1, maxLength: 20, unit: 'grapheme' }).filter((u) => usernameProblem(u) === undefined);
    fc.assert(
      fc.property(fc.uniqueArray(username, { minLength: 1, maxLength: 5 }), (names) => {
        const text = formatPasswordFile(names.map((username) => ({ username, hash: h })));
        const file = parsePasswordFile(text);
        expect([...file.users.keys()]).toEqual(names);
        expect(file.problems).toEqual([]);
        const target = names[0]!;
        const after = parsePasswordFile(upsertUser(text, target, h2));
        expect([...after.users.keys()]).toEqual(names);
        expect(after.users.get(target)!.hash.format).toBe(7);
        expect(after.users.get(target)!.hash.hash.equals(parsePasswordFile(`x:${h2}`).users.get('x')!.hash.hash)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('writePasswordFile / readPasswordFile', () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await cleanup?.();
    cleanup = undefined;
  });

  it('writes atomically with mode 0600 and leaves no temporary file', async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 'passwd');
    const text = formatPasswordFile([{ username: 'gw', hash: await hashPassword('pw', { iterations: 3 }) }]);
    await writePasswordFile(path, text);
    await writePasswordFile(path, upsertUser(text, 'gw2', await hashPassword('pw2', { iterations: 3 })));
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(t.dir)).toEqual(['passwd']);
    const file = await readPasswordFile(path);
    expect([...file.users.keys()]).toEqual(['gw', 'gw2']);
    expect(await verifyPassword('pw2', file.users.get('gw2')!.hash)).toBe(true);
    expect(await readFile(path, 'utf8')).toMatch(/^gw:\$7\$3\$/);
  });
});
