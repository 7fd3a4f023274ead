import type { RunningNode } from '../src/main.js';

/** Prometheus text read into `name{label="v",…}` (labels sorted) → value. */
export type Samples = Map<string, number>;

export function sampleKey(name: string, labels: Record<string, string | number> = {}): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${String(labels[k])}"`);
  return parts.length === 0 ? name : `${name}{${parts.join(',')}}`;
}

export function parseSamples(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.set(sampleKey(m[1]!, labels), Number(m[3]));
  }
  return samples;
}

/** The node's ops server as a small HTTP client. */
export class Ops {
  constructor(
    private readonly node: RunningNode,
    private readonly token?: string,
  ) {}

  get base(): string {
    const a = this.node.opsAddress();
    if (a === undefined) throw new Error('the node has no ops server');
    return `http://127.0.0.1:${a.port}`;
  }

  fetch(path: string, init: RequestInit & { token?: string | null } = {}): Promise<Response> {
    const token = init.token === undefined ? this.token : init.token;
    const headers = new Headers(init.headers);
    if (token !== undefined && token !== null) headers.set('Authorization', `Bearer ${token}`);
    return fetch(`${this.base}${path}`, { ...init, headers });
  }

  /** An admin request that must answer `status`; its JSON body. */
  async json<T = Record<string, unknown>>(path: string, status: number, init: RequestInit & { token?: string | null } = {}): Promise<T> {
    const res = await this.fetch(path, init);
    const text = await res.text();
    if (res.status !== status) throw new Error(`${init.method ?? 'GET'} ${path}: ${res.status}, expected ${status}: ${text}`);
    return JSON.parse(text) as T;
  }

  async metrics(): Promise<Samples> {
    const res = await this.fetch('/metrics');
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
    return parseSamples(await res.text());
  }

  /** One sample's value; throws when the node exports no such series. */
  async value(name: string, labels: Record<string, string | number> = {}): Promise<number> {
    return sampleOf(await this.metrics(), name, labels);
  }
}

export function sampleOf(samples: Samples, name: string, labels: Record<string, string | number> = {}): number {
  const v = samples.get(sampleKey(name, labels));
  if (v === undefined) throw new Error(`no sample ${sampleKey(name, labels)}`);
  return v;
}
