/**
 * Connection scenarios: a storm of CONNECT/CONNACK handshakes (connections/s), the broker's
 * resident memory per idle connection, and (cluster) session takeover latency. Connections
 * are spread round-robin over the target's nodes, and capped by file descriptors and
 * ephemeral ports (see limits.ts), with a note when capped.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';
import { RawClient, connectMany } from '../client.js';
import { connectionBudget } from '../limits.js';
import { CpuMeter, rssBytes } from '../proc.js';
import type { StormWorkerInput, StormWorkerReply } from '../storm-worker.js';
import { connectPacket } from '../wire.js';
import { newHistogram } from './latency.js';
import type { RunContext, RunResult } from './types.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How many worker threads open the connections of a storm (one per core, at most 4). */
export const STORM_WORKERS = Math.max(1, Math.min(4, availableParallelism()));

interface Opened {
  connected: number;
  failed: number;
  firstError: string | undefined;
  seconds: number;
  handshake: Histogram;
  /** Connections still open now (not closed by the broker). */
  openCount(): Promise<number>;
  /** DISCONNECT all, wait (bounded) for the broker to close them, stop the workers. */
  close(): Promise<void>;
}

type Opened_ = Extract<StormWorkerReply, { type: 'opened' }>;

/**
 * Opens `n` connections from STORM_WORKERS worker threads (bench/dist/storm-worker.mjs, built
 * next to the runner's bundle), `concurrency` handshakes in flight in total, pre-built CONNECTs,
 * each handshake timed. The clock runs from the moment every worker is ready and told to go
 * until the last CONNACK. Clients come from 16 loopback source addresses (limits.ts): from one,
 * the kernel's search for a free ephemeral port grows with every open connection and becomes
 * the runner's main cost.
 */
