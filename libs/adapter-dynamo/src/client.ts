import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';

/** How many times the SDK tries one request (first try included) before the store gives up. */
export const DEFAULT_MAX_ATTEMPTS = 3;

/**
 * A DynamoDB client with FleetMQ's defaults: the SDK's standard retry (with backoff, throttling
 * included) bounded to DEFAULT_MAX_ATTEMPTS, and connection/request timeouts so that an
 * unreachable endpoint fails in seconds rather than hanging a publish. `config` overrides them.
 */
export function createDynamoClient(config: DynamoDBClientConfig = {}): DynamoDBClient {
  return new DynamoDBClient({
    maxAttempts: DEFAULT_MAX_ATTEMPTS,
    requestHandler: { connectionTimeout: 2_000, requestTimeout: 5_000 },
    ...config,
  });
}

/**
 * What a store is given: a client to use (the store never destroys it), or the configuration of
 * one the store makes with createDynamoClient and destroys on close.
 */
export type DynamoClientOption = DynamoDBClient | DynamoDBClientConfig;
