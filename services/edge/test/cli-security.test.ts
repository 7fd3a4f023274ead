/**
 * The built `fleetmq` command: SIGHUP re-reads the password file (with file watching off, so
 * only the signal can), and a cluster with no auth provider refuses to start unless anonymous
 * access is asked for.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'fleetmq-cli-security-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The CONNACK code an mqtt.js 5.0 client gets (0: connected). */
async function connackCode(port: number, username: string, password: string): Promise<number> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, reconnectPeriod: 0, username, password, clientId: `${username}-${Date.now()}` });
  try {
    return await new Promise<number>((resolve) => {
      c.once('connect', () => resolve(0));
      c.once('error', (err: Error & { code?: number }) => resolve(err.code ?? -1));
    });
  } finally {
    c.end(true);
  }
}

describe('fleetmq start and auth', () => {
  it('SIGHUP re-reads the password file: new users can connect, nothing restarts', async () => {
    const passwd = path.join(dir, 'passwd');
    execFileSync('/usr/bin/mosquitto_passwd', ['-b', '-c', passwd, 'alice', 'alice-pw']);
    const config = path.join(dir, 'fleetmq.yaml');
    writeFileSync(config, `listeners: [{ type: tcp, host: 127.0.0.1, port: 0 }]\nauth:\n  passwordFile: ${passwd}\n  watchFiles: false\n`);
    const child = spawn(process.execPath, [CLI, 'start', '--config', config], {
      env: { ...process.env, FLEETMQ_OPS__PORT: '0', FLEETMQ_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const events: { msg: string; port?: number; [k: string]: unknown }[] = [];
      const waiters = new Set<() => void>();
      createInterface({ input: child.stdout! }).on('line', (line) => {
        events.push(JSON.parse(line) as { msg: string });
        for (const w of [...waiters]) w();
      });
      const event = (msg: string) =>
        new Promise<{ msg: string; port?: number; [k: string]: unknown }>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no ${msg}; got ${events.map((e) => e.msg).join(', ')}`)), 10_000);
          const check = (): void => {
            const found = events.find((e) => e.msg === msg);
            if (found === undefined) return;
            clearTimeout(timer);
            waiters.delete(check);
            resolve(found);
          };
          waiters.add(check);
          check();
        });
      const { port } = await event('listener_started');
      await event('node_ready');
      expect(await connackCode(port!, 'alice', 'alice-pw')).toBe(0);
      execFileSync('/usr/bin/mosquitto_passwd', ['-b', passwd, 'carol', 'carol-pw']);
      await new Promise((r) => setTimeout(r, 300));
      expect(await connackCode(port!, 'carol', 'carol-pw')).toBe(0x86); // not watched: not yet
      child.kill('SIGHUP');
      expect(await event('auth_reloaded')).toMatchObject({ key: 'auth.passwordFile', file: passwd, users: 2 });
      expect(await connackCode(port!, 'carol', 'carol-pw')).toBe(0);
      expect(child.exitCode).toBeNull();
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('a cluster with no auth provider fails at start naming auth.allowAnonymous and the fix, exit 2', () => {
    const env = { ...process.env, FLEETMQ_LISTENERS: 'tcp://127.0.0.1:0', FLEETMQ_CLUSTER__NATS__SERVERS: 'nats://127.0.0.1:1' };
    for (const command of ['start', 'check-config']) {
      const r = spawnSync(process.execPath, [CLI, command], { encoding: 'utf8', timeout: 15_000, env });
      expect(r.status).toBe(2);
      expect(r.stderr.trim()).toMatch(/^fleetmq: config auth\.allowAnonymous: is not set, and cluster\.nats is configured with no auth provider: .*\(fix: .*set auth\.allowAnonymous: true.*\)$/);
    }
    const open = spawnSync(process.execPath, [CLI, 'check-config'], { encoding: 'utf8', timeout: 15_000, env: { ...env, FLEETMQ_AUTH__ALLOW_ANONYMOUS: 'true' } });
    expect(open.status).toBe(0);
    expect(JSON.parse(open.stdout).auth.allowAnonymous).toBe(true);
  });
});
