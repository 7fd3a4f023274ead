/**
 * Publishers and subscribers on a target, placed over its nodes, with a readiness probe: before
 * anything is measured every subscriber must have received a probe message from every
 * publisher, so that subscriptions are in place on every node (a cluster routes by interest).
 * Probe messages use a stream number no publisher uses and are not counted.
 */
import { RawClient, connectMany } from '../client.js';
import { natsConnections, type Target } from '../brokers.js';
import { SequenceTracker } from '../sequence.js';
import { publishBatch, publishTemplate, type PublishTemplate, type PublishView } from '../wire.js';

export const PROBE_STREAM = 0xffffffff;

export interface Placement {
  /** Node index of publisher i. */
  pubNode(i: number): number;
  /** Node index of subscriber j. */
  subNode(j: number): number;
}

/**
 * Default placement over n nodes: publishers round-robin from node 0; subscribers round-robin
 * from node 0, except that a single subscriber of a single publisher sits on the next node, so
 * that 1→1 scenarios cross the bus in a cluster.
 */
export function defaultPlacement(nodes: number, publishers: number, subscribers: number): Placement {
  const shift = nodes > 1 && publishers === 1 && subscribers === 1 ? 1 : 0;
  return { pubNode: (i) => i % nodes, subNode: (j) => (j + shift) % nodes };
}

export interface PubSubSpec {
  readonly runId: string;
  readonly publishers: number;
  readonly subscribers: number;
  /** Topic of publisher i. */
  topic(i: number): string;
  /** The one filter every subscriber holds (it matches every publisher's topic). */
  readonly filter: string;
  readonly subQos: 0 | 1;
  readonly placement?: Placement;
}

export interface Subscriber {
  readonly client: RawClient;
  readonly node: number;
  readonly tracker: SequenceTracker;
  probes: Uint8Array;
  probesSeen: number;
}

export interface Publisher {
  readonly client: RawClient;
  readonly node: number;
  readonly index: number;
  readonly probe: PublishTemplate;
}

export interface PubSub {
  readonly pubs: Publisher[];
  readonly subs: Subscriber[];
  readonly placement: Placement;
  /** Every subscriber has seen a probe from every publisher; rejects after `timeoutMs`. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** True once any of the run's connections was closed (by the broker). */
  anyClosed(): boolean;
  close(): Promise<void>;
}

/** The scenario's hooks; probe messages never reach them. */
export interface PubSubHandlers {
  /** A counted message (already recorded in the subscriber's tracker). */
  onMessage?(sub: Subscriber, view: PublishView): void;
  /** After each chunk a subscriber read. */
  onSubChunk?(): void;
  onPuback?(pub: Publisher): void;
  /** After each chunk a publisher read, and when its socket drained. */
  onPubReady?(pub: Publisher): void;
}

const CONNECT_CONCURRENCY = 50;

