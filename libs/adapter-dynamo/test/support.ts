import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, vi } from 'vitest';
import { startDynamo } from '@fleetmq/testkit';
import type { DynamoFixture } from '@fleetmq/testkit';
import { createDynamoClient, ensureTable } from '../src/index.js';
import type { TableDefinition } from '../src/index.js';

/** A command as the SDK client sees it. */
export interface SentCommand {
  readonly name: string;
  readonly input: Record<string, unknown>;
}

type Send = (command: SentCommand & { constructor: { name: string } }) => Promise<unknown>;

/**
 * One dynalite (or DynamoDB Local) for the test file, an admin client on it, fresh tables, and
 * clients that are destroyed after each test.
 */
export function dynamoFixture() {
  let dynamo: DynamoFixture;
  let admin: DynamoDBClient;
  const clients: DynamoDBClient[] = [];

  beforeAll(async () => {
    dynamo = await startDynamo();
    admin = createDynamoClient(config());
  });
  afterEach(() => {
    vi.restoreAllMocks();
    for (const client of clients.splice(0)) client.destroy();
  });
  afterAll(async () => {
    admin?.destroy();
    await dynamo?.stop();
  });

  function config() {
    return { endpoint: dynamo.endpoint, region: dynamo.region, credentials: dynamo.credentials };
  }

  return {
    get dynamo(): DynamoFixture {
      return dynamo;
    },
    get admin(): DynamoDBClient {
      return admin;
    },
    /** Endpoint, region and credentials for a store that makes its own client. */
    config,
    /** A new table from `define` with a unique name. */
    async table(prefix: string, define: (name: string) => TableDefinition): Promise<string> {
      const tableName = `${prefix}-${randomUUID()}`;
      await ensureTable(admin, define(tableName));
      return tableName;
    },
    /** A client destroyed after the test. */
    client(): DynamoDBClient {
      const client = createDynamoClient(config());
      clients.push(client);
      return client;
    },
    /**
     * A client whose `send` is intercepted: `hook` sees each command and answers in its place;
     * `send()` sends the command for real (or `send(other)` another command instead). Every
     * command that reached the hook is recorded in `sent`.
     */
    interceptedClient(hook?: (command: SentCommand, send: (replacement?: object) => Promise<unknown>) => Promise<unknown>) {
      const client = createDynamoClient(config());
      clients.push(client);
      const sent: SentCommand[] = [];
      const original = client.send.bind(client) as unknown as Send;
      vi.spyOn(client, 'send').mockImplementation((async (command: SentCommand & { constructor: { name: string } }) => {
        const seen = { name: command.constructor.name, input: command.input };
        sent.push(seen);
        return hook ? hook(seen, (replacement) => original((replacement ?? command) as typeof command)) : original(command);
      }) as never);
      return { client, sent };
    },
  };
}
