import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isPasswordHash, parsePasswordHash, type PasswordHash, type PasswordHashProblem } from './password-hash.js';

/**
 * Mosquitto's `password_file` (what `mosquitto_passwd` writes): one `username:hash` a line,
 * `#` comment lines, blank lines. Parsed as Mosquitto 2.0 parses it: a line without `:` is
 * ignored; the username is the text before the first `:` and the hash the text up to the
 * next `:`, both trimmed; an entry whose hash cannot be decoded is dropped (Mosquitto logs
 * and removes it); when a user appears twice the last usable line wins.
 */
export interface PasswordEntry {
  readonly username: string;
  readonly hash: PasswordHash;
  /** 1-based line number. */
  readonly line: number;
}

export type PasswordFileProblemKind = PasswordHashProblem | 'no_username' | 'no_password' | 'username_too_long' | 'duplicate_user';

/** A line that was ignored or overridden; carries no hash text, so it may be logged. */
export interface PasswordFileProblem {
  readonly line: number;
  readonly username?: string;
  readonly problem: PasswordFileProblemKind;
}

export interface ParsedPasswordFile {
  readonly users: ReadonlyMap<string, PasswordEntry>;
  readonly problems: readonly PasswordFileProblem[];
}

const MAX_FIELD = 65535;

export function parsePasswordFile(text: string): ParsedPasswordFile {
  const users = new Map<string, PasswordEntry>();
  const problems: PasswordFileProblem[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? '';
    const lineNo = i + 1;
    if (raw.startsWith('#')) continue;
    const colon = raw.indexOf(':');
    if (colon < 0) continue;
    const username = raw.slice(0, colon).trim();
    if (username.length === 0) {
      problems.push({ line: lineNo, problem: 'no_username' });
      continue;
    }
    if (Buffer.byteLength(username) > MAX_FIELD) {
      problems.push({ line: lineNo, problem: 'username_too_long' });
      continue;
    }
    const rest = raw.slice(colon + 1);
    const end = rest.indexOf(':');
    const hashText = (end < 0 ? rest : rest.slice(0, end)).trim();
    if (hashText.length === 0) {
      problems.push({ line: lineNo, username, problem: 'no_password' });
      continue;
    }
    const hash = parsePasswordHash(hashText);
    if (!isPasswordHash(hash)) {
      problems.push({ line: lineNo, username, problem: hash });
      continue;
    }
    if (users.has(username)) problems.push({ line: lineNo, username, problem: 'duplicate_user' });
    users.set(username, { username, hash, line: lineNo });
  }
  return { users, problems };
}

/** Why a username cannot go into a password file. */
export function usernameProblem(username: string): string | undefined {
  if (username.length === 0) return 'username must not be empty';
  if (username.includes(':')) return "username must not contain ':'"; // as mosquitto_passwd refuses
  if (/[\r\n]/.test(username)) return 'username must not contain a line break';
  if (username.trim() !== username) return 'username must not start or end with white space';
  if (username.startsWith('#')) return "username must not start with '#' (it would read as a comment)";
  if (Buffer.byteLength(username) > MAX_FIELD) return 'username is longer than 65535 bytes';
  return undefined;
}

function checkedUsername(username: string): string {
  const problem = usernameProblem(username);
  if (problem !== undefined) throw new RangeError(problem);
  return username;
}

function checkedHash(hashText: string): string {
  if (!isPasswordHash(parsePasswordHash(hashText))) throw new RangeError('not a $6$ or $7$ password hash');
  return hashText;
}

/** A whole file from entries, one `username:hash` line each, as `mosquitto_passwd -c` starts one. */
export function formatPasswordFile(entries: Iterable<{ readonly username: string; readonly hash: string }>): string {
  let out = '';
  for (const e of entries) out += `${checkedUsername(e.username)}:${checkedHash(e.hash)}\n`;
  return out;
}

function userOf(line: string): string | undefined {
  if (line.startsWith('#')) return undefined;
  const colon = line.indexOf(':');
  return colon < 0 ? undefined : line.slice(0, colon).trim();
}

function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/**
 * Sets a user's hash in the text of a password file: every line of that user is replaced
 * (as `mosquitto_passwd` updates in place), or a line is appended; comments, blank lines and
 * the order of other users are kept.
 */
export function upsertUser(text: string, username: string, hashText: string): string {
  const entry = `${checkedUsername(username)}:${checkedHash(hashText)}`;
  let found = false;
  const lines = splitLines(text).map((line) => {
    if (userOf(line) !== username) return line;
    found = true;
    return entry;
  });
  if (!found) lines.push(entry);
  return `${lines.join('\n')}\n`;
}

/** Removes every line of a user (`mosquitto_passwd -D`); the text is unchanged when there is none. */
export function removeUser(text: string, username: string): string {
  const lines = splitLines(text);
  const kept = lines.filter((line) => userOf(line) !== username);
  if (kept.length === lines.length) return text;
  return kept.length === 0 ? '' : `${kept.join('\n')}\n`;
}

export async function readPasswordFile(path: string): Promise<ParsedPasswordFile> {
  return parsePasswordFile(await readFile(path, 'utf8'));
}

/**
 * Writes a password file atomically: a temporary file in the same directory, flushed to
 * disk, then renamed over the target, so a reader (a broker reloading it) never sees half a
 * file. Mode 0600 by default: the hashes are offline-guessable.
 */
export async function writePasswordFile(path: string, text: string, options: { readonly mode?: number } = {}): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', options.mode ?? 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
