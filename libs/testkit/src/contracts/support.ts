import { afterEach } from 'vitest';
import type { Message } from '@fleetmq/broker';

/** Makes a fresh port for one test; the suite closes it after the test. */
export type MakePort<P> = () => Promise<P> | P;

export interface Closable {
  close(): Promise<void>;
}

export interface PortFixture<P> {
  /** A fresh port, closed after the test unless the test closed it with `close`. */
  open(): Promise<P>;
  /** Closes a port now (so the teardown does not close it a second time). */
  close(port: P): Promise<void>;
}

/** Registers an afterEach that closes every port the test opened. Call inside `describe`. */
export function portFixture<P extends Closable>(make: MakePort<P>): PortFixture<P> {
  const opened = new Set<P>();
  afterEach(async () => {
    const ports = [...opened];
    opened.clear();
    for (const port of ports) await port.close();
  });
  return {
    async open() {
      const port = await make();
      opened.add(port);
      return port;
    },
    async close(port) {
      opened.delete(port);
      await port.close();
    },
  };
}

export interface WaitOptions {
  /** Give up after this many ms (default 2000). */
  readonly timeoutMs?: number;
  /** Poll every this many ms (default 5). */
  readonly intervalMs?: number;
}

/**
 * Polls until `condition` is true, for adapters that deliver asynchronously (over a
 * network); resolves at once when it already holds. Rejects after the timeout.
 */
export async function waitFor(condition: () => boolean, what = 'condition', options: WaitOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const intervalMs = options.intervalMs ?? 5;
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

let nextId = 0;

/** A message for contract tests; each call gets a fresh cluster-unique-looking ID. */
export function testMessage(topic: string, overrides: Partial<Omit<Message, 'topic'>> = {}): Message {
  return {
    id: `contract-${process.pid}-${(nextId++).toString(36)}`,
    topic,
    payload: Buffer.from(`payload of ${topic}`),
    qos: 1,
    retain: false,
    createdAt: Date.now(),
    ...overrides,
  };
}

/** Collects what a handler receives. */
export class Recorder {
  readonly messages: Message[] = [];
  readonly handler = (message: Message): void => {
    this.messages.push(message);
  };

  get topics(): string[] {
    return this.messages.map((m) => m.topic);
  }

  get ids(): string[] {
    return this.messages.map((m) => m.id);
  }

  has(topic: string): boolean {
    return this.messages.some((m) => m.topic === topic);
  }
}

/** Drains an async iterable into an array. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
