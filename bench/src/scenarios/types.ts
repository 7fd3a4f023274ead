import type { Target } from '../brokers.js';
import type { CpuShare } from '../proc.js';
import type { Integrity } from '../sequence.js';

/** One number a scenario reports per run. */
export interface MetricDef {
  readonly key: string;
  readonly label: string;
  readonly unit: string;
  readonly better: 'higher' | 'lower';
}

export interface RunContext {
  readonly target: Target;
  readonly quick: boolean;
  /** Seconds measured per throughput run (after the warm-up). */
  readonly durationS: number;
  readonly warmupS: number;
  /** A short unique tag for client IDs and topics of this run. */
  readonly runId: string;
}

export interface RunResult {
  metrics: Record<string, number>;
  /** Summed over every subscriber of the run (publish scenarios). */
  integrity?: Integrity;
  /** CPU over the measured window, in cores. */
  cpu: CpuShare;
  /** Latency distributions (HDR, µs), compressed base64, by name. */
  histograms?: Record<string, string>;
  /** Anything else worth keeping in the JSON (per-node bus counts, sent, window…). */
  extra?: Record<string, unknown>;
  /** Caps and anything a reader of the table must know. */
  notes?: string[];
}

export interface Scenario {
  readonly name: string;
  readonly title: string;
  /** Single-broker scenarios run on FleetMQ, Mosquitto and Aedes; cluster ones on the FleetMQ cluster. */
  readonly kind: 'single' | 'cluster';
  readonly metrics: readonly MetricDef[];
  /** The parameters this run uses (for the report). */
  params(quick: boolean): Record<string, number | string>;
  run(ctx: RunContext): Promise<RunResult>;
}
