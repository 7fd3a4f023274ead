import { describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { useTestNode } from '../support/node.js';

describe('embedded node with mqtt.js', () => {
  const t = useTestNode();

  for (const protocolVersion of [4, 5] as const) {
    it(`delivers a QoS 1 publish over TCP and WebSocket (protocol ${protocolVersion})`, async () => {
      const sub = await mqtt.connectAsync(t.wsUrl, { protocolVersion, clientId: `ws-sub-${protocolVersion}` });
      const pub = await mqtt.connectAsync(t.url, { protocolVersion, clientId: `tcp-pub-${protocolVersion}` });
      await sub.subscribeAsync('smoke/+', { qos: 1 });
      const received = new Promise<[string, string]>((resolve) => sub.once('message', (topic, payload) => resolve([topic, payload.toString()])));
      await pub.publishAsync('smoke/a', 'hello', { qos: 1 });
      expect(await received).toEqual(['smoke/a', 'hello']);
      await Promise.all([sub.endAsync(), pub.endAsync()]);
    });
  }
});
