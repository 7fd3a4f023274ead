/**
 * What Linux says about processes and the machine (/proc): resident memory, CPU time, file
 * descriptor limits and the machine's busy time, so that every run can report how much CPU
 * the broker, the runner and everything else used.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';

let clockTicks: number | undefined;
/** Clock ticks per second of /proc CPU times (`getconf CLK_TCK`, 100 on Linux almost always). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** VmRSS of a process in bytes, or undefined when it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds a process has used so far (0 when it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name is in parentheses and may contain spaces: split after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is state (field 3); utime is field 14, stime field 15
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return 0;
  }
}

/** Busy CPU seconds of the whole machine so far (all cores; /proc/stat minus idle and iowait). */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return (total - idle) / ticksPerSecond();
}

/** The soft "Max open files" limit of a process ('self' for this one). */
export function fdLimit(pid: number | 'self' = 'self'): number {
  try {
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
    if (!match) return Number.POSITIVE_INFINITY;
    return match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1]);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/** How many file descriptors a process holds open now. */
export function openFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memTotalMiB: number;
  kernel: string;
  node: string;
  fdLimit: number;
  loadAverage: number[];
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    fdLimit: fdLimit(),
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/**
 * CPU use over one measured window: the runner (process.cpuUsage), the brokers' processes
 * (/proc/PID/stat) and everything else on the machine (busy time minus both), each as a
 * fraction of one core.
 */
export class CpuMeter {
  private readonly t0 = performance.now();
  private readonly self0 = process.cpuUsage();
  private readonly busy0 = machineBusySeconds();
  private readonly pids0: Map<number, number>;

  constructor(private readonly pids: readonly number[]) {
    this.pids0 = new Map(pids.map((p) => [p, cpuSeconds(p)]));
  }

  stop(): CpuShare {
    const wall = (performance.now() - this.t0) / 1000;
    const self = process.cpuUsage(this.self0);
    const runner = (self.user + self.system) / 1e6;
    let brokers = 0;
    for (const pid of this.pids) brokers += Math.max(0, cpuSeconds(pid) - (this.pids0.get(pid) ?? 0));
    const busy = machineBusySeconds() - this.busy0;
    const r = (x: number): number => Math.round((x / wall) * 1000) / 1000;
    return { seconds: Math.round(wall * 1000) / 1000, runner: r(runner), broker: r(brokers), other: r(Math.max(0, busy - runner - brokers)) };
  }
}

/** Cores used on average over a window (1 = one core busy the whole time). */
export interface CpuShare {
  seconds: number;
  runner: number;
  broker: number;
  other: number;
}
