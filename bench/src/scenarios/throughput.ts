/**
 * Throughput scenarios: publishers send numbered 64-byte messages as fast as the broker takes
 * them, subscribers count what arrives. Two windows bound the load so that no broker is
 * measured on how far it lets its queues grow:
 * - end to end: at most `maxOutstanding` deliveries published and not yet delivered;
 * - QoS 1: at most `inflight` unacknowledged PUBLISH packets per publisher.
 * The rate is deliveries counted over the measured window (after a warm-up); afterwards the
 * runner waits for the stragglers and counts lost, duplicated and out-of-order messages.
 */
import { CpuMeter } from '../proc.js';
import { addIntegrity, emptyIntegrity } from '../sequence.js';
import { publishBatch, publishTemplate } from '../wire.js';
import { busAmplification, busSnapshot, openPubSub, type Placement } from './pubsub.js';
import type { RunContext, RunResult } from './types.js';

export interface ThroughputSpec {
  readonly publishers: number;
  readonly subscribers: number;
  topic(runId: string, i: number): string;
  filter(runId: string): string;
  readonly pubQos: 0 | 1;
  readonly subQos: 0 | 1;
  /** QoS 1: unacknowledged PUBLISH packets per publisher. */
  readonly inflight: number;
  /** Deliveries published and not yet delivered, over all subscribers. */
  readonly maxOutstanding: number;
  /** Most messages per socket write. */
  readonly batch: number;
  /** Bound on messages published per run. */
  readonly maxMessages: number;
  readonly placement?: (nodes: number) => Placement;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runThroughput(ctx: RunContext, spec: ThroughputSpec): Promise<RunResult> {
  const { target } = ctx;
  const P = spec.publishers;
  const S = spec.subscribers;
  let delivered = 0;
  let sentTotal = 0;
  let running = false;
  let pumping = false;
  let rr = 0;
  const sent = new Array<number>(P).fill(0);
  const inflight = new Array<number>(P).fill(0);
  const nextPacketId = new Array<number>(P).fill(0);
  let acked = 0;
  const templates = Array.from({ length: P }, (_, i) => publishTemplate(spec.topic(ctx.runId, i), spec.pubQos));

  const pump = (): void => {
    if (!running || pumping) return;
    pumping = true;
    try {
      let progressed = true;
      while (progressed && running) {
        progressed = false;
        for (let k = 0; k < P; k++) {
          const i = (rr + k) % P;
          const pub = ps.pubs[i]!;
          if (!pub.client.writable) continue;
          let room = Math.floor((spec.maxOutstanding - (sentTotal * S - delivered)) / S);
          if (spec.pubQos === 1) room = Math.min(room, spec.inflight - inflight[i]!);
          room = Math.min(room, spec.batch, spec.maxMessages - sentTotal);
          // QoS 0 writes full batches only (fewer, larger writes); QoS 1 refills its window at once
          if (room <= 0 || (spec.pubQos === 0 && room < Math.min(spec.batch, spec.maxMessages - sentTotal))) continue;
          const bytes = publishBatch(templates[i]!, i, sent[i]!, room, 0, () => (nextPacketId[i] = (nextPacketId[i]! % 0xffff) + 1));
          sent[i] = sent[i]! + room;
          sentTotal += room;
          if (spec.pubQos === 1) inflight[i] = inflight[i]! + room;
          pub.client.write(bytes);
          progressed = true;
        }
        rr = (rr + 1) % P;
      }
    } finally {
      pumping = false;
    }
  };

  const ps = await openPubSub(
    target,
    {
      runId: ctx.runId,
      publishers: P,
      subscribers: S,
      topic: (i) => spec.topic(ctx.runId, i),
      filter: spec.filter(ctx.runId),
      subQos: spec.subQos,
      ...(spec.placement ? { placement: spec.placement(target.ports.length) } : {}),
    },
    {
      onMessage: () => {
        delivered++;
      },
      onSubChunk: pump,
      onPuback: (pub) => {
        inflight[pub.index] = inflight[pub.index]! - 1;
        acked++;
      },
      onPubReady: pump,
    },
  );
  try {
    await ps.waitReady();
    const bus0 = await busSnapshot(target);
    const pids = [...target.pids, ...target.supportPids];

    running = true;
    const tStart = performance.now();
    pump();
    await sleep(ctx.warmupS * 1000);
    const d0 = delivered;
    const s0 = sentTotal;
    const t0 = performance.now();
    const cpu = new CpuMeter(pids);
    const end = t0 + ctx.durationS * 1000;
    while (performance.now() < end && sentTotal < spec.maxMessages && !ps.anyClosed()) await sleep(20);
    const t1 = performance.now();
    const d1 = delivered;
    const s1 = sentTotal;
    const cpuShare = cpu.stop();
    running = false;

    // stragglers: everything published should arrive; give up after 1 s without progress
    const expected = (): number => sentTotal * S;
    const unique = (): number => ps.subs.reduce((a, s) => a + s.tracker.unique, 0);
    let last = unique();
    let lastChange = performance.now();
    const drainDeadline = performance.now() + 10_000;
    while (unique() < expected() && performance.now() < drainDeadline && !ps.anyClosed()) {
      await sleep(25);
      const u = unique();
      if (u !== last) {
        last = u;
        lastChange = performance.now();
      } else if (performance.now() - lastChange > 1_000) break;
    }
    const tEnd = performance.now();
    const closedEarly = ps.anyClosed();
    const bus1 = await busSnapshot(target);

    const integrity = emptyIntegrity();
    for (const sub of ps.subs) addIntegrity(integrity, sub.tracker.result(sentTotal));
    const seconds = (t1 - t0) / 1000;
    const result: RunResult = {
      metrics: { throughput: Math.round((d1 - d0) / seconds) },
      integrity,
      cpu: cpuShare,
      extra: {
        measuredSeconds: Math.round(seconds * 1000) / 1000,
        publishRate: Math.round((s1 - s0) / seconds),
        published: sentTotal,
        pubacks: spec.pubQos === 1 ? acked : undefined,
        drainMs: Math.round(tEnd - t1),
        totalSeconds: Math.round((tEnd - tStart) / 10) / 100,
      },
    };
    if (closedEarly) (result.notes ??= []).push('a connection was closed by the broker during the run');
    if (bus0 && bus1) {
      const amp = busAmplification(target, bus0, bus1, sent, ps.placement.pubNode, new Set(ps.subs.map((s) => s.node)));
      result.metrics['amplification'] = amp.amplification;
      result.extra!['bus'] = amp.perNode;
    }
    return result;
  } finally {
    running = false;
    await ps.close();
  }
}
