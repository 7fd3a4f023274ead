/**
 * `npm run bench`: FleetMQ side by side with Mosquitto and Aedes on this machine, in one run.
 * Every scenario runs on each broker in turn (the order rotates per repetition), each run on a
 * freshly started broker; medians and ranges over the repetitions, the ratio FleetMQ/peer, a
 * Markdown table on stdout (or JSON with --json) and an HTML report in bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BROKERS, CLUSTER, ROOT, startTarget, unavailable, versions, type BrokerName, type Target, type TargetName } from './brokers.js';
import { renderHtml } from './html.js';
import { isInterrupted } from './processes.js';
import { machineInfo } from './proc.js';
import { Progress } from './progress.js';
import { cpuMedian, ratios, renderNotes, renderTable, summarize, totalIntegrity, DISPLAY, type BenchReport, type RunRecord, type ScenarioReport } from './report.js';
import { SCENARIOS, selectScenarios, type RunResult, type Scenario } from './scenarios/index.js';

const USAGE = `Usage: npm run bench -- [options]

FleetMQ, Mosquitto and Aedes side by side, each started here on free 127.0.0.1 ports.

Options:
  --quick              short smoke run: 1 repetition, 1 s per scenario, small counts
  --scenarios LIST     comma-separated names, prefix* or a group (single, cluster, all)
  --brokers LIST       subset of fleetmq,mosquitto,aedes (default all three)
  --reps N             repetitions per scenario and broker (default 3; --quick 1)
  --duration S         measured seconds per throughput run (default 5; --quick 1)
  --warmup S           unmeasured seconds before each throughput run (default 1; --quick 0.25)
  --json               print the results as JSON on stdout (the table goes nowhere)
  --out DIR            where the HTML and JSON reports go (default bench/results)
  --list               list the scenarios and exit
  -h, --help           this text

Scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}
`;

/** Bound on one run, whatever happens inside it. */
const RUN_TIMEOUT_MS = 300_000;

interface Options {
  quick: boolean;
  json: boolean;
  reps: number;
  durationS: number;
  warmupS: number;
  scenarios: Scenario[];
  brokers: BrokerName[];
  out: string;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      scenarios: { type: 'string' },
      brokers: { type: 'string' },
      reps: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      out: { type: 'string' },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  if (values.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(20)} ${s.kind.padEnd(8)} ${s.title}\n`);
    return undefined;
  }
  const quick = values.quick ?? false;
  const num = (v: string | undefined, fallback: number, what: string): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${what} must be a positive number, got ${JSON.stringify(v)}`);
    return n;
  };
  const brokers = (values.brokers ?? BROKERS.join(','))
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  for (const b of brokers) if (!(BROKERS as readonly string[]).includes(b)) throw new Error(`unknown broker ${JSON.stringify(b)}; known: ${BROKERS.join(', ')}`);
  return {
    quick,
    json: values.json ?? false,
    reps: Math.round(num(values.reps, quick ? 1 : 3, 'reps')),
    durationS: num(values.duration, quick ? 1 : 5, 'duration'),
    warmupS: num(values.warmup, quick ? 0.25 : 1, 'warmup'),
    scenarios: selectScenarios(values.scenarios),
    brokers: brokers as BrokerName[],
    out: values.out ?? join(ROOT, 'bench/results'),
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
    }),
  ]);
}

