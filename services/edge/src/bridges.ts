import { MemoryLease } from '@fleetmq/adapter-memory';
import type { BridgeManager } from '@fleetmq/bridge';
import type { Broker, BrokerLog, Lease } from '@fleetmq/broker';
import { redisAdapter } from './backends.js';
import { bridgeOptions } from './bridge-config.js';
import type { EdgeConfig } from './config.js';
import type { Logger } from './logger.js';

/** The node's bridges and the lease that makes each run once per cluster. */
export interface NodeBridges {
  readonly manager: BridgeManager;
  start(): Promise<void>;
  /** Stops the bridges this node runs (releasing their leases), then closes the lease store. */
  stop(): Promise<void>;
}

/**
 * The configured bridges: in a cluster (cluster.redis) each runs on the one node holding its
 * Redis lease `bridge:<name>`; alone, on this node (in-process lease). Undefined with no
 * bridges (the bridge code and its MQTT client are then never loaded). Reads the bridges' TLS
 * files: throws when one cannot be read.
 */
export async function openBridges(config: EdgeConfig, broker: Broker, log: Logger): Promise<NodeBridges | undefined> {
  if (config.bridges.length === 0) return undefined;
  const brokerLog = log as unknown as BrokerLog;
  const redis = config.cluster.redis;
  const { BridgeManager } = await import('@fleetmq/bridge');
  const lease: Lease =
    redis === undefined
      ? new MemoryLease()
      : new (await redisAdapter()).RedisLease({ url: redis.url, keyPrefix: redis.keyPrefix, name: `${config.nodeId}/bridges`, log: brokerLog });
  let manager: BridgeManager;
  try {
    manager = new BridgeManager({ broker, lease, nodeId: config.nodeId, bridges: config.bridges.map(bridgeOptions), log: brokerLog });
  } catch (err) {
    void lease.close();
    throw err;
  }
  return {
    manager,
    start: () => manager.start(),
    stop: async () => {
      await manager.stop();
      await lease.close();
    },
  };
}
