/**
 * QoS 1 latency at a fixed, moderate rate: one publisher sends `rate` messages per second (QoS
 * 1), one subscriber (QoS 1) receives them; each payload carries the time it was written to
 * the socket (performance.now(), same process, same clock), and the subscriber records
 * receive time minus that in an HDR histogram (µs, 3 significant digits). The warm-up is not
 * recorded. What is measured is publisher write → subscriber read through the broker,
 * including both loopback hops and the runner's own event loop.
 */
import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';
import { CpuMeter } from '../proc.js';
import { emptyIntegrity, addIntegrity } from '../sequence.js';
import { publishBatch, publishTemplate } from '../wire.js';
import { busAmplification, busSnapshot, openPubSub } from './pubsub.js';
import type { RunContext, RunResult } from './types.js';

export interface LatencySpec {
  /** Messages per second. */
  readonly rate: number;
  /** Seconds recorded (after the warm-up). */
  readonly seconds: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

export async function runLatency(ctx: RunContext, spec: LatencySpec): Promise<RunResult> {
  const { target } = ctx;
  const histogram = newHistogram();
  let recordFrom = Number.POSITIVE_INFINITY;
  let recordUntil = Number.POSITIVE_INFINITY;
  let acked = 0;
  const topic = `bench/${ctx.runId}/latency`;
  const template = publishTemplate(topic, 1);
  const ps = await openPubSub(
    target,
    { runId: ctx.runId, publishers: 1, subscribers: 1, topic: () => topic, filter: topic, subQos: 1 },
    {
      onMessage: (_sub, view) => {
        if (view.sentAt >= recordFrom && view.sentAt < recordUntil) {
          histogram.recordValue(Math.max(1, Math.round((performance.now() - view.sentAt) * 1000)));
        }
      },
      onPuback: () => {
        acked++;
      },
    },
  );
  try {
    await ps.waitReady();
    const bus0 = await busSnapshot(target);
    const pub = ps.pubs[0]!;
    let sent = 0;
    let packetId = 0;
    const nextPacketId = (): number => (packetId = (packetId % 0xffff) + 1);
    const start = performance.now();
    const total = Math.round(spec.rate * (ctx.warmupS + spec.seconds));
    // a 1 ms timer; each tick sends what the schedule says is due (usually one message),
    // stamped with the moment it is written
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * spec.rate)) - sent;
      for (let k = 0; k < due; k++) {
        pub.client.write(publishBatch(template, 0, sent, 1, performance.now(), nextPacketId));
        sent++;
      }
    }, 1);
    await sleep(ctx.warmupS * 1000);
    recordFrom = performance.now();
    const cpu = new CpuMeter([...target.pids, ...target.supportPids]);
    while (sent < total && !ps.anyClosed()) await sleep(20);
    recordUntil = performance.now();
    const cpuShare = cpu.stop();
    clearInterval(timer);
    const deadline = performance.now() + 5_000;
    while (ps.subs[0]!.tracker.unique < sent && performance.now() < deadline && !ps.anyClosed()) await sleep(20);
    const bus1 = await busSnapshot(target);

    const integrity = addIntegrity(emptyIntegrity(), ps.subs[0]!.tracker.result(sent));
    const result: RunResult = {
      metrics: {
        p50: histogram.getValueAtPercentile(50),
        p99: histogram.getValueAtPercentile(99),
        p999: histogram.getValueAtPercentile(99.9),
      },
      integrity,
      cpu: cpuShare,
      histograms: { latency: hdr.encodeIntoCompressedBase64(histogram) },
      extra: {
        samples: histogram.totalCount,
        maxUs: histogram.maxValue,
        meanUs: Math.round(histogram.mean),
        rate: spec.rate,
        pubacks: acked,
      },
    };
    if (histogram.totalCount === 0) (result.notes ??= []).push('no latency samples recorded');
    if (bus0 && bus1) {
      const amp = busAmplification(target, bus0, bus1, [sent], ps.placement.pubNode, new Set(ps.subs.map((s) => s.node)));
      result.metrics['amplification'] = amp.amplification;
      result.extra!['bus'] = amp.perNode;
    }
    return result;
  } finally {
    await ps.close();
    histogram.destroy();
  }
}
