import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '@fleetmq/protocol';
import type { Message, MessageBus } from '@fleetmq/broker';
import { Recorder, portFixture, testMessage, waitFor } from './support.js';
import type { MakePort } from './support.js';

/** A '$' topic: no leading wildcard in a test's filters can match it [MQTT-4.7.2-1]. */
const FLUSH_TOPIC = '$contract/flush';
const flushProbes = new WeakMap<MessageBus, Recorder>();

/**
 * Publishes a probe and waits until it comes back. A bus delivers one publisher's
 * messages in order, so once the probe is back, everything published before it that was
 * going to arrive has arrived: tests can then check that nothing else did.
 */
async function flush(bus: MessageBus): Promise<void> {
  let probe = flushProbes.get(bus);
  if (probe === undefined) {
    probe = new Recorder();
    await bus.subscribe(FLUSH_TOPIC, probe.handler);
    flushProbes.set(bus, probe);
  }
  const marker = testMessage(FLUSH_TOPIC, { qos: 0 });
  await bus.publish(marker);
  const seen = probe;
  await waitFor(() => seen.ids.includes(marker.id), 'the flush probe');
}

/** Publishes each topic in order. */
async function publishAll(bus: MessageBus, topics: readonly string[]): Promise<Message[]> {
  const sent: Message[] = [];
  for (const topic of topics) {
    const message = testMessage(topic);
    await bus.publish(message);
    sent.push(message);
  }
  return sent;
}

/**
 * The MessageBus contract (ports/message-bus.ts): MQTT matching, once per matching
 * subscription, queue groups, subscribe/unsubscribe activation, refusal after close.
 * `make` returns a fresh, connected bus; the suite closes it after each test.
 */
