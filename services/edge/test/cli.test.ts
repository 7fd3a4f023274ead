import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { startDynamo } from '@fleetmq/testkit';
import { isPasswordHash, parsePasswordFile, verifyPassword } from '@fleetmq/auth';
import { mosquittoPub as realMosquittoPub, startMosquitto } from '../../../libs/auth/test/support.js';

// The built command, as `npm start` and the package bin run it (`npm test` builds first).
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

function run(args: string[], env: Record<string, string> = {}, input?: string) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 15_000, env: { ...process.env, ...env }, ...(input !== undefined ? { input } : {}) });
}

describe('fleetmq command', () => {
  it('--help prints usage and exits 0', () => {
    const r = run(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('fleetmq <command>');
    expect(r.stdout).toContain('start');
  });

  it('--version prints the package version', () => {
    const r = run(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^fleetmq \d+\.\d+\.\d+\n$/);
  });

  it('an unknown command exits 2 with usage', () => {
    const r = run(['frobnicate']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });

  it('check-config prints the effective config', () => {
    const r = run(['check-config'], { FLEETMQ_MQTT__RECEIVE_MAXIMUM: '7' });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).mqtt.receiveMaximum).toBe(7);
  });

  it('a bad config file fails at start with one line naming the key and the fix, exit 2', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fleetmq-cli-'));
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'mqtt:\n  maxPacketSize: -5\n');
    const r = run(['start', '--config', file]);
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^fleetmq: config mqtt\.maxPacketSize: -5 is invalid: .* \(fix: .+\)$/);
  });

  it('start serves MQTT and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI, 'start'], {
      env: { ...process.env, FLEETMQ_LISTENERS: 'tcp://127.0.0.1:0', FLEETMQ_OPS__PORT: '0', FLEETMQ_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const events: Array<{ msg: string; port?: number }> = [];
      const lines = createInterface({ input: child.stdout! });
      const port = await new Promise<number>((resolve, reject) => {
        lines.on('line', (line) => {
          const event = JSON.parse(line) as { msg: string; port?: number };
          events.push(event);
          if (event.msg === 'listener_started') resolve(event.port!);
        });
        child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
      });
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
      const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())));
      await client.subscribeAsync('cli/test', { qos: 1 });
      await client.publishAsync('cli/test', 'up', { qos: 1 });
      expect(await got).toBe('up');
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(0);
      await closed;
      client.end(true);
      expect(events.map((e) => e.msg)).toEqual(
        expect.arrayContaining(['listener_started', 'node_ready', 'signal_received', 'node_stopping', 'node_stopped']),
      );
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('dynamo create-tables creates the tables, and says so again without harm', async () => {
    const dynamo = await startDynamo();
    try {
      const env = {
        FLEETMQ_DYNAMODB__ENDPOINT: dynamo.endpoint,
        FLEETMQ_DYNAMODB__TABLE_PREFIX: 'clitest-',
        AWS_ACCESS_KEY_ID: dynamo.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: dynamo.credentials.secretAccessKey,
      };
      const first = await runAsync(['dynamo', 'create-tables'], env);
      expect(first.code).toBe(0);
      expect(first.stdout.split('\n').filter(Boolean).sort()).toEqual([
        expect.stringMatching(/^clitest-offline-queue: table created, ttl (enabled|unsupported)$/),
        expect.stringMatching(/^clitest-retained: table created, ttl (enabled|unsupported)$/),
        expect.stringMatching(/^clitest-sessions: table created, ttl (enabled|unsupported)$/),
      ]);
      const second = await runAsync(['dynamo', 'create-tables'], env);
      expect(second.code).toBe(0);
      expect(second.stdout.split('\n').filter(Boolean)).toHaveLength(3);
      for (const line of second.stdout.split('\n').filter(Boolean)) expect(line).toMatch(/^clitest-[a-z-]+: table exists, ttl (already-enabled|unsupported)$/);
    } finally {
      await dynamo.stop();
    }
  });

  it('dynamo create-tables without a dynamodb section names the key to set', () => {
    const r = run(['dynamo', 'create-tables']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^fleetmq: config dynamodb: is not configured \(fix: set dynamodb.region/);
  });
});

