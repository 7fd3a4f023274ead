import type { SessionSnapshot } from '../session-snapshot.js';

/** A write was refused because a newer owner (higher epoch) already wrote this session. */
export class FencedError extends Error {
  override readonly name = 'FencedError';
  constructor(
    readonly clientId: string,
    readonly epoch: number,
  ) {
    super(`session ${clientId}: write with epoch ${epoch} fenced by a newer owner`);
  }
}

export interface StoredSession {
  readonly snapshot: SessionSnapshot;
  readonly epoch: number;
}

/**
 * Keeps persistent sessions (DynamoDB in a cluster, in-process alone).
 * Writes are conditional on the epoch: a write with an epoch lower than the stored one
 * fails with FencedError, so a stale owner can never overwrite a newer one.
 */
export interface SessionStore {
  load(clientId: string): Promise<StoredSession | null>;
  save(snapshot: SessionSnapshot, epoch: number): Promise<void>;
  /**
   * Removes the session; resolves with what it held (null when there was nothing), so that
   * whoever ends a session a dead node left behind can publish its will in the same call.
   */
  delete(clientId: string, epoch: number): Promise<SessionSnapshot | null>;
  close(): Promise<void>;
}