function headline(s: Scenario, r: RunResult): string {
  const m = s.metrics[0]!;
  const v = r.metrics[m.key];
  const i = r.integrity;
  return `${m.label} ${v === undefined ? '—' : Math.round(v * 100) / 100} ${m.unit}${i ? `, lost ${i.lost} dup ${i.duplicated} ooo ${i.outOfOrder}` : ''}, runner CPU ${Math.round(r.cpu.runner * 100)}%`;
}

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv);
  if (options === undefined) return 0;
  const startedAt = new Date();
  const machine = machineInfo();
  const skipped: { target: string; reason: string }[] = [];

  // which targets each scenario runs on
  const singles: TargetName[] = [];
  for (const b of options.brokers) {
    const why = unavailable(b);
    if (why) skipped.push({ target: b, reason: why });
    else singles.push(b);
  }
  const clusterWhy = options.scenarios.some((s) => s.kind === 'cluster') ? unavailable(CLUSTER) : undefined;
  if (clusterWhy) skipped.push({ target: CLUSTER, reason: clusterWhy });
  const targetsOf = (s: Scenario): TargetName[] => (s.kind === 'cluster' ? (clusterWhy || !options.brokers.includes('fleetmq') ? [] : [CLUSTER]) : singles);

  // the plan: per scenario, per repetition, every target, the order rotated per repetition
  const plan: { scenario: Scenario; rep: number; target: TargetName }[] = [];
  for (const scenario of options.scenarios) {
    const targets = targetsOf(scenario);
    for (let rep = 1; rep <= options.reps; rep++) {
      const shift = (rep - 1) % Math.max(1, targets.length);
      for (const target of [...targets.slice(shift), ...targets.slice(0, shift)]) plan.push({ scenario, rep, target });
    }
  }

  const reports = new Map<string, ScenarioReport>();
  for (const s of options.scenarios) {
    reports.set(s.name, { name: s.name, title: s.title, kind: s.kind, params: s.params(options.quick), metrics: s.metrics, results: {}, ratios: {}, notes: [] });
  }
  const settings = new Map<TargetName, readonly string[]>();

  const progress = new Progress(plan.length);
  for (const sk of skipped) progress.message(`bench: skipping ${sk.target}: ${sk.reason}`);
  let runner = { cpuSeconds: 0, wallSeconds: 0, maxCores: 0, maxScenario: '' };
  let failures = 0;
  let counter = 0;
  for (const { scenario, rep, target: name } of plan) {
    if (isInterrupted()) break;
    progress.start(`${scenario.name} · ${DISPLAY[name]} · rep ${rep}/${options.reps}`);
    const report = reports.get(scenario.name)!;
    const record: RunRecord = { rep };
    let target: Target | undefined;
    try {
      target = await startTarget(name);
      settings.set(name, target.settings);
      const runId = `r${++counter}${Math.random().toString(36).slice(2, 6)}`;
      const result = await withTimeout(
        scenario.run({ target, quick: options.quick, durationS: options.durationS, warmupS: options.warmupS, runId }),
        RUN_TIMEOUT_MS,
        `${scenario.name} on ${name}`,
      );
      Object.assign(record, result);
      runner.cpuSeconds += result.cpu.runner * result.cpu.seconds;
      runner.wallSeconds += result.cpu.seconds;
      if (result.cpu.runner > runner.maxCores) runner = { ...runner, maxCores: result.cpu.runner, maxScenario: `${scenario.name} on ${DISPLAY[name]}` };
      progress.finish(headline(scenario, result));
    } catch (err) {
      failures++;
      record.error = (err as Error).message.split('\n').slice(0, 4).join(' ');
      progress.finish(`FAILED: ${record.error}`);
    } finally {
      await target?.stop().catch(() => undefined);
    }
    const results = (report.results[name] ??= { runs: [], summary: {}, settings: [] });
    results.runs.push(record);
  }
  progress.end();

  for (const report of reports.values()) {
    for (const [name, results] of Object.entries(report.results) as [TargetName, NonNullable<ScenarioReport['results'][TargetName]>][]) {
      results.summary = summarize(results.runs, report.metrics);
      const integrity = totalIntegrity(results.runs);
      if (integrity) results.integrity = integrity;
      const runnerCpu = cpuMedian(results.runs, (c) => c.runner);
      if (runnerCpu !== undefined) results.runnerCpu = runnerCpu;
      const brokerCpu = cpuMedian(results.runs, (c) => c.broker);
      if (brokerCpu !== undefined) results.brokerCpu = brokerCpu;
      const otherCpu = cpuMedian(results.runs, (c) => c.other);
      if (otherCpu !== undefined) results.otherCpu = otherCpu;
      results.settings = settings.get(name) ?? [];
    }
    ratios(report);
  }

  const bench: BenchReport = {
    schema: 'fleetmq-bench/1',
    command: `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { ...machine, loadAverage: machine.loadAverage },
    versions: versions(),
    options: {
      quick: options.quick,
      reps: options.reps,
      durationS: options.durationS,
      warmupS: options.warmupS,
      scenarios: options.scenarios.map((s) => s.name),
      brokers: options.brokers,
    },
    scenarios: [...reports.values()],
    runner: {
      meanCores: runner.wallSeconds > 0 ? Math.round((runner.cpuSeconds / runner.wallSeconds) * 1000) / 1000 : 0,
      maxCores: runner.maxCores,
      maxScenario: runner.maxScenario,
      cpuTotalSeconds: Math.round(runner.cpuSeconds * 100) / 100,
      wallSeconds: Math.round(runner.wallSeconds * 100) / 100,
    },
    skipped,
  };

  mkdirSync(options.out, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  const jsonPath = join(options.out, `bench-${stamp}.json`);
  const htmlPath = join(options.out, `bench-${stamp}.html`);
  writeFileSync(jsonPath, `${JSON.stringify(bench, null, 2)}\n`);
  writeFileSync(htmlPath, renderHtml(bench));

  if (options.json) process.stdout.write(`${JSON.stringify(bench, null, 2)}\n`);
  else {
    process.stdout.write(`\n${renderTable(bench)}\n\n${renderNotes(bench)}\n`);
    process.stdout.write(
      `\n${machine.cpus} × ${machine.cpuModel}, ${machine.memTotalMiB} MiB, ${machine.kernel}, Node.js ${machine.node}; ` +
        `${Object.entries(bench.versions).map(([k, v]) => `${k} ${v}`).join(', ')}\n`,
    );
  }
  process.stderr.write(`bench: wrote ${htmlPath} and ${jsonPath}\n`);
  return failures > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  // exit at once: sockets of stopped brokers may still be closing
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(2);
  },
);
