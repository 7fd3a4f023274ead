/**
 * The HTML report (bench/results/bench-<time>.html): one self-contained page with inline SVG,
 * no scripts and no external assets. Per scenario and metric a bar per broker (median, with
 * the min–max range as a whisker); per latency scenario the percentile distribution and a
 * histogram of the HDR samples of every run of a broker merged; the table and its notes.
 */
import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';
import type { TargetName } from './brokers.js';
import { DISPLAY, formatNumber, renderNotes, renderTable, type BenchReport, type ScenarioReport } from './report.js';

const COLORS: Record<TargetName, string> = { fleetmq: '#2563eb', mosquitto: '#16a34a', aedes: '#dc2626', 'fleetmq-cluster': '#7c3aed' };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function barChart(s: ScenarioReport, metricKey: string): string {
  const metric = s.metrics.find((m) => m.key === metricKey)!;
  const entries = (Object.entries(s.results) as [TargetName, NonNullable<ScenarioReport['results'][TargetName]>][]).filter(([, r]) => r.summary[metricKey] !== undefined);
  if (entries.length === 0) return '';
  const width = 640;
  const rowH = 28;
  const left = 110;
  const right = 150;
  const height = entries.length * rowH + 30;
  const max = Math.max(...entries.map(([, r]) => r.summary[metricKey]!.max)) || 1;
  const x = (v: number): number => left + (v / max) * (width - left - right);
  const bars = entries
    .map(([t, r], i) => {
      const sm = r.summary[metricKey]!;
      const y = 10 + i * rowH;
      return [
        `<text x="${left - 8}" y="${y + 15}" text-anchor="end">${esc(DISPLAY[t])}</text>`,
        `<rect x="${left}" y="${y + 3}" width="${Math.max(1, x(sm.median) - left)}" height="${rowH - 10}" fill="${COLORS[t]}" opacity="0.85"/>`,
        sm.n > 1 ? `<line x1="${x(sm.min)}" x2="${x(sm.max)}" y1="${y + rowH / 2 - 1}" y2="${y + rowH / 2 - 1}" stroke="#111" stroke-width="1.5"/>` : '',
        sm.n > 1 ? `<line x1="${x(sm.min)}" x2="${x(sm.min)}" y1="${y + 6}" y2="${y + rowH - 8}" stroke="#111"/><line x1="${x(sm.max)}" x2="${x(sm.max)}" y1="${y + 6}" y2="${y + rowH - 8}" stroke="#111"/>` : '',
        `<text x="${x(sm.max) + 6}" y="${y + 15}">${esc(formatNumber(sm.median, metric.unit))} ${esc(metric.unit)}</text>`,
      ].join('');
    })
    .join('');
  return `<figure><figcaption>${esc(metric.label)} (${esc(metric.unit)}, ${metric.better} is better; bar = median, whisker = range)</figcaption><svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-size="12" font-family="system-ui, sans-serif">${bars}</svg></figure>`;
}

/** (percentile, value, cumulative count) points of a histogram's percentile distribution. */
function distribution(h: Histogram): { p: number; v: number; count: number }[] {
  const csv = (h.outputPercentileDistribution as unknown as (this: Histogram, ticks: number, scale: number, csv: boolean) => string).call(h, 5, 1, true);
  return csv
    .split('\n')
    .slice(1)
    .map((line) => line.split(','))
    .filter((f) => f.length >= 3 && Number.isFinite(Number(f[0])))
    .map((f) => ({ v: Number(f[0]), p: Number(f[1]) * 100, count: Number(f[2]) }));
}

function mergedHistograms(s: ScenarioReport, name: string): [TargetName, Histogram][] {
  const out: [TargetName, Histogram][] = [];
  for (const [t, r] of Object.entries(s.results) as [TargetName, NonNullable<ScenarioReport['results'][TargetName]>][]) {
    const encoded = r.runs.map((run) => run.histograms?.[name]).filter((x): x is string => x !== undefined);
    if (encoded.length === 0) continue;
    const merged = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
    for (const e of encoded) {
      const h = hdr.decodeFromCompressedBase64(e);
      merged.add(h);
      h.destroy();
    }
    out.push([t, merged]);
  }
  return out;
}

