import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { startDynamo } from '@fleetmq/testkit';

// The built command, as `npm start` and the package bin run it (`npm test` builds first).
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 15_000, env: { ...process.env, ...env } });
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
      env: { ...process.env, FLEETMQ_LISTENERS: 'tcp://127.0.0.1:0', FLEETMQ_LOG_LEVEL: 'info' },
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
