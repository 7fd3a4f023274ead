import { BackendUnavailableError } from '@fleetmq/protocol';

/**
 * Turns whatever the AWS SDK threw (network error, timeout, throttling after the SDK's own
 * bounded retries, missing table, 5xx) into a BackendUnavailableError, so the broker refuses
 * what it cannot make durable instead of acknowledging it. The SDK error is kept as `cause`.
 */
export function backendError(operation: string, tableName: string, err: unknown): BackendUnavailableError {
  if (err instanceof BackendUnavailableError) return err;
  const name = err instanceof Error ? err.name : 'Error';
  const detail = err instanceof Error ? err.message : String(err);
  const hint =
    name === 'ResourceNotFoundException'
      ? ` (table ${tableName} is missing: create it with \`fleetmq dynamo create-tables\`)`
      : '';
  return new BackendUnavailableError('dynamodb', `dynamodb ${operation} on ${tableName} failed: ${name}: ${detail}${hint}`, {
    cause: err,
  });
}

/** True when DynamoDB refused a write because its ConditionExpression did not hold. */
export function isConditionalCheckFailed(err: unknown): boolean {
  return err instanceof Error && err.name === 'ConditionalCheckFailedException';
}
