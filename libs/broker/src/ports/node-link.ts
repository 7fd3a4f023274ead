import type { Delivery } from '../delivery.js';
import type { Message } from '../message.js';
import type { SessionSnapshot } from '../session-snapshot.js';

/**
 * Session takeover between nodes (DESIGN invariant 3), in two steps asked by the new owner:
 * - `takeover-begin`: the old owner closes its client (MQTT 5: DISCONNECT 0x8E), stops
 *   intake, keeps the session's subscriptions open but buffers what they match, and answers
 *   with the session as a snapshot (null when it holds no session for that client ID);
 * - `takeover-end`: sent once the new owner's own subscriptions are active on the bus; the
 *   old owner drops the session and answers with what it buffered meanwhile, which the new
 *   owner replays, dropping duplicates by message ID.
 * A draining node hands its detached sessions to live nodes with `adopt`: the adopter claims
 * the client ID and runs the same two steps against the draining node.
 * `ping` asks whether a node is alive: a node whose heartbeat lapsed (Redis out of its reach,
 * a long pause) but that answers still holds its clients, and is not adopted from.
 */
export type NodeRequest =
  | { readonly type: 'takeover-begin'; readonly clientId: string; readonly epoch: number }
  | { readonly type: 'takeover-end'; readonly clientId: string; readonly epoch: number }
  /** A draining node asks a live one to take a detached session over from it (and keep it detached). */
  | { readonly type: 'adopt'; readonly clientId: string; readonly from: string }
  | { readonly type: 'ping' }
  /**
   * An old owner whose takeover-end never came (or that is draining) hands what it buffered to
   * the node that owns the client now, at that epoch; the owner delivers it to the client (or
   * captures it for a detached session). `ok: false`: it does not hold the session at that
   * epoch, and the old owner appends the deliveries to the offline queue instead.
   */
  | { readonly type: 'deliver'; readonly clientId: string; readonly epoch: number; readonly deliveries: readonly BufferedDelivery[] };

export interface BufferedDelivery {
  readonly message: Message;
  readonly delivery: Delivery;
  readonly shared?: string | undefined;
}

export type NodeReply =
  | { readonly type: 'snapshot'; readonly snapshot: SessionSnapshot | null }
  | { readonly type: 'buffer'; readonly deliveries: readonly BufferedDelivery[] }
  | { readonly type: 'adopted'; readonly ok: boolean }
  | { readonly type: 'pong' }
  | { readonly type: 'delivered'; readonly ok: boolean };

export type NodeRequestHandler = (request: NodeRequest) => Promise<NodeReply>;

/**
 * Request/reply between edge nodes (NATS in a cluster, in-process for nodes in one process).
 * `request` rejects when the node does not answer in time (it died, or never existed): the
 * caller then falls back to what the stores hold.
 */
export interface NodeLink {
  serve(nodeId: string, handler: NodeRequestHandler): Promise<void>;
  request(nodeId: string, request: NodeRequest, timeoutMs: number): Promise<NodeReply>;
  close(): Promise<void>;
}
