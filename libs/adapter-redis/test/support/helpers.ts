import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { startRedisServer, type RedisFixture } from '@fleetmq/testkit';
import type { BrokerLog } from '@fleetmq/broker';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Fast reconnection for outage tests. */
export const FAST_RECONNECT = { minDelayMs: 20, maxDelayMs: 100 } as const;

let nextPrefix = 0;
/** A key prefix no other test uses, so tests sharing one redis-server do not meet. */
export function uniquePrefix(what: string): string {
  return `test-${process.pid}-${what}-${nextPrefix++}:`;
}

/** A plain ioredis client for looking at what the adapters wrote. */
export function adminClient(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1 });
}

/** Calls of one command since the server started (INFO commandstats). */
export async function commandCalls(admin: Redis, command: string): Promise<number> {
  const info = await admin.info('commandstats');
  const match = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info);
  return match ? Number(match[1]) : 0;
}

/** Redis' clock in ms. */
export async function redisNow(admin: Redis): Promise<number> {
  const [seconds, micros] = await admin.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly fields: object;
}

/** A BrokerLog that keeps what it is told. */
export function recordingLog(lines: LogLine[] = []): BrokerLog & { lines: LogLine[] } {
  const at =
    (level: string) =>
    (fields: object, msg: string): void => {
      lines.push({ level, msg, fields });
    };
  const log: BrokerLog & { lines: LogLine[] } = {
    lines,
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    isLevelEnabled: () => true,
    child: () => log,
  };
  return log;
}

/**
 * One redis-server for the test file, started before its tests, with an admin client for
 * looking at keys; both stopped after. Read `server` and `admin` inside tests.
 */
export function useRedisServer(): { readonly server: RedisFixture; readonly admin: Redis } {
  let server: RedisFixture | undefined;
  let admin: Redis | undefined;
  beforeAll(async () => {
    server = await startRedisServer();
    admin = adminClient(server.url);
  });
  afterAll(async () => {
    await admin?.quit();
    await server?.stop();
  });
  return {
    get server() {
      if (server === undefined) throw new Error('redis-server starts in beforeAll');
      return server;
    },
    get admin() {
      if (admin === undefined) throw new Error('redis-server starts in beforeAll');
      return admin;
    },
  };
}
