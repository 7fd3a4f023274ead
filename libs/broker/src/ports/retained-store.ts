import type { Message } from '../message.js';

/**
 * The last retained message per topic (DynamoDB in a cluster, in-process alone).
 * Nodes may cache, but the store is the truth.
 */
export interface RetainedStore {
  /** Stores the message as the retained one for its topic; an empty payload deletes it. */
  set(message: Message): Promise<void>;
  get(topic: string): Promise<Message | null>;
  /** Every unexpired retained message matching any of the filters, each once. */
  match(filters: readonly string[]): AsyncIterable<Message>;
  /** Number of retained topics (for metrics and admin). */
  count(): Promise<number>;
  close(): Promise<void>;
}
