/**
 * A Broker on the in-process adapters, as services/edge wires a node alone: for the transport
 * tests (through support.ts) and the microbenchmarks, which must not load vitest.
 */
import {
  MemoryMessageBus,
  MemoryOfflineQueue,
  MemoryRetainedStore,
  MemorySessionOwnership,
  MemorySessionStore,
} from '@fleetmq/adapter-memory';
import { Broker, silentLog, type BrokerOptions } from '@fleetmq/broker';

export function makeBroker(options: Partial<BrokerOptions> = {}): Broker {
  return new Broker({
    nodeId: 'transport-test',
    ports: {
      bus: new MemoryMessageBus(),
      ownership: new MemorySessionOwnership(),
      sessions: new MemorySessionStore(),
      offlineQueue: new MemoryOfflineQueue({ maxLength: 1000, dropPolicy: 'drop-oldest' }),
      retained: new MemoryRetainedStore(),
    },
    options,
    log: silentLog,
  });
}