describe('fleetmq passwd', () => {
  const tempFile = (): string => path.join(mkdtempSync(path.join(tmpdir(), 'fleetmq-passwd-')), 'passwd');

  async function verifies(file: string, user: string, password: string): Promise<boolean> {
    const entry = parsePasswordFile(readFileSync(file, 'utf8')).users.get(user);
    if (entry === undefined) return false;
    return verifyPassword(password, entry.hash);
  }

  it('-c creates the file (mode 0600) in Mosquitto\'s $7$ format with the password from stdin', async () => {
    const file = tempFile();
    const r = run(['passwd', '-c', file, 'alice'], {}, 'alice-secret\n');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/^alice:\$7\$20000\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==\n$/);
    expect(await verifies(file, 'alice', 'alice-secret')).toBe(true);
    expect(await verifies(file, 'alice', 'alice-secret\n')).toBe(false);
  });

  it('adds a user, updates one in place, removes one with -D; --iterations sets the rounds', async () => {
    const file = tempFile();
    expect(run(['passwd', '-c', file, 'alice'], {}, 'a1').status).toBe(0);
    expect(run(['passwd', '--iterations', '101', file, 'bob'], {}, 'b1').status).toBe(0);
    expect(run(['passwd', file, 'alice'], {}, 'a2\r\nignored second line').status).toBe(0);
    const users = parsePasswordFile(readFileSync(file, 'utf8')).users;
    expect([...users.keys()]).toEqual(['alice', 'bob']);
    const bob = users.get('bob')!.hash;
    expect(isPasswordHash(bob) && bob.format === 7 && bob.iterations).toBe(101);
    expect(await verifies(file, 'alice', 'a2')).toBe(true);
    expect(await verifies(file, 'alice', 'a1')).toBe(false);
    expect(run(['passwd', '-D', file, 'bob']).status).toBe(0);
    expect([...parsePasswordFile(readFileSync(file, 'utf8')).users.keys()]).toEqual(['alice']);
    const again = run(['passwd', '-D', file, 'bob']);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('user "bob" not found');
  });

  it('refuses a missing file without -c, an empty password, a username the format cannot hold, and missing arguments', () => {
    const file = tempFile();
    const missing = run(['passwd', file, 'alice'], {}, 'x');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/cannot read .* \(ENOENT\); use -c to create it/);
    expect(run(['passwd', '-c', file, 'alice'], {}, '\n').stderr).toContain('empty password');
    const bad = run(['passwd', '-c', file, 'a:b'], {}, 'x');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('cannot be stored');
    const usage = run(['passwd', file]);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('Usage: fleetmq passwd');
  });

  it('the file it writes is read by the real mosquitto broker', async () => {
    const file = tempFile();
    expect(run(['passwd', '-c', file, 'gateway'], {}, 'gw-pass').status).toBe(0);
    const broker = await startMosquitto(path.dirname(file), { passwordFile: file });
    try {
      const common = ['-h', '127.0.0.1', '-p', String(broker.port), '-t', 't', '-m', 'x', '-u', 'gateway'];
      expect((await realMosquittoPub([...common, '-P', 'gw-pass'])).code).toBe(0);
      expect((await realMosquittoPub([...common, '-P', 'wrong'])).code).not.toBe(0);
    } finally {
      await broker.stop();
    }
  });
});

/** Like run, without blocking the event loop (the in-process dynalite must keep answering). */
function runAsync(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  return once(child, 'exit').then(([code]) => {
    clearTimeout(timer);
    return { code: code as number | null, stdout, stderr };
  });
}

describe('fleetmq admin verbs against a running node', () => {
  const TOKEN = 'cli-test-admin-token-0123456789';

  it('fleetmq drain drains a running node (as SIGTERM does), which then exits 0', async () => {
    const node = spawn(process.execPath, [CLI, 'start'], {
      env: { ...process.env, FLEETMQ_LISTENERS: 'tcp://127.0.0.1:0', FLEETMQ_OPS__PORT: '0', FLEETMQ_OPS__ADMIN_TOKEN: TOKEN, FLEETMQ_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const events: { msg: string; port?: number }[] = [];
      const exited = once(node, 'exit');
      const ports = await new Promise<{ mqtt: number; ops: number }>((resolve, reject) => {
        let mqttPort: number | undefined;
        createInterface({ input: node.stdout! }).on('line', (line) => {
          const event = JSON.parse(line) as { msg: string; port?: number };
          events.push(event);
          if (event.msg === 'listener_started') mqttPort = event.port;
          if (event.msg === 'ops_server_started' && mqttPort !== undefined) resolve({ mqtt: mqttPort, ops: event.port! });
        });
        void exited.then(([code]) => reject(new Error(`exited early with ${String(code)}`)));
      });
      const env = { FLEETMQ_ADMIN_URL: `http://127.0.0.1:${ports.ops}`, FLEETMQ_ADMIN_TOKEN: TOKEN };
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports.mqtt}`, { clientId: 'cli-listed', reconnectPeriod: 0 });
      const listed = await runAsync(['clients', 'list'], env);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(/^cli-listed\s+-\s+3\.1\.1\s+tcp-0/m);
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      const drained = await runAsync(['drain'], env);
      expect(drained).toMatchObject({ code: 0, stdout: expect.stringMatching(/^node \S+ is draining; it exits once done\n$/) });
      await closed;
      const [code, signal] = await exited;
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(events.map((e) => e.msg)).toEqual(expect.arrayContaining(['admin_drain_requested', 'node_stopping', 'node_stopped']));
      expect(events.map((e) => e.msg)).not.toContain('signal_received');
    } finally {
      if (node.exitCode === null) node.kill('SIGKILL');
    }
  });

  it('--help names the admin verbs; an unknown one is a usage error', () => {
    expect(run(['--help']).stdout).toContain('clients list|show, sessions list|show|discard, kick ID, retained list, drain');
    const verbs = run(['clients', '--help']);
    expect(verbs.status).toBe(0);
    expect(verbs.stdout).toContain('sessions discard ID');
    const bad = run(['sessions', 'wipe']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('use: sessions list, sessions show ID, or sessions discard ID');
  });
});
