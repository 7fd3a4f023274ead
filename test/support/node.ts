import { afterAll, beforeAll } from 'vitest';
import { parseConfig, startNode, createLogger, type RunningNode } from '@fleetmq/edge';

export interface TestNode {
  readonly node: RunningNode;
  /** MQTT over TCP port on 127.0.0.1. */
  readonly port: number;
  /** MQTT over WebSocket port on 127.0.0.1 (path /mqtt). */
  readonly wsPort: number;
  readonly url: string;
  readonly wsUrl: string;
  stop(): Promise<void>;
}

/**
 * Starts one embedded edge node in this process, on free 127.0.0.1 ports (a TCP and a
 * WebSocket listener), with the given `mqtt`/`auth` overrides. Logs are silent unless
 * FLEETMQ_TEST_LOG names a level.
 */
export async function startTestNode(overrides: { mqtt?: Record<string, unknown>; auth?: Record<string, unknown> } = {}): Promise<TestNode> {
  const config = parseConfig({
    nodeId: 'test-node',
    listeners: [
      { type: 'tcp', name: 'tcp', host: '127.0.0.1', port: 0 },
      { type: 'ws', name: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
    ],
    log: { level: process.env.FLEETMQ_TEST_LOG ?? 'silent' },
    ops: { port: 0 },
    ...(overrides.mqtt ? { mqtt: overrides.mqtt } : {}),
    ...(overrides.auth ? { auth: overrides.auth } : {}),
  });
  const node = await startNode(config, createLogger(config.log.level, process.stderr));
  const addresses = node.addresses();
  const port = addresses.find((a) => a.name === 'tcp')!.port;
  const wsPort = addresses.find((a) => a.name === 'ws')!.port;
  return {
    node,
    port,
    wsPort,
    url: `mqtt://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${wsPort}/mqtt`,
    stop: () => node.stop(),
  };
}

/**
 * One test node for the enclosing describe block: started before its tests, stopped after.
 * The returned object reads through to the running node.
 */
export function useTestNode(overrides: Parameters<typeof startTestNode>[0] = {}): TestNode {
  let started: TestNode | undefined;
  beforeAll(async () => {
    started = await startTestNode(overrides);
  });
  afterAll(async () => {
    await started?.stop();
  });
  const get = (): TestNode => {
    if (started === undefined) throw new Error('the test node starts in beforeAll: use it inside a test');
    return started;
  };
  return {
    get node() {
      return get().node;
    },
    get port() {
      return get().port;
    },
    get wsPort() {
      return get().wsPort;
    },
    get url() {
      return get().url;
    },
    get wsUrl() {
      return get().wsUrl;
    },
    stop: () => get().stop(),
  };
}
