/**
 * One worker thread of a connection storm (bench/dist/storm-worker.mjs): opens its share of the
 * connections when told to, reports how it went, keeps them open (idle) until told to close.
 * A storm spreads over one worker per core, so that the client side of the TCP handshakes (most
 * of it kernel time on loopback) does not all queue on one thread.
 *
 * Messages in:  { type: 'go' } · { type: 'count' } · { type: 'close' }
 * Messages out: { type: 'ready' } · { type: 'opened', … } · { type: 'open', count } · { type: 'closed' }
 */
import { parentPort, workerData } from 'node:worker_threads';
import hdr from 'hdr-histogram-js';
import { RawClient, connectMany } from './client.js';
import { sourceAddress } from './limits.js';
import { DISCONNECT, connectPacket } from './wire.js';

export interface StormWorkerInput {
  readonly ports: readonly number[];
  readonly runId: string;
  /** This worker opens connections from, from + step, … below `to` (global indices). */
  readonly from: number;
  readonly to: number;
  readonly step: number;
  readonly concurrency: number;
}

export type StormWorkerReply =
  | { type: 'ready' }
  | { type: 'opened'; connected: number; failed: number; firstError?: string; handshake: string }
  | { type: 'open'; count: number }
  | { type: 'closed' };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function main(): void {
  const port = parentPort;
  if (port === null) throw new Error('storm-worker runs as a worker thread');
  const input = workerData as StormWorkerInput;
  const indices: number[] = [];
  for (let i = input.from; i < input.to; i += input.step) indices.push(i);
  // built before the clock starts
  const connects = indices.map((i) => connectPacket({ clientId: `${input.runId}-c${i}` }));
  const handshake = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let clients: RawClient[] = [];
  const send = (reply: StormWorkerReply): void => port.postMessage(reply);

  port.on('message', (msg: { type: 'go' | 'count' | 'close' }) => {
    switch (msg.type) {
      case 'go':
        void (async () => {
          let failed = 0;
          let firstError: string | undefined;
          const opened = await connectMany(indices.length, input.concurrency, async (k) => {
            const i = indices[k]!;
            const t = performance.now();
            try {
              const { client } = await RawClient.open(input.ports[i % input.ports.length]!, connects[k]!, 30_000, sourceAddress(i));
              handshake.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
              return client;
            } catch (err) {
              failed++;
              firstError ??= (err as Error).message;
              return undefined;
            }
          });
          clients = opened.filter((c): c is RawClient => c !== undefined);
          send({ type: 'opened', connected: clients.length, failed, ...(firstError !== undefined ? { firstError } : {}), handshake: hdr.encodeIntoCompressedBase64(handshake) });
        })();
        return;
      case 'count':
        send({ type: 'open', count: clients.filter((c) => !c.closed).length });
        return;
      case 'close':
        void (async () => {
          // DISCONNECT and let the broker close first (TIME_WAIT on its side)
          for (const c of clients) if (!c.closed) c.socket.write(DISCONNECT);
          const deadline = performance.now() + 15_000;
          while (clients.some((c) => !c.closed) && performance.now() < deadline) await sleep(50);
          for (const c of clients) c.destroy();
          send({ type: 'closed' });
          port.close();
        })();
        return;
    }
  });
  send({ type: 'ready' });
}

main();
