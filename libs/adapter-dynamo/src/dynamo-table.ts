import { BatchWriteItemCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { WriteRequest } from '@aws-sdk/client-dynamodb';
import { BackendUnavailableError } from '@fleetmq/protocol';
import { mapLimit } from '@fleetmq/broker';
import { createDynamoClient } from './client.js';
import type { DynamoClientOption } from './client.js';
import { backendError, isConditionalCheckFailed } from './errors.js';

/** BatchWriteItem takes at most 25 requests. */
export const BATCH_WRITE_MAX = 25;
/** Tries of one batch (first included) while DynamoDB leaves some of it unprocessed. */
export const BATCH_WRITE_ATTEMPTS = 8;
const BATCH_RETRY_BASE_MS = 25;
const BATCH_RETRY_MAX_MS = 1_000;
/** Batches of one batchWrite call sent at the same time. */
const BATCH_WRITE_PARALLEL = 4;

export interface DynamoTableOptions {
  readonly client: DynamoClientOption;
  readonly tableName: string;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** "Full jitter" exponential backoff: a random delay up to base·2^attempt, capped. */
export function backoffMs(attempt: number, baseMs = BATCH_RETRY_BASE_MS, maxMs = BATCH_RETRY_MAX_MS): number {
  return Math.random() * Math.min(maxMs, baseMs * 2 ** attempt);
}

/**
 * What every DynamoDB store shares: the client (made from a configuration and then destroyed on
 * close, or given and never destroyed), the closed state, and the one way calls are made:
 * refused once closed, any failure as BackendUnavailableError ('dynamodb') after the SDK's own
 * bounded retries.
 */
export abstract class DynamoTable {
  readonly tableName: string;
  protected readonly client: DynamoDBClient;
  private readonly ownsClient: boolean;
  private closed = false;

  protected constructor(
    options: DynamoTableOptions,
    /** What the store is, for the error after close ("retained store"). */
    private readonly what: string,
  ) {
    this.tableName = options.tableName;
    this.ownsClient = !(options.client instanceof DynamoDBClient);
    this.client = options.client instanceof DynamoDBClient ? options.client : createDynamoClient(options.client);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) this.client.destroy();
  }

  protected checkOpen(): void {
    if (this.closed) throw new BackendUnavailableError('dynamodb', `${this.what} is closed`);
  }

  /** One DynamoDB call: refused once closed, failures as BackendUnavailableError. */
  protected async call<T>(operation: string, request: (client: DynamoDBClient) => Promise<T>): Promise<T> {
    this.checkOpen();
    try {
      return await request(this.client);
    } catch (err) {
      throw backendError(operation, this.tableName, err);
    }
  }

  /**
   * A conditional write: its output, or null when the ConditionExpression did not hold
   * (ConditionalCheckFailedException, which is an answer, not an outage). Other failures as `call`.
   */
  protected async callIf<T>(operation: string, request: (client: DynamoDBClient) => Promise<T>): Promise<T | null> {
    this.checkOpen();
    try {
      return await request(this.client);
    } catch (err) {
      if (isConditionalCheckFailed(err)) return null;
      throw backendError(operation, this.tableName, err);
    }
  }

  /**
   * Writes (puts and deletes) with BatchWriteItem, BATCH_WRITE_MAX at a time, a few batches in
   * parallel. What DynamoDB leaves unprocessed (throttling, partition limits) is sent again with
   * exponential backoff and jitter, up to BATCH_WRITE_ATTEMPTS tries per batch; then the call
   * fails with BackendUnavailableError. A request list must not name one key twice.
   */
  protected async batchWrite(requests: readonly WriteRequest[]): Promise<void> {
    this.checkOpen();
    const batches: WriteRequest[][] = [];
    for (let i = 0; i < requests.length; i += BATCH_WRITE_MAX) batches.push(requests.slice(i, i + BATCH_WRITE_MAX));
    await mapLimit(batches, BATCH_WRITE_PARALLEL, async (batch) => {
      let pending = batch;
      for (let attempt = 1; ; attempt++) {
        const command = new BatchWriteItemCommand({ RequestItems: { [this.tableName]: pending } });
        const out = await this.call('BatchWriteItem', (c) => c.send(command));
        const left = out.UnprocessedItems?.[this.tableName] ?? [];
        if (left.length === 0) return;
        if (attempt >= BATCH_WRITE_ATTEMPTS) {
          throw new BackendUnavailableError(
            'dynamodb',
            `dynamodb BatchWriteItem on ${this.tableName} failed: ${left.length} of ${batch.length} writes still unprocessed after ${attempt} attempts`,
          );
        }
        await sleep(backoffMs(attempt - 1));
        pending = left;
      }
    });
  }
}