function percentileChart(series: [TargetName, Histogram][], unit: string, scale: number): string {
  const width = 640;
  const height = 260;
  const left = 60;
  const bottom = 30;
  const top = 10;
  const right = 20;
  const ticks = [0, 50, 90, 99, 99.9, 99.99];
  const xOf = (p: number): number => Math.log10(1 / Math.max(1e-5, 1 - Math.min(p, 99.999) / 100));
  const xMax = xOf(99.999);
  const maxV = Math.max(...series.map(([, h]) => h.maxValue / scale)) || 1;
  const X = (p: number): number => left + (xOf(p) / xMax) * (width - left - right);
  const Y = (v: number): number => top + (1 - Math.log10(Math.max(1, v)) / Math.log10(Math.max(10, maxV * 1.2))) * (height - top - bottom);
  const grid = ticks.map((p) => `<line x1="${X(p)}" x2="${X(p)}" y1="${top}" y2="${height - bottom}" stroke="#ddd"/><text x="${X(p)}" y="${height - bottom + 14}" text-anchor="middle">p${p}</text>`).join('');
  const yTicks: number[] = [];
  for (let v = 1; v <= maxV * 1.2; v *= 10) yTicks.push(v);
  const yGrid = yTicks.map((v) => `<line x1="${left}" x2="${width - right}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/><text x="${left - 6}" y="${Y(v) + 4}" text-anchor="end">${formatNumber(v, unit)}</text>`).join('');
  const lines = series
    .map(([t, h]) => {
      const pts = distribution(h).map((d) => `${X(d.p).toFixed(1)},${Y(d.v / scale).toFixed(1)}`);
      return `<polyline fill="none" stroke="${COLORS[t]}" stroke-width="2" points="${pts.join(' ')}"/>`;
    })
    .join('');
  // bottom right: the curves rise to the right, so that corner stays clear
  const legendX = width - right - series.length * 110;
  const legendY = height - bottom - 22;
  const legend = series.map(([t], i) => `<rect x="${legendX + i * 110}" y="${legendY}" width="12" height="12" fill="${COLORS[t]}"/><text x="${legendX + 18 + i * 110}" y="${legendY + 10}">${esc(DISPLAY[t])}</text>`).join('');
  return `<svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-size="11" font-family="system-ui, sans-serif">${yGrid}${grid}${lines}${legend}<text x="12" y="${top + 10}" transform="rotate(-90 12 ${top + 10})" text-anchor="end">${esc(unit)} (log)</text></svg>`;
}

