import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '@fleetmq/protocol';
import type { NodeReply, NodeRequest } from '@fleetmq/broker';
import { startNatsServer, type NatsFixture } from '@fleetmq/testkit';
import { NatsNodeLink } from '../src/index.js';

describe('NatsNodeLink', () => {
  let nats: NatsFixture;
  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    await nats.stop();
  });

  function link(name: string): NatsNodeLink {
    return new NatsNodeLink({ servers: [nats.url], name, reconnectTimeWait: 100 });
  }

  async function serving(l: NatsNodeLink, nodeId: string, handler: (r: NodeRequest) => Promise<NodeReply>): Promise<void> {
    await l.serve(nodeId, handler);
    // serving starts once connected: wait until a request gets through
    const probe = link(`${nodeId}-probe`);
    try {
      for (let i = 0; i < 50; i++) {
        try {
          await probe.request(nodeId, { type: 'takeover-end', clientId: '$probe', epoch: 0 }, 200);
          return;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      throw new Error(`node ${nodeId} never served`);
    } finally {
      await probe.close();
    }
  }

  it('carries a request to the node that serves it and its reply back, Buffers included', async () => {
    const a = link('a');
    const b = link('b');
    try {
      const requests: NodeRequest[] = [];
      await serving(a, 'node.a', async (request) => {
        requests.push(request);
        return {
          type: 'buffer',
          deliveries: [
            {
              message: { id: 'm1', topic: 't/1', payload: Buffer.from([0, 1, 2, 255]), qos: 1, retain: false, createdAt: 5 },
              delivery: { qos: 1, retain: false, subscriptionIds: [3] },
            },
          ],
        };
      });
      requests.length = 0;
      const reply = await b.request('node.a', { type: 'takeover-end', clientId: 'dev-1', epoch: 7 }, 2000);
      expect(requests).toEqual([{ type: 'takeover-end', clientId: 'dev-1', epoch: 7 }]);
      expect(reply.type).toBe('buffer');
      const [first] = reply.type === 'buffer' ? reply.deliveries : [];
      expect(Buffer.isBuffer(first!.message.payload)).toBe(true);
      expect([...first!.message.payload]).toEqual([0, 1, 2, 255]);
      expect(first!.delivery).toEqual({ qos: 1, retain: false, subscriptionIds: [3] });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a node nobody serves fails with BackendUnavailableError, not a hang', async () => {
    const b = link('b2');
    try {
      await serving(b, 'node.b2', async () => ({ type: 'snapshot', snapshot: null }));
      const started = Date.now();
      await expect(b.request('node.gone', { type: 'takeover-begin', clientId: 'x', epoch: 1 }, 1500)).rejects.toBeInstanceOf(
        BackendUnavailableError,
      );
      // NATS answers "no responders" at once rather than letting the timeout run
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      await b.close();
    }
  });

  it('after close the node no longer answers', async () => {
    const a = link('a3');
    const b = link('b3');
    try {
      await serving(a, 'node.a3', async () => ({ type: 'snapshot', snapshot: null }));
      await a.close();
      await expect(b.request('node.a3', { type: 'takeover-begin', clientId: 'x', epoch: 1 }, 500)).rejects.toBeInstanceOf(
        BackendUnavailableError,
      );
    } finally {
      await b.close();
    }
  });
});