async function openMany(ctx: RunContext, n: number, concurrency: number): Promise<Opened> {
  const count = Math.max(1, Math.min(STORM_WORKERS, n));
  const script = new URL('./storm-worker.mjs', import.meta.url);
  const workers = Array.from({ length: count }, (_, w) => {
    const workerData: StormWorkerInput = {
      ports: [...ctx.target.ports],
      runId: ctx.runId,
      from: w,
      to: n,
      step: count,
      concurrency: Math.max(1, Math.round(concurrency / count)),
    };
    return new Worker(script, { workerData });
  });
  const next = <T extends StormWorkerReply['type']>(worker: Worker, type: T): Promise<Extract<StormWorkerReply, { type: T }>> =>
    new Promise((resolve, reject) => {
      const onMessage = (m: StormWorkerReply): void => {
        if (m.type !== type) return;
        worker.off('message', onMessage);
        worker.off('error', reject);
        resolve(m as Extract<StormWorkerReply, { type: T }>);
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
  const stopAll = async (): Promise<void> => {
    await Promise.all(workers.map((w) => w.terminate()));
  };
  try {
    await Promise.all(workers.map((w) => next(w, 'ready')));
    const opened = workers.map((w) => next(w, 'opened'));
    const t0 = performance.now();
    for (const w of workers) w.postMessage({ type: 'go' });
    const replies: Opened_[] = await Promise.all(opened);
    const seconds = (performance.now() - t0) / 1000;
    const handshake = newHistogram();
    for (const r of replies) {
      const h = hdr.decodeFromCompressedBase64(r.handshake);
      handshake.add(h);
      h.destroy();
    }
    return {
      connected: replies.reduce((a, r) => a + r.connected, 0),
      failed: replies.reduce((a, r) => a + r.failed, 0),
      firstError: replies.find((r) => r.firstError !== undefined)?.firstError,
      seconds,
      handshake,
      openCount: async () => {
        const counts = workers.map((w) => next(w, 'open'));
        for (const w of workers) w.postMessage({ type: 'count' });
        return (await Promise.all(counts)).reduce((a, r) => a + r.count, 0);
      },
      close: async () => {
        const closed = workers.map((w) => next(w, 'closed'));
        for (const w of workers) w.postMessage({ type: 'close' });
        await Promise.race([Promise.all(closed), sleep(20_000)]);
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function notesOf(budgetNote: string | undefined, failed: number, firstError: string | undefined): string[] {
  const notes: string[] = [];
  if (budgetNote) notes.push(budgetNote);
  if (failed > 0) notes.push(`${failed} connection(s) failed; first: ${firstError}`);
  return notes;
}

export async function runStorm(ctx: RunContext, requested: number, concurrency: number): Promise<RunResult> {
  const { target } = ctx;
  const budget = connectionBudget(requested, target.pids);
  const cpu = new CpuMeter([...target.pids, ...target.supportPids]);
  const opened = await openMany(ctx, budget.allowed, concurrency);
  const cpuShare = cpu.stop();
  const rss = target.pids.reduce((a, pid) => a + (rssBytes(pid) ?? 0), 0);
  try {
    const notes = notesOf(budget.note, opened.failed, opened.firstError);
    return {
      metrics: { rate: Math.round(opened.connected / opened.seconds) },
      cpu: cpuShare,
      histograms: { handshake: hdr.encodeIntoCompressedBase64(opened.handshake) },
      extra: {
        requested,
        connections: budget.allowed,
        connected: opened.connected,
        failed: opened.failed,
        concurrency,
        workers: Math.min(STORM_WORKERS, budget.allowed),
        seconds: Math.round(opened.seconds * 1000) / 1000,
        handshakeP50Us: opened.handshake.getValueAtPercentile(50),
        handshakeP99Us: opened.handshake.getValueAtPercentile(99),
        brokerRssMiB: Math.round((rss / 2 ** 20) * 10) / 10,
      },
      ...(notes.length ? { notes } : {}),
    };
  } finally {
    opened.handshake.destroy();
    await opened.close();
  }
}

export async function runMemory(ctx: RunContext, requested: number, concurrency: number, settleMs: number): Promise<RunResult> {
  const { target } = ctx;
  const pid = target.pids[0]!;
  const budget = connectionBudget(requested, target.pids);
  await sleep(Math.min(1_000, settleMs));
  const before = rssBytes(pid) ?? 0;
  const cpu = new CpuMeter([...target.pids, ...target.supportPids]);
  const opened = await openMany(ctx, budget.allowed, concurrency);
  const cpuShare = cpu.stop();
  try {
    await sleep(settleMs);
    const after = rssBytes(pid) ?? 0;
    const n = opened.connected;
    const notes = notesOf(budget.note, opened.failed, opened.firstError);
    const stillOpen = await opened.openCount();
    if (stillOpen < n) notes.push(`${n - stillOpen} idle connection(s) were closed by the broker before RSS was read`);
    return {
      metrics: { perConn: n > 0 ? Math.round(((after - before) / n / 1024) * 100) / 100 : Number.NaN },
      cpu: cpuShare,
      extra: {
        requested,
        connections: budget.allowed,
        connected: n,
        stillOpen,
        rssBeforeMiB: Math.round((before / 2 ** 20) * 10) / 10,
        rssAfterMiB: Math.round((after / 2 ** 20) * 10) / 10,
        settleMs,
      },
      ...(notes.length ? { notes } : {}),
    };
  } finally {
    opened.handshake.destroy();
    await opened.close();
  }
}

/**
 * Session takeover across nodes: `sessions` clients connect (clean session false) to node
 * i % 3 and subscribe at QoS 1; then, one at a time, the same client ID connects to the next
 * node, and the time from writing its CONNECT to reading CONNACK is recorded. Each new CONNACK
 * should say session present, and each old connection should be closed by its node.
 */
export async function runTakeover(ctx: RunContext, sessions: number): Promise<RunResult> {
  const { target } = ctx;
  const nodes = target.ports.length;
  const hist = newHistogram();
  const old = await connectMany(sessions, 20, async (i) => {
    const c = await RawClient.connect(target.ports[i % nodes]!, { clientId: `${ctx.runId}-t${i}`, clean: false });
    await c.subscribe(`bench/${ctx.runId}/takeover/${i}`, 1);
    return c;
  });
  const taken: RawClient[] = [];
  let failed = 0;
  let noSession = 0;
  let firstError: string | undefined;
  const cpu = new CpuMeter([...target.pids, ...target.supportPids]);
  try {
    for (let i = 0; i < sessions; i++) {
      const connect = connectPacket({ clientId: `${ctx.runId}-t${i}`, clean: false });
      try {
        const t = performance.now();
        const { client, sessionPresent } = await RawClient.open(target.ports[(i + 1) % nodes]!, connect, 15_000);
        hist.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
        taken.push(client);
        if (!sessionPresent) noSession++;
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    }
    const cpuShare = cpu.stop();
    const deadline = performance.now() + 5_000;
    while (old.some((c) => !c.closed) && performance.now() < deadline) await sleep(50);
    const oldOpen = old.filter((c) => !c.closed).length;
    const notes: string[] = [];
    if (failed > 0) notes.push(`${failed} takeover CONNECT(s) failed; first: ${firstError}`);
    if (noSession > 0) notes.push(`${noSession} takeover CONNACK(s) without session present`);
    if (oldOpen > 0) notes.push(`${oldOpen} old connection(s) still open 5 s after the takeover`);
    return {
      metrics: { p50: hist.getValueAtPercentile(50) / 1000, p99: hist.getValueAtPercentile(99) / 1000 },
      cpu: cpuShare,
      histograms: { takeover: hdr.encodeIntoCompressedBase64(hist) },
      extra: { sessions, failed, withoutSession: noSession, oldStillOpen: oldOpen, maxMs: hist.maxValue / 1000 },
      ...(notes.length ? { notes } : {}),
    };
  } finally {
    hist.destroy();
    for (const c of [...old, ...taken]) c.destroy();
  }
}
