/**
 * `npm run bench -- --quick` against all three brokers (FleetMQ from services/edge/dist,
 * Mosquitto from Debian, Aedes from npm), two scenarios, one repetition: the JSON it prints has
 * the documented shape, every run produced its numbers, and FleetMQ lost nothing at QoS 1.
 * A correctness check: no number is compared with a target or a peer here.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../../bench/src/report.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'fleetmq-bench-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', '--silent', 'bench', '--', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('npm run bench --quick', () => {
  it('runs qos0-fanin and qos1 on FleetMQ, Mosquitto and Aedes and reports them as JSON', { timeout: 120_000 }, async () => {
    const { code, stdout, stderr } = await runBench(['--quick', '--scenarios', 'qos0-fanin,qos1', '--json', '--out', out]);
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout.slice(stdout.indexOf('{'))) as BenchReport;

    expect(report.schema).toBe('fleetmq-bench/1');
    expect(report.options).toMatchObject({ quick: true, reps: 1, scenarios: ['qos0-fanin', 'qos1'], brokers: ['fleetmq', 'mosquitto', 'aedes'] });
    expect(report.skipped).toEqual([]);
    expect(report.machine.cpus).toBeGreaterThan(0);
    expect(Object.keys(report.versions)).toEqual(expect.arrayContaining(['fleetmq', 'mosquitto', 'aedes']));
    expect(report.runner.meanCores).toBeGreaterThan(0);
    expect(report.scenarios.map((s) => s.name)).toEqual(['qos0-fanin', 'qos1']);

    for (const scenario of report.scenarios) {
      expect(scenario.metrics.map((m) => m.key)).toEqual(['throughput']);
      for (const broker of ['fleetmq', 'mosquitto', 'aedes'] as const) {
        const results = scenario.results[broker];
        expect(results, `${scenario.name} ${broker}`).toBeDefined();
        expect(results!.runs).toHaveLength(1);
        const [run] = results!.runs;
        expect(run!.error, `${scenario.name} on ${broker}`).toBeUndefined();
        expect(run!.metrics!['throughput']).toBeGreaterThan(0);
        expect(run!.cpu).toMatchObject({ seconds: expect.any(Number), runner: expect.any(Number), broker: expect.any(Number), other: expect.any(Number) });
        expect(run!.integrity).toMatchObject({
          sent: expect.any(Number),
          received: expect.any(Number),
          unique: expect.any(Number),
          lost: expect.any(Number),
          duplicated: expect.any(Number),
          outOfOrder: expect.any(Number),
        });
        expect(results!.summary['throughput']).toMatchObject({ median: run!.metrics!['throughput'], n: 1 });
      }
      for (const peer of ['mosquitto', 'aedes'] as const) expect(scenario.ratios[peer]?.['throughput']).toEqual(expect.any(Number));
    }

    // QoS 1 end to end on FleetMQ: everything published arrived, once
    const qos1 = report.scenarios.find((s) => s.name === 'qos1')!.results.fleetmq!.runs[0]!.integrity!;
    expect(qos1.sent).toBeGreaterThan(0);
    expect(qos1.lost).toBe(0);
    expect(qos1.duplicated).toBe(0);
    expect(qos1.unique).toBe(qos1.sent);

    // the reports were written where asked
    const written = readdirSync(out);
    expect(written.some((f) => /^bench-.*\.html$/.test(f))).toBe(true);
    expect(written.some((f) => /^bench-.*\.json$/.test(f))).toBe(true);
  });
});