export async function openPubSub(target: Target, spec: PubSubSpec, handlers: PubSubHandlers = {}): Promise<PubSub> {
  const nodes = target.ports.length;
  const placement = spec.placement ?? defaultPlacement(nodes, spec.publishers, spec.subscribers);
  const opened: RawClient[] = [];
  try {
    const subClients = await connectMany(spec.subscribers, CONNECT_CONCURRENCY, async (j) => {
      const c = await RawClient.connect(target.ports[placement.subNode(j)]!, { clientId: `${spec.runId}-s${j}` });
      opened.push(c);
      await c.subscribe(spec.filter, spec.subQos);
      return c;
    });
    const subs: Subscriber[] = subClients.map((client, j) => {
      const sub: Subscriber = { client, node: placement.subNode(j), tracker: new SequenceTracker(spec.publishers), probes: new Uint8Array(spec.publishers), probesSeen: 0 };
      const onMessage = handlers.onMessage;
      client.events = {
        onPublish: (view) => {
          if (takeProbe(sub, view.stream, view.seq)) return;
          sub.tracker.record(view.stream, view.seq);
          onMessage?.(sub, view);
        },
        ...(handlers.onSubChunk ? { onChunk: handlers.onSubChunk } : {}),
      };
      return sub;
    });
    const pubClients = await connectMany(spec.publishers, CONNECT_CONCURRENCY, async (i) => {
      const c = await RawClient.connect(target.ports[placement.pubNode(i)]!, { clientId: `${spec.runId}-p${i}` });
      opened.push(c);
      return c;
    });
    const pubs: Publisher[] = pubClients.map((client, i) => {
      const pub: Publisher = { client, node: placement.pubNode(i), index: i, probe: publishTemplate(spec.topic(i), 0) };
      const { onPuback, onPubReady } = handlers;
      client.events = {
        ...(onPuback ? { onPuback: () => onPuback(pub) } : {}),
        ...(onPubReady ? { onChunk: () => onPubReady(pub) } : {}),
      };
      if (onPubReady) client.socket.on('drain', () => onPubReady(pub));
      return pub;
    });

    const waitReady = async (timeoutMs = 15_000): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      const ready = (): boolean => subs.every((s) => s.probesSeen === spec.publishers);
      while (!ready()) {
        if (Date.now() > deadline) {
          const missing = subs.filter((s) => s.probesSeen < spec.publishers).length;
          throw new Error(`${missing} of ${subs.length} subscribers did not receive every publisher's probe within ${timeoutMs} ms`);
        }
        for (const p of pubs) p.client.write(publishBatch(p.probe, PROBE_STREAM, p.index, 1, 0));
        await new Promise((r) => setTimeout(r, 100));
      }
      // let stray probes arrive before anything is counted
      await new Promise((r) => setTimeout(r, 150));
    };

    return {
      pubs,
      subs,
      placement,
      waitReady,
      anyClosed: () => opened.some((c) => c.closed),
      close: async () => {
        await Promise.all(opened.map((c) => c.disconnect(2_000)));
      },
    };
  } catch (err) {
    for (const c of opened) c.destroy();
    throw err;
  }
}

/** Records a probe; returns true when the message was one (and must not be counted). */
export function takeProbe(sub: Subscriber, stream: number, seq: number): boolean {
  if (stream !== PROBE_STREAM) return false;
  if (seq < sub.probes.length && sub.probes[seq] === 0) {
    sub.probes[seq] = 1;
    sub.probesSeen++;
  }
  return true;
}

// ------------------------------------------------------------------------------ bus amplification

export interface BusSnapshot {
  readonly outMsgs: Map<string, number>;
}

/** Messages nats-server has sent to each node's bus connection so far (cluster targets only). */
export async function busSnapshot(target: Target): Promise<BusSnapshot | undefined> {
  if (target.natsMonitorPort === undefined || target.nodeIds === undefined) return undefined;
  const connz = await natsConnections(target.natsMonitorPort);
  return { outMsgs: new Map(target.nodeIds.map((id) => [id, connz.get(id)?.out_msgs ?? 0])) };
}

export interface BusAmplification {
  /** Σ messages received from the bus ÷ Σ messages needed from the bus (1.0 is ideal). */
  readonly amplification: number;
  readonly perNode: { node: string; receivedFromBus: number; neededFromBus: number }[];
}

/**
 * What each node received from the bus during the run, against what it needed: the messages
 * published on other nodes that match a subscriber it holds.
 */
export function busAmplification(
  target: Target,
  before: BusSnapshot,
  after: BusSnapshot,
  sentPerPublisher: readonly number[],
  pubNode: (i: number) => number,
  subNodes: ReadonlySet<number>,
): BusAmplification {
  const ids = target.nodeIds ?? [];
  const perNode = ids.map((id, n) => {
    let needed = 0;
    if (subNodes.has(n)) sentPerPublisher.forEach((sent, i) => (pubNode(i) !== n ? (needed += sent) : undefined));
    return { node: id, receivedFromBus: (after.outMsgs.get(id) ?? 0) - (before.outMsgs.get(id) ?? 0), neededFromBus: needed };
  });
  const received = perNode.reduce((a, n) => a + n.receivedFromBus, 0);
  const needed = perNode.reduce((a, n) => a + n.neededFromBus, 0);
  return { amplification: needed > 0 ? Math.round((received / needed) * 1000) / 1000 : Number.NaN, perNode };
}
