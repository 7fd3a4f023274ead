import type { ClientInfo } from '@fleetmq/broker';
import { MOSQUITTO_DEFAULT_ITERATIONS, SALT_BYTES, digestPassword, verifyPassword, type PasswordHash } from '../password-hash.js';
import type { ParsedPasswordFile } from '../password-file.js';
import { accept, badCredentials, notAuthorized, skip, type AuthProvider, type ProviderResult } from '../provider.js';

export interface PasswordFileProviderOptions {
  readonly name?: string;
  /**
   * The device's identity is its client ID: the username must equal the CONNECT client ID,
   * else the client is refused with 0x87 (after its password was checked).
   */
  readonly bindClientId?: boolean;
}

/**
 * Username and password against a Mosquitto password file. Not its client (skip): no
 * username, or a username the file does not hold (another provider may know it; the chain
 * refuses credentials nobody accepts). An unknown user still costs one hash computation of
 * the file's usual kind, so response time does not tell which usernames exist.
 */
export class PasswordFileProvider implements AuthProvider {
  readonly name: string;
  private readonly bindClientId: boolean;
  private users: ParsedPasswordFile['users'];
  private decoy: PasswordHash;

  constructor(file: ParsedPasswordFile, options: PasswordFileProviderOptions = {}) {
    this.name = options.name ?? 'password-file';
    this.bindClientId = options.bindClientId ?? false;
    this.users = file.users;
    this.decoy = decoyFor(file);
  }

  /** Swaps in a re-read file (on SIGHUP or a file watch); connected clients are unaffected. */
  replace(file: ParsedPasswordFile): void {
    this.users = file.users;
    this.decoy = decoyFor(file);
  }

  async authenticate(client: ClientInfo): Promise<ProviderResult> {
    if (client.username === undefined) return skip;
    const entry = this.users.get(client.username);
    if (entry === undefined) {
      await digestPassword(client.password ?? Buffer.alloc(0), this.decoy);
      return skip;
    }
    if (client.password === undefined) {
      await verifyPassword(Buffer.alloc(0), entry.hash); // the same work as a wrong password
      return badCredentials('no_password');
    }
    if (!(await verifyPassword(client.password, entry.hash))) return badCredentials('bad_password');
    if (this.bindClientId && client.username !== client.clientId) return notAuthorized('client_id_mismatch');
    return accept({ provider: this.name, username: client.username, groups: [] });
  }
}

/** A hash shaped like most of the file's entries, for unknown users to be checked against. */
function decoyFor(file: ParsedPasswordFile): PasswordHash {
  const counts = new Map<number, number>();
  let sha512 = 0;
  for (const { hash } of file.users.values()) {
    if (hash.format === 6) sha512++;
    else counts.set(hash.iterations, (counts.get(hash.iterations) ?? 0) + 1);
  }
  let iterations = MOSQUITTO_DEFAULT_ITERATIONS;
  let best = 0;
  for (const [n, c] of counts) if (c > best) [iterations, best] = [n, c];
  const salt = Buffer.alloc(SALT_BYTES, 0x5a);
  const hash = Buffer.alloc(64);
  return sha512 > best ? { format: 6, salt, hash } : { format: 7, iterations, salt, hash };
}
