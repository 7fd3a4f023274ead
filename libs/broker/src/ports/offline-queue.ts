import type { Message } from '../message.js';

export interface QueuedMessage {
  /** Order-preserving sequence within the client's queue. */
  readonly seq: number;
  readonly message: Message;
}

export interface AppendResult {
  /** Messages dropped by the drop policy to respect the length limit. */
  readonly dropped: number;
}

export type DropPolicy = 'drop-oldest' | 'drop-newest';

export interface OfflineQueueOptions {
  /** Most messages kept per client ID. */
  readonly maxLength: number;
  /** 'drop-oldest' keeps the newest messages (telemetry); 'drop-newest' refuses new ones. */
  readonly dropPolicy: DropPolicy;
}

/**
 * QoS 1/2 messages for sessions whose client is offline (DynamoDB in a cluster,
 * in-process alone), in publish order, bounded per client.
 */
export interface OfflineQueue {
  append(clientId: string, messages: readonly Message[]): Promise<AppendResult>;
  /** Appends one message to many queues (one message matching many offline sessions). */
  appendMany(clientIds: readonly string[], message: Message): Promise<AppendResult>;
  /** Up to `limit` messages in order, starting after `afterSeq`. */
  read(clientId: string, limit: number, afterSeq?: number): Promise<QueuedMessage[]>;
  /** Removes every message with seq <= upToSeq. */
  remove(clientId: string, upToSeq: number): Promise<void>;
  length(clientId: string): Promise<number>;
  clear(clientId: string): Promise<void>;
  close(): Promise<void>;
}