function histogramChart(series: [TargetName, Histogram][], unit: string, scale: number): string {
  // counts in half-octave bins of the value, from the cumulative counts of the distribution
  const width = 640;
  const height = 220;
  const left = 60;
  const bottom = 30;
  const top = 10;
  const right = 20;
  const binOf = (v: number): number => Math.floor(2 * Math.log2(Math.max(1, v)));
  const perSeries = series.map(([t, h]) => {
    const bins = new Map<number, number>();
    let prev = 0;
    for (const d of distribution(h)) {
      const c = d.count - prev;
      prev = d.count;
      if (c > 0) bins.set(binOf(d.v / scale), (bins.get(binOf(d.v / scale)) ?? 0) + c);
    }
    const total = h.totalCount || 1;
    return { t, bins, total };
  });
  const all = perSeries.flatMap((s) => [...s.bins.keys()]);
  if (all.length === 0) return '';
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  const nb = hi - lo + 1;
  const slot = (width - left - right) / nb;
  const barW = Math.max(1, slot / Math.max(1, perSeries.length) - 1);
  const maxFrac = Math.max(...perSeries.flatMap((s) => [...s.bins.values()].map((c) => c / s.total))) || 1;
  const Y = (f: number): number => top + (1 - f / maxFrac) * (height - top - bottom);
  const bars = perSeries
    .map((s, k) =>
      [...s.bins.entries()]
        .map(([b, c]) => {
          const f = c / s.total;
          return `<rect x="${(left + (b - lo) * slot + k * (barW + 1)).toFixed(1)}" y="${Y(f).toFixed(1)}" width="${barW.toFixed(1)}" height="${(height - bottom - Y(f)).toFixed(1)}" fill="${COLORS[s.t]}" opacity="0.85"><title>${esc(DISPLAY[s.t])}: ${(f * 100).toFixed(2)}% in [${formatNumber(2 ** (b / 2), unit)}, ${formatNumber(2 ** ((b + 1) / 2), unit)}) ${esc(unit)}</title></rect>`;
        })
        .join(''),
    )
    .join('');
  const legend = perSeries
    .map((p, i) => `<rect x="${width - right - (perSeries.length - i) * 110}" y="${top}" width="12" height="12" fill="${COLORS[p.t]}"/><text x="${width - right - (perSeries.length - i) * 110 + 18}" y="${top + 10}">${esc(DISPLAY[p.t])}</text>`)
    .join('');
  const labels: string[] = [];
  for (let b = lo; b <= hi; b += 2) labels.push(`<text x="${(left + (b - lo) * slot).toFixed(1)}" y="${height - bottom + 14}">${formatNumber(2 ** (b / 2), unit)}</text>`);
  return `<svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-size="11" font-family="system-ui, sans-serif"><line x1="${left}" x2="${width - right}" y1="${height - bottom}" y2="${height - bottom}" stroke="#999"/>${bars}${legend}${labels.join('')}<text x="${left - 6}" y="${top + 10}" text-anchor="end">${(maxFrac * 100).toFixed(0)}%</text><text x="${width - right}" y="${height - 4}" text-anchor="end">${esc(unit)} (half-octave bins)</text></svg>`;
}

function latencySection(s: ScenarioReport): string {
  const out: string[] = [];
  for (const [name, unit, scale] of [
    ['latency', 'µs', 1],
    ['takeover', 'ms', 1000],
  ] as const) {
    const series = mergedHistograms(s, name);
    if (series.length === 0) continue;
    out.push(`<figure><figcaption>${esc(name)}: percentile distribution (all runs of a broker merged)</figcaption>${percentileChart(series, unit, scale)}</figure>`);
    out.push(`<figure><figcaption>${esc(name)}: histogram (share of samples per bin)</figcaption>${histogramChart(series, unit, scale)}</figure>`);
    for (const [, h] of series) h.destroy();
  }
  return out.join('');
}

export function renderHtml(report: BenchReport): string {
  const sections = report.scenarios
    .map((s) => {
      const params = Object.entries(s.params).map(([k, v]) => `${esc(k)} ${esc(String(v))}`).join(', ');
      const charts = s.metrics.map((m) => barChart(s, m.key)).join('');
      return `<section><h2>${esc(s.name)}: ${esc(s.title)}</h2><p class="params">${params}</p>${charts}${latencySection(s)}</section>`;
    })
    .join('\n');
  const versions = Object.entries(report.versions).map(([k, v]) => `${esc(k)} ${esc(v)}`).join(' · ');
  const m = report.machine;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FleetMQ benchmark ${esc(report.startedAt)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#111}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;border-top:1px solid #ddd;padding-top:1rem}
figure{margin:0.8rem 0}figcaption{font-size:0.85rem;color:#444;margin-bottom:0.2rem}
pre{font-size:11px;overflow-x:auto;background:#f6f6f6;padding:0.6rem}.params{color:#555;font-size:0.85rem}
</style></head><body>
<h1>FleetMQ side-by-side benchmark</h1>
<p>${esc(report.startedAt)} → ${esc(report.finishedAt)} · <code>${esc(report.command)}</code></p>
<p>${m.cpus} × ${esc(m.cpuModel)}, ${m.memTotalMiB} MiB, ${esc(m.kernel)}, Node.js ${esc(m.node)}, ulimit -n ${m.fdLimit}</p>
<p>${versions}</p>
${sections}
<section><h2>Table</h2><pre>${esc(renderTable(report))}</pre><pre>${esc(renderNotes(report))}</pre></section>
</body></html>
`;
}
