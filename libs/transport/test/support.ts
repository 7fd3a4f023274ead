/**
 * Transport test support: a Broker on the in-process adapters (as services/edge wires
 * it), and servers that put a Connection with chosen ConnectionOptions on each stream.
 */
import { duplexPair, type Duplex } from 'node:stream';
import { silentLog, type Broker, type BrokerOptions, type ConnectionInfo } from '@fleetmq/broker';
import { RawMqttClient, type MqttVersion } from '@fleetmq/testkit';
import { Connection, type ConnectionOptions } from '../src/connection.js';
import { TcpListener } from '../src/tcp-listener.js';
import { makeBroker } from './memory-broker.js';

export const defaultConnectionOptions: ConnectionOptions = {
  maxPacketSize: 1 << 20,
  outputBufferLimit: 4 << 20,
  connectTimeout: 5_000,
};

export { makeBroker };

export interface MqttServer {
  readonly broker: Broker;
  readonly port: number;
  readonly connections: Connection[];
  close(): Promise<void>;
}

/** A TCP listener on a free 127.0.0.1 port whose streams get a Connection each. */
export async function startMqttServer(
  connection: Partial<ConnectionOptions> = {},
  brokerOptions: Partial<BrokerOptions> = {},
): Promise<MqttServer> {
  const broker = makeBroker(brokerOptions);
  const options = { ...defaultConnectionOptions, ...connection };
  const listener = new TcpListener({ name: 'tcp', host: '127.0.0.1', port: 0 });
  const connections: Connection[] = [];
  await listener.listen((stream, info) => {
    connections.push(new Connection(stream, info, broker, options, silentLog));
  });
  return {
    broker,
    port: listener.address().port,
    connections,
    async close() {
      broker.shutdown(0x8b);
      await listener.close();
    },
  };
}

export const memoryInfo: ConnectionInfo = { transport: 'memory', listener: 'memory', remoteAddress: '127.0.0.1', remotePort: 1 };

/** A Connection on one end of an in-memory duplex pair, a raw client on the other. */
export function memoryClient(
  broker: Broker,
  version: MqttVersion,
  options: Partial<ConnectionOptions> = {},
): { connection: Connection; client: RawMqttClient; server: Duplex } {
  const [server, client] = duplexPair();
  // as a TCP socket does: no half-open connections, and the peer sees a destroy
  client.once('end', () => client.end());
  client.once('close', () => server.destroy());
  const connection = new Connection(server, memoryInfo, broker, { ...defaultConnectionOptions, ...options }, silentLog);
  return { connection, client: new RawMqttClient(client, version), server };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
