/**
 * The benchmark's results as data (the `--json` document and the source of the table and the
 * HTML report): per scenario and target, every run, and per metric the median and range over
 * the repetitions; the ratio FleetMQ/peer of the medians for every scenario and metric.
 */
import type { TargetName } from './brokers.js';
import type { CpuShare, MachineInfo } from './proc.js';
import { addIntegrity, emptyIntegrity, type Integrity } from './sequence.js';
import type { MetricDef, RunResult, Scenario } from './scenarios/index.js';

export interface RunRecord extends Partial<RunResult> {
  rep: number;
  /** Why the run failed (then there are no metrics). */
  error?: string;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export interface TargetResults {
  runs: RunRecord[];
  summary: Record<string, Summary>;
  /** Summed over every run. */
  integrity?: Integrity;
  /** Median runner CPU over the runs, in cores. */
  runnerCpu?: number;
  /** Median CPU of the broker's processes over the runs, in cores. */
  brokerCpu?: number;
  /** Median CPU of everything else on the machine over the runs, in cores (noise). */
  otherCpu?: number;
  settings: readonly string[];
}

export interface ScenarioReport {
  name: string;
  title: string;
  kind: Scenario['kind'];
  params: Record<string, number | string>;
  metrics: readonly MetricDef[];
  results: Partial<Record<TargetName, TargetResults>>;
  /** FleetMQ median ÷ peer median, by peer, by metric (single-broker scenarios). */
  ratios: Partial<Record<TargetName, Record<string, number>>>;
  notes: string[];
}

export interface BenchReport {
  schema: 'fleetmq-bench/1';
  command: string;
  startedAt: string;
  finishedAt: string;
  machine: MachineInfo;
  versions: Record<string, string>;
  options: { quick: boolean; reps: number; durationS: number; warmupS: number; scenarios: string[]; brokers: string[] };
  scenarios: ScenarioReport[];
  /** The runner's own CPU over all measured windows. */
  runner: { meanCores: number; maxCores: number; maxScenario: string; cpuTotalSeconds: number; wallSeconds: number };
  skipped: { target: string; reason: string }[];
}

export function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export function summarize(runs: readonly RunRecord[], metrics: readonly MetricDef[]): Record<string, Summary> {
  const out: Record<string, Summary> = {};
  for (const m of metrics) {
    const values = runs.map((r) => r.metrics?.[m.key]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    if (values.length === 0) continue;
    out[m.key] = { median: median(values), min: Math.min(...values), max: Math.max(...values), n: values.length };
  }
  return out;
}

export function totalIntegrity(runs: readonly RunRecord[]): Integrity | undefined {
  const withIntegrity = runs.filter((r) => r.integrity !== undefined);
  if (withIntegrity.length === 0) return undefined;
  return withIntegrity.reduce((acc, r) => addIntegrity(acc, r.integrity!), emptyIntegrity());
}

export function ratios(report: ScenarioReport): void {
  const ours = report.results['fleetmq'];
  if (ours === undefined) return;
  for (const peer of ['mosquitto', 'aedes'] as const) {
    const theirs = report.results[peer];
    if (theirs === undefined) continue;
    const r: Record<string, number> = {};
    for (const m of report.metrics) {
      const a = ours.summary[m.key]?.median;
      const b = theirs.summary[m.key]?.median;
      if (a !== undefined && b !== undefined && b !== 0) r[m.key] = Math.round((a / b) * 100) / 100;
    }
    report.ratios[peer] = r;
  }
}

export function cpuMedian(runs: readonly RunRecord[], pick: (c: CpuShare) => number): number | undefined {
  const values = runs.filter((r) => r.cpu !== undefined).map((r) => pick(r.cpu!));
  return values.length ? Math.round(median(values) * 1000) / 1000 : undefined;
}

// ------------------------------------------------------------------------------------- text

const DISPLAY: Record<TargetName, string> = { fleetmq: 'FleetMQ', mosquitto: 'Mosquitto', aedes: 'Aedes', 'fleetmq-cluster': 'FleetMQ ×3' };

/** 123456 → "123.5k"; small and fractional values keep their precision. */
export function formatNumber(x: number, unit: string): string {
  if (!Number.isFinite(x)) return '—';
  if (unit === 'KiB' || unit === '×' || unit === 'ms') return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
  const abs = Math.abs(x);
  if (abs >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (abs >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  return Math.round(x).toLocaleString('en-US');
}

function cell(s: Summary | undefined, unit: string): string {
  if (s === undefined) return '—';
  const med = formatNumber(s.median, unit);
  return s.n > 1 ? `${med} (${formatNumber(s.min, unit)}–${formatNumber(s.max, unit)})` : med;
}

function integrityCell(i: Integrity | undefined): string {
  return i === undefined ? '—' : `${i.lost}/${i.duplicated}/${i.outOfOrder}`;
}

/**
 * A Markdown table: one row per scenario and metric, medians with (min–max) over the
 * repetitions, the ratio FleetMQ/peer, lost/duplicated/out-of-order per broker (summed over the
 * runs), each broker's CPU (median, % of one core: about 100 % means its one thread was the
 * limit), the runner's CPU and the CPU everything else on the machine used meanwhile (each the
 * highest of the brokers' medians).
 */
export function renderTable(report: BenchReport): string {
  const cols = ['fleetmq', 'mosquitto', 'aedes'] as const;
  const header = ['scenario', 'metric', 'FleetMQ', 'Mosquitto', 'Aedes', 'FleetMQ/Mosquitto', 'FleetMQ/Aedes', 'lost/dup/ooo F · M · A', 'broker CPU F · M · A', 'runner CPU', 'other CPU'];
  const pct = (x: number): string => `${Math.round(x * 100)}%`;
  const maxOf = (s: ScenarioReport, pick: (r: TargetResults) => number | undefined): string => {
    const v = Object.values(s.results)
      .map((r) => (r ? pick(r) : undefined))
      .filter((x): x is number => x !== undefined);
    return v.length ? pct(Math.max(...v)) : '';
  };
  const rows: string[][] = [];
  for (const s of report.scenarios) {
    s.metrics.forEach((m, k) => {
      const row: string[] = [k === 0 ? s.name : '', `${m.label} (${m.unit}, ${m.better})`];
      if (s.kind === 'cluster') {
        const c = s.results['fleetmq-cluster'];
        row.push(`×3 nodes: ${cell(c?.summary[m.key], m.unit)}`, '—', '—', '—', '—');
        row.push(k === 0 ? integrityCell(c?.integrity) : '');
        row.push(k === 0 && c?.brokerCpu !== undefined ? `${pct(c.brokerCpu)} (all processes)` : '');
      } else {
        for (const t of cols) row.push(cell(s.results[t]?.summary[m.key], m.unit));
        for (const peer of ['mosquitto', 'aedes'] as const) {
          const r = s.ratios[peer]?.[m.key];
          row.push(r === undefined ? '—' : `${r.toFixed(2)}×`);
        }
        row.push(k === 0 ? cols.map((t) => integrityCell(s.results[t]?.integrity)).join(' · ') : '');
        row.push(k === 0 ? cols.map((t) => (s.results[t]?.brokerCpu !== undefined ? pct(s.results[t]!.brokerCpu!) : '—')).join(' · ') : '');
      }
      row.push(k === 0 ? maxOf(s, (r) => r.runnerCpu) : '', k === 0 ? maxOf(s, (r) => r.otherCpu) : '');
      rows.push(row);
    });
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** Notes under the table: caps, failed runs, settings, the runner's CPU. */
export function renderNotes(report: BenchReport): string {
  const out: string[] = [];
  for (const s of report.scenarios) {
    for (const n of s.notes) out.push(`- ${s.name}: ${n}`);
    // the same note from several runs is printed once, with where it came from
    const notes = new Map<string, string[]>();
    for (const [t, r] of Object.entries(s.results)) {
      for (const run of r?.runs ?? []) {
        const where = `${DISPLAY[t as TargetName]} rep ${run.rep}`;
        for (const n of [...(run.error ? [`FAILED: ${run.error}`] : []), ...(run.notes ?? [])]) {
          const list = notes.get(n) ?? [];
          list.push(where);
          notes.set(n, list);
        }
      }
    }
    for (const [n, where] of notes) out.push(`- ${s.name} (${where.length > 3 ? `${where.length} runs` : where.join(', ')}): ${n}`);
  }
  for (const sk of report.skipped) out.push(`- skipped ${sk.target}: ${sk.reason}`);
  const r = report.runner;
  out.push(
    `- runner CPU: ${Math.round(r.meanCores * 100)}% of one core on average over the measured windows ` +
      `(${Math.round((r.meanCores / report.machine.cpus) * 100)}% of the machine's ${report.machine.cpus} cores), ` +
      `at most ${Math.round(r.maxCores * 100)}% (${r.maxScenario}); ${r.cpuTotalSeconds.toFixed(1)} s CPU in ${r.wallSeconds.toFixed(1)} s measured`,
  );
  return out.join('\n');
}

export { DISPLAY };
