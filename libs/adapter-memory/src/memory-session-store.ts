import { BackendUnavailableError } from '@fleetmq/protocol';
import { FencedError, decodeSnapshot, encodeSnapshot } from '@fleetmq/broker';
import type { SessionSnapshot, SessionStore, StoredSession } from '@fleetmq/broker';

interface Row {
  /** The snapshot encoded as JSON: nothing a caller holds can reach what is stored. */
  readonly text: string;
  readonly epoch: number;
}

/**
 * The in-process SessionStore, standing in for DynamoDB on a node that runs alone.
 * Writes are fenced: a save or delete with an epoch lower than the stored one throws
 * FencedError and changes nothing.
 */
export class MemorySessionStore implements SessionStore {
  private readonly rows = new Map<string, Row>();
  private closed = false;

  async load(clientId: string): Promise<StoredSession | null> {
    this.ensureOpen();
    const row = this.rows.get(clientId);
    return row === undefined ? null : { snapshot: decodeSnapshot(row.text), epoch: row.epoch };
  }

  async save(snapshot: SessionSnapshot, epoch: number): Promise<void> {
    this.ensureOpen();
    const row = this.rows.get(snapshot.clientId);
    if (row !== undefined && epoch < row.epoch) throw new FencedError(snapshot.clientId, epoch);
    this.rows.set(snapshot.clientId, { text: encodeSnapshot(snapshot), epoch });
  }

  async delete(clientId: string, epoch: number): Promise<SessionSnapshot | null> {
    this.ensureOpen();
    const row = this.rows.get(clientId);
    if (row === undefined) return null;
    if (epoch < row.epoch) throw new FencedError(clientId, epoch);
    this.rows.delete(clientId);
    return decodeSnapshot(row.text);
  }

  /** Number of stored sessions. */
  get size(): number {
    return this.rows.size;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private ensureOpen(): void {
    if (this.closed) throw new BackendUnavailableError('dynamodb', 'session store is closed');
  }
}
