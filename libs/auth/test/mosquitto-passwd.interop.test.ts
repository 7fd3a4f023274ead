import { execFile } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PasswordFileProvider,
  formatPasswordFile,
  hashPassword,
  parsePasswordFile,
  readPasswordFile,
  upsertUser,
  verifyPassword,
  writePasswordFile,
} from '@fleetmq/auth';
import { clientInfo, mosquittoPub, startMosquitto, tempDir, type MosquittoBroker } from './support.js';

// Debian's real mosquitto 2.0.11: `mosquitto_passwd` writes files that FleetMQ reads, and the
// `mosquitto` broker reads files that FleetMQ writes (mosquitto_passwd cannot verify a
// password, the broker can: mosquitto_pub's exit code says whether CONNECT was accepted).

const run = promisify(execFile);
let dir = '';
let cleanup: () => Promise<void> = async () => undefined;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterAll(async () => cleanup());

const USERS: readonly (readonly [string, string])[] = [
  ['alice', 'secret'],
  ['bob', 'correct horse battery staple'],
  ['carol', 'pä$$:wörd ✓'],
  ['gw.7 north', 'token-like-password-0123456789'],
];

describe('files written by mosquitto_passwd, read by FleetMQ', () => {
  it('default (-H sha512-pbkdf2, $7$101$): every user verifies, wrong passwords do not', async () => {
    const path = join(dir, 'pbkdf2.passwd');
    const [first, ...rest] = USERS;
    await run('mosquitto_passwd', ['-b', '-c', path, first![0], first![1]]);
    for (const [u, p] of rest) await run('mosquitto_passwd', ['-b', path, u, p]);
    const file = await readPasswordFile(path);
    expect(file.problems).toEqual([]);
    expect([...file.users.keys()]).toEqual(USERS.map(([u]) => u));
    for (const [u, p] of USERS) {
      const { hash } = file.users.get(u)!;
      expect(hash).toMatchObject({ format: 7, iterations: 101 });
      expect(await verifyPassword(p, hash)).toBe(true);
      expect(await verifyPassword(`${p}x`, hash)).toBe(false);
    }
  });

  it('-H sha512 ($6$): every user verifies through the provider', async () => {
    const path = join(dir, 'sha512.passwd');
    await run('mosquitto_passwd', ['-H', 'sha512', '-b', '-c', path, 'alice', 'secret']);
    await run('mosquitto_passwd', ['-H', 'sha512', '-b', path, 'bob', 'hunter2']);
    const text = await readFile(path, 'utf8');
    expect(text).toMatch(/^alice:\$6\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==\nbob:\$6\$/);
    const provider = new PasswordFileProvider(parsePasswordFile(text));
    const ok = await provider.authenticate(clientInfo({ username: 'bob', password: 'hunter2' }));
    expect(ok).toMatchObject({ kind: 'accept', identity: { username: 'bob', provider: 'password-file' } });
    const bad = await provider.authenticate(clientInfo({ username: 'bob', password: 'hunter3' }));
    expect(bad).toEqual({ kind: 'reject', reasonCode: 0x86, reason: 'bad_password' });
  });

  it('a file mosquitto_passwd updated after FleetMQ wrote it (-b on an existing file) still reads', async () => {
    const path = join(dir, 'mixed.passwd');
    await writePasswordFile(path, formatPasswordFile([{ username: 'ours', hash: await hashPassword('mine', { iterations: 1000 }) }]));
    await run('mosquitto_passwd', ['-b', path, 'theirs', 'yours']);
    await run('mosquitto_passwd', ['-b', path, 'ours', 'changed']); // replaces our line in place
    const file = await readPasswordFile(path);
    expect([...file.users.keys()]).toEqual(['ours', 'theirs']);
    expect(await verifyPassword('changed', file.users.get('ours')!.hash)).toBe(true);
    expect(await verifyPassword('yours', file.users.get('theirs')!.hash)).toBe(true);
  });
});

describe('files written by FleetMQ, read by the mosquitto 2.0.11 broker', () => {
  let broker: MosquittoBroker;
  const ours: readonly (readonly [string, string, Parameters<typeof hashPassword>[1]])[] = [
    ['p101', 'pw-101', { format: 7, iterations: 101 }],
    ['pdefault', 'pw-default', {}],
    ['p1', 'pw-1', { format: 7, iterations: 1 }],
    ['s6', 'pw-sha512', { format: 6 }],
    ['utf8', 'pässwörd ✓', { format: 7, iterations: 5000 }],
  ];

  beforeAll(async () => {
    const path = join(dir, 'ours.passwd');
    let text = '# written by FleetMQ\n';
    for (const [u, p, o] of ours) text = upsertUser(text, u, await hashPassword(p, o));
    await writePasswordFile(path, text);
    await chmod(path, 0o600);
    broker = await startMosquitto(dir, { passwordFile: path });
  });
  afterAll(async () => broker?.stop());

  const connect = (username: string, password: string) =>
    mosquittoPub(['-h', '127.0.0.1', '-p', String(broker.port), '-u', username, '-P', password, '-t', 'interop/passwd', '-m', 'x']);

  for (const [u, p, o] of ours) {
    it(`accepts ${u} (${JSON.stringify(o)}) with the right password and refuses a wrong one`, async () => {
      const good = await connect(u, p);
      expect(good.output).toBe('');
      expect(good.code).toBe(0);
      const bad = await connect(u, `${p}!`);
      expect(bad.code).not.toBe(0);
      expect(bad.output).toMatch(/not authori[sz]ed/i);
    });
  }

  it('the broker loaded every entry (no "removing entry" in its log)', async () => {
    expect(broker.output()).toMatch(/mosquitto version 2\.0\.\d+ running/);
    expect(broker.output()).not.toMatch(/removing entry|Invalid|Unable to decode/);
  });
});

describe('the same file, both readers', () => {
  it('a FleetMQ-written $7$ line and a mosquitto_passwd-written line are byte-compatible in shape', async () => {
    const path = join(dir, 'shape.passwd');
    await run('mosquitto_passwd', ['-b', '-c', path, 'm', 'x']);
    const theirs = (await readFile(path, 'utf8')).trim();
    const mine = `m:${await hashPassword('x', { iterations: 101 })}`;
    const shape = /^m:\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/;
    expect(theirs).toMatch(shape);
    expect(mine).toMatch(shape);
    await writeFile(path, `${theirs}\n${mine.replace(/^m:/, 'n:')}\n`);
    const both = await readPasswordFile(path);
    expect(await verifyPassword('x', both.users.get('m')!.hash)).toBe(true);
    expect(await verifyPassword('x', both.users.get('n')!.hash)).toBe(true);
  });
});
