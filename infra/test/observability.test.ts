import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, parseConfig, startNode, type RunningNode } from '@fleetmq/edge';
import { buildDashboard, dashboardText } from '../src/dashboard.js';
import { EDGE_METRICS, PROCESS_METRICS, knownSeries, seriesIn } from '../src/metrics.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const known = knownSeries();

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; datasource: { uid: string } }[];
}

/** A counter is only meaningful through rate() or increase(); a gauge never is. */
function misusedMetrics(expr: string): string[] {
  const wrong: string[] = [];
  for (const name of seriesIn(expr)) {
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const type = (EDGE_METRICS as Record<string, string>)[name] ?? (EDGE_METRICS as Record<string, string>)[base] ?? (name.endsWith('_total') ? 'counter' : 'gauge');
    const insideRate = new RegExp(`(rate|increase)\\(${name}[{\\[]`).test(expr);
    const cumulative = type === 'counter' || (type === 'histogram' && name !== base);
    if (cumulative !== insideRate) wrong.push(name);
  }
  return wrong;
}

describe('Grafana dashboard', () => {
  const dashboard = buildDashboard() as { panels: Panel[]; templating: { list: { name: string; type: string; query: unknown }[] } };
  const panels = dashboard.panels.filter((p) => p.type !== 'row');
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

  it('is the committed infra/grafana/fleetmq-dashboard.json (npm run dashboard rewrites it)', () => {
    expect(read('infra/grafana/fleetmq-dashboard.json')).toBe(dashboardText());
  });

  it('queries only metrics the edge exports, counters through rate()', () => {
    for (const expr of exprs) {
      expect(seriesIn(expr).filter((s) => !known.has(s)), expr).toEqual([]);
      expect(misusedMetrics(expr), expr).toEqual([]);
    }
  });

  it('has the panels operators look for', () => {
    const used = new Set(exprs.flatMap(seriesIn));
    for (const metric of [
      'fleetmq_connections',
      'fleetmq_messages_received_total',
      'fleetmq_messages_sent_total',
      'fleetmq_messages_dropped_total',
      'fleetmq_queued_messages',
      'fleetmq_inflight_messages',
      'fleetmq_takeovers_total',
      'fleetmq_auth_attempts_total',
      'fleetmq_limit_hits_total',
      'fleetmq_bus_messages_received_total',
      'fleetmq_backend_request_duration_seconds_bucket',
      'fleetmq_backend_up',
      'nodejs_eventloop_lag_seconds',
      'fleetmq_ready',
      'fleetmq_draining',
    ]) {
      expect(used.has(metric), metric).toBe(true);
    }
    expect(exprs.some((e) => /histogram_quantile\(0\.99, sum by \(le, backend\)/.test(e))).toBe(true);
    expect(exprs.some((e) => e.includes('sum by (listener, protocol) (fleetmq_connections'))).toBe(true);
  });

  it('takes its data source from a variable, and lays panels out on the 24-column grid without overlap', () => {
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
    }
    for (const p of panels) {
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      for (const t of p.targets ?? []) expect(t.datasource.uid).toBe('${datasource}');
    }
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
  });
});

describe('Prometheus alert rules', () => {
  const rules = (parse(read('infra/prometheus/alerts.yml')) as { groups: { rules: { alert: string; expr: string; for: string; labels: { severity: string }; annotations: Record<string, string> }[] }[] }).groups.flatMap(
    (g) => g.rules,
  );
  const guide = read('docs/operations.md');

  it('covers node not ready, backend down, drops, event-loop lag, auth failures and queue length', () => {
    const byExpr = (metric: string) => rules.filter((r) => r.expr.includes(metric)).map((r) => r.alert);
    expect(byExpr('fleetmq_ready')).toEqual(['FleetmqNodeNotReady']);
    expect(byExpr('fleetmq_backend_up')).toEqual(['FleetmqBackendDown']);
    expect(byExpr('fleetmq_messages_dropped_total')).toEqual(['FleetmqMessagesDropped']);
    expect(byExpr('nodejs_eventloop_lag_seconds')).toEqual(['FleetmqEventLoopLag']);
    expect(byExpr('fleetmq_auth_attempts_total')).toEqual(['FleetmqAuthFailureSpike']);
    expect(byExpr('fleetmq_queued_messages')).toEqual(['FleetmqQueueLengthHigh']);
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
  });

  it('uses only metrics the edge exports, counters through rate()', () => {
    for (const r of rules) {
      expect(seriesIn(r.expr).filter((s) => !known.has(s)), r.alert).toEqual([]);
      expect(misusedMetrics(r.expr), r.alert).toEqual([]);
    }
  });

  it('gives every alert a severity, a duration, a summary and a runbook section in docs/operations.md', () => {
    for (const r of rules) {
      expect(['critical', 'warning'], r.alert).toContain(r.labels.severity);
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
      expect(r.annotations.summary, r.alert).toBeTruthy();
      expect(r.annotations.runbook_url).toBe(`docs/operations.md#${r.alert.toLowerCase()}`);
      expect(guide, r.alert).toContain(`\n### ${r.alert}\n`);
    }
  });

  it('documents every metric of the contract in the operator guide', () => {
    for (const name of Object.keys(EDGE_METRICS)) expect(guide, name).toContain(`\`${name}`);
  });
});

describe('the metric contract against a running edge node', () => {
  let node: RunningNode;
  beforeAll(async () => {
    const config = parseConfig({ listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], ops: { host: '127.0.0.1', port: 0 }, log: { level: 'silent' } });
    node = await startNode(config, createLogger('silent'));
  });
  afterAll(() => node?.stop());

  it('exports every metric the dashboard and the alerts use, with the type they assume', async () => {
    const res = await fetch(`http://127.0.0.1:${node.opsAddress()!.port}/metrics`);
    expect(res.status).toBe(200);
    const types = new Map([...(await res.text()).matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name, type]) => [name!, type!]));
    for (const [name, type] of Object.entries(EDGE_METRICS)) expect(types.get(name), name).toBe(type);
    for (const name of PROCESS_METRICS) expect(types.has(name), name).toBe(true);
  });
});