export function describeMessageBus(make: MakePort<MessageBus>): void {
  describe('MessageBus contract', () => {
    const ports = portFixture(make);

    it('delivers a message to an exact filter once subscribe has resolved', async () => {
      const bus = await ports.open();
      const rec = new Recorder();
      await bus.subscribe('fleet/d1/telemetry', rec.handler);
      const [sent] = await publishAll(bus, ['fleet/d1/telemetry']);
      await waitFor(() => rec.messages.length === 1, 'the delivery');
      expect(rec.ids).toEqual([sent!.id]);
    });

    it('carries every field of the message unchanged', async () => {
      const bus = await ports.open();
      const rec = new Recorder();
      await bus.subscribe('fields/+', rec.handler);
      const message = testMessage('fields/all', {
        payload: Buffer.from([0x00, 0xff, 0x7f, 0x80, 0x0a]),
        qos: 2,
        retain: true,
        properties: {
          payloadFormatIndicator: false,
          contentType: 'application/octet-stream',
          responseTopic: 'fields/reply',
          correlationData: Buffer.from([1, 2, 3]),
          userProperties: { region: 'eu-west-1', tag: ['a', 'b'] },
        },
        expiresAt: Date.now() + 60_000,
        publisherId: 'device-7',
      });
      await bus.publish(message);
      await waitFor(() => rec.messages.length === 1, 'the delivery');
      expect(rec.messages[0]).toEqual(message);
      expect(Buffer.isBuffer(rec.messages[0]!.payload)).toBe(true);
    });

    it('carries an empty payload', async () => {
      const bus = await ports.open();
      const rec = new Recorder();
      await bus.subscribe('empty', rec.handler);
      await bus.publish(testMessage('empty', { payload: Buffer.alloc(0), qos: 0 }));
      await waitFor(() => rec.messages.length === 1, 'the delivery');
      expect(rec.messages[0]!.payload.length).toBe(0);
    });

    it("matches '+' to exactly one level, including an empty one", async () => {
      const bus = await ports.open();
      const rec = new Recorder();
      await bus.subscribe('p/+/c', rec.handler);
      await publishAll(bus, ['p/x/c', 'p/x/y/c', 'p/c', 'p//c', 'p/x/c/d', 'q/x/c']);
      await flush(bus);
      expect(rec.topics).toEqual(['p/x/c', 'p//c']);
    });

    it("matches '#' to the parent level and every level below", async () => {
      const bus = await ports.open();
      const rec = new Recorder();
      await bus.subscribe('h/#', rec.handler);
      await publishAll(bus, ['h', 'h/1', 'h/1/2', 'hx', 'x/h', 'h/']);
      await flush(bus);
      expect(rec.topics).toEqual(['h', 'h/1', 'h/1/2', 'h/']);
    });

    it("does not match '$' topics with a leading wildcard, but does with a literal '$' level", async () => {
      const bus = await ports.open();
      const all = new Recorder();
      const plus = new Recorder();
      const sys = new Recorder();
      const sysPlus = new Recorder();
      await bus.subscribe('#', all.handler);
      await bus.subscribe('+/x', plus.handler);
      await bus.subscribe('$SYS/#', sys.handler);
      await bus.subscribe('$SYS/+', sysPlus.handler);
      await publishAll(bus, ['$SYS/x', '$SYS', 'n/x']);
      await flush(bus);
      expect(all.topics).toEqual(['n/x']);
      expect(plus.topics).toEqual(['n/x']);
      expect(sys.topics).toEqual(['$SYS/x', '$SYS']);
      expect(sysPlus.topics).toEqual(['$SYS/x']);
    });

    it('matches levels holding characters a transport may reserve literally', async () => {
      const bus = await ports.open();
      const exact = new Recorder();
      const dotted = new Recorder();
      const starred = new Recorder();
      const deep = new Recorder();
      await bus.subscribe('dot.ted/sp ace/*/>', exact.handler);
      await bus.subscribe('+/+/*/>', starred.handler);
      await bus.subscribe('dot/ted/+/+/+', dotted.handler);
      await bus.subscribe('a\\b/%2F/~/#', deep.handler);
      await publishAll(bus, [
        'dot/ted/x/y/z',
        'q/r/c/d',
        'dot.ted/sp ace/*/>',
        'dot.ted/sp ace/x/y',
        'a\\b/%2F/~',
        'a\\b/%2F/~/ü/日本',
        'a\\b/%2f/~',
      ]);
      await flush(bus);
      expect(exact.topics).toEqual(['dot.ted/sp ace/*/>']);
      expect(starred.topics).toEqual(['dot.ted/sp ace/*/>']);
      expect(dotted.topics).toEqual(['dot/ted/x/y/z']);
      expect(deep.topics).toEqual(['a\\b/%2F/~', 'a\\b/%2F/~/ü/日本']);
    });

    it('calls the handler once per matching subscription', async () => {
      const bus = await ports.open();
      const rec = new Recorder();
      for (const filter of ['o/b', 'o/+', 'o/#', '#', '+/+', 'o/b']) await bus.subscribe(filter, rec.handler);
      const [sent] = await publishAll(bus, ['o/b']);
      await flush(bus);
      expect(rec.ids).toEqual(Array(6).fill(sent!.id));
    });

    it('stops delivery to a subscription once unsubscribe resolves, and unsubscribe is idempotent', async () => {
      const bus = await ports.open();
      const gone = new Recorder();
      const kept = new Recorder();
      const sub = await bus.subscribe('u/+', gone.handler);
      await bus.subscribe('u/+', kept.handler);
      await publishAll(bus, ['u/1']);
      await waitFor(() => gone.messages.length === 1 && kept.messages.length === 1, 'both deliveries');
      await sub.unsubscribe();
      await sub.unsubscribe();
      await publishAll(bus, ['u/2']);
      await flush(bus);
      expect(gone.topics).toEqual(['u/1']);
      expect(kept.topics).toEqual(['u/1', 'u/2']);
    });

    it('resolves a publish that matches no subscription', async () => {
      const bus = await ports.open();
      await expect(bus.publish(testMessage('nobody/listens'))).resolves.toBeUndefined();
    });

    it('gives each message to exactly one member of a queue group', async () => {
      const bus = await ports.open();
      const members = [new Recorder(), new Recorder(), new Recorder()];
      for (const m of members) await bus.subscribe('q/+', m.handler, { group: 'workers' });
      const sent = await publishAll(bus, Array.from({ length: 30 }, (_, i) => `q/${i}`));
      await waitFor(() => members.reduce((n, m) => n + m.messages.length, 0) >= 30, 'all group deliveries');
      await flush(bus);
      const received = members.flatMap((m) => m.ids);
      expect(received).toHaveLength(30);
      expect(new Set(received)).toEqual(new Set(sent.map((m) => m.id)));
    });

    it('delivers to every group once and to plain subscriptions on the same filter as well', async () => {
      const bus = await ports.open();
      const g1 = [new Recorder(), new Recorder()];
      const g2 = [new Recorder(), new Recorder()];
      const plain = new Recorder();
      for (const m of g1) await bus.subscribe('s/#', m.handler, { group: 'g1' });
      for (const m of g2) await bus.subscribe('s/#', m.handler, { group: 'g2' });
      await bus.subscribe('s/#', plain.handler);
      const sent = await publishAll(bus, Array.from({ length: 10 }, (_, i) => `s/${i}`));
      const ids = sent.map((m) => m.id);
      await waitFor(() => plain.messages.length === 10, 'the plain deliveries');
      await flush(bus);
      expect(plain.ids).toEqual(ids);
      expect(g1.flatMap((m) => m.ids).sort()).toEqual([...ids].sort());
      expect(g2.flatMap((m) => m.ids).sort()).toEqual([...ids].sort());
    });

    it('keeps delivering to the remaining members after a group member unsubscribes', async () => {
      const bus = await ports.open();
      const leaving = new Recorder();
      const staying = new Recorder();
      const sub = await bus.subscribe('r/+', leaving.handler, { group: 'g' });
      await bus.subscribe('r/+', staying.handler, { group: 'g' });
      await sub.unsubscribe();
      const sent = await publishAll(bus, ['r/1', 'r/2', 'r/3', 'r/4']);
      await waitFor(() => staying.messages.length === 4, 'the remaining member');
      await flush(bus);
      expect(leaving.messages).toEqual([]);
      expect(staying.ids).toEqual(sent.map((m) => m.id));
    });

    it('has delivered what it routed before sync was called once sync resolves', async () => {
      const bus = await ports.open();
      const rec = new Recorder();
      await bus.subscribe('sync/+', rec.handler);
      const sent = await publishAll(bus, ['sync/1', 'sync/2', 'sync/3']);
      await bus.sync();
      expect(rec.ids).toEqual(sent.map((m) => m.id));
    });

    it('is ready until closed, and refuses publishes and sync after close with BackendUnavailableError', async () => {
      const bus = await ports.open();
      expect(bus.ready).toBe(true);
      await ports.close(bus);
      expect(bus.ready).toBe(false);
      await expect(bus.publish(testMessage('after/close'))).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(bus.sync()).rejects.toBeInstanceOf(BackendUnavailableError);
    });
  });
}
