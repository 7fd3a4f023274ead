import { ReasonCode, isValidTopicFilter, type ProtocolVersion } from '@fleetmq/protocol';
import type { BridgeStats } from '@fleetmq/bridge';
import type { Broker, BrokerPorts, Channel, Session } from '@fleetmq/broker';
import type { Logger } from '../logger.js';

/** What an admin route answers: an HTTP status and a JSON body. */
export interface AdminReply {
  readonly status: number;
  readonly body: unknown;
}

export interface AdminDeps {
  readonly broker: Broker;
  readonly ports: BrokerPorts;
  /** The node's drain (the same as SIGTERM's); resolves when the node has stopped. */
  readonly drain: () => Promise<void>;
  readonly draining: () => boolean;
  readonly log: Logger;
  /** The bridges this node knows (running here, or on standby while another node runs them). */
  readonly bridges?: () => readonly BridgeStats[];
}

/** A page of a listing: `limit` defaults to this, and may not exceed MAX_LIMIT. */
export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

export interface PageQuery {
  readonly prefix: string;
  /** Exclusive: the client ID the previous page ended with. */
  readonly after: string | undefined;
  readonly limit: number;
}

const VERSIONS: Readonly<Record<ProtocolVersion, string>> = { 3: '3.1', 4: '3.1.1', 5: '5.0' };
const NEVER = 0xffffffff;

export function badRequest(message: string): AdminReply {
  return { status: 400, body: { error: 'bad_request', message } };
}

function notFound(message: string, extra: Record<string, unknown> = {}): AdminReply {
  return { status: 404, body: { error: 'not_found', message, ...extra } };
}

/** `?prefix=&cursor=&limit=` read and checked; a string is a 400 message. */
export function pageQuery(params: URLSearchParams): PageQuery | string {
  const limit = limitParam(params);
  if (typeof limit === 'string') return limit;
  const cursor = params.get('cursor') ?? '';
  let after: string | undefined;
  if (cursor !== '') {
    after = Buffer.from(cursor, 'base64url').toString('utf8');
    if (Buffer.from(after, 'utf8').toString('base64url') !== cursor) return 'cursor is not one this API returned';
  }
  return { prefix: params.get('prefix') ?? '', after, limit };
}

export function limitParam(params: URLSearchParams): number | string {
  const raw = params.get('limit');
  if (raw === null || raw === '') return DEFAULT_LIMIT;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) return `limit must be a whole number from 1 to ${MAX_LIMIT}`;
  return limit;
}

/**
 * One page by client ID: the items whose ID has the prefix and comes after the cursor, in
 * order, shown by `view` (only the page's items are turned into answers).
 */
function page<T>(items: Iterable<T>, idOf: (item: T) => string, view: (item: T) => unknown, q: PageQuery): { items: unknown[]; nextCursor: string | null } {
  const chosen: [string, T][] = [];
  for (const item of items) {
    const id = idOf(item);
    if (!id.startsWith(q.prefix)) continue;
    if (q.after !== undefined && id <= q.after) continue;
    chosen.push([id, item]);
  }
  chosen.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const shown = chosen.slice(0, q.limit);
  const last = shown[shown.length - 1];
  return {
    items: shown.map(([, item]) => view(item)),
    nextCursor: chosen.length > q.limit && last !== undefined ? Buffer.from(last[0], 'utf8').toString('base64url') : null,
  };
}

type Detached = { readonly session: Session; readonly since: number };

function connectedChannels(broker: Broker): Channel[] {
  const out: Channel[] = [];
  for (const channel of broker.connections()) if (channel.state === 'connected' && channel.session !== undefined) out.push(channel);
  return out;
}

function connectedChannel(broker: Broker, clientId: string): Channel | undefined {
  for (const channel of broker.connections()) if (channel.state === 'connected' && channel.clientId === clientId) return channel;
  return undefined;
}

function sessionCounts(session: Session) {
  return {
    protocol: VERSIONS[session.protocolVersion],
    subscriptions: session.subscriptions.size,
    inflight: session.inflight.size,
    queued: session.queue.length,
    expiryInterval: session.expiryInterval,
  };
}

function clientView(channel: Channel) {
  return {
    clientId: channel.clientId,
    username: channel.user ?? null,
    listener: channel.info.listener,
    transport: channel.info.transport,
    remoteAddress: channel.info.remoteAddress,
    remotePort: channel.info.remotePort,
    ...sessionCounts(channel.session!),
  };
}

function detachedView(session: Session, since: number) {
  return {
    clientId: session.clientId,
    state: 'detached' as const,
    ...sessionCounts(session),
    disconnectedAt: new Date(since).toISOString(),
    expiresAt: session.expiryInterval === NEVER ? null : new Date(since + session.expiryInterval * 1000).toISOString(),
  };
}

/**
 * The admin API's actions over this node's broker (the routes are in ops-server.ts). Every
 * listing is of this node only: the load balancer decides where a client is.
 */
export class AdminApi {
  constructor(private readonly deps: AdminDeps) {}

  clients(q: PageQuery): AdminReply {
    return { status: 200, body: page(connectedChannels(this.deps.broker), (c) => c.clientId, clientView, q) };
  }

  sessions(q: PageQuery): AdminReply {
    const { broker } = this.deps;
    const all: (Channel | Detached)[] = connectedChannels(broker);
    for (const d of broker.registry.detachedSessions()) all.push(d);
    const view = (e: Channel | Detached) =>
      'since' in e ? detachedView(e.session, e.since) : { clientId: e.clientId, state: 'connected', ...sessionCounts(e.session!) };
    return { status: 200, body: page(all, (e) => ('since' in e ? e.session.clientId : e.clientId), view, q) };
  }

  /** One session: held here (connected or detached), else as the session store has it. */
  async session(clientId: string): Promise<AdminReply> {
    const { broker, ports } = this.deps;
    const channel = connectedChannel(broker, clientId);
    const detached = channel === undefined ? broker.registry.detachedSession(clientId) : undefined;
    const session = channel?.session ?? detached?.session;
    if (session !== undefined) {
      const offlineQueued = detached !== undefined ? await ports.offlineQueue.length(clientId) : 0;
      return {
        status: 200,
        body: {
          ...(channel !== undefined ? { ...clientView(channel), state: 'connected' } : detachedView(session, detached!.since)),
          node: broker.nodeId,
          offlineQueued,
          awaitingRelease: session.awaitingRel.size,
          subscriptionList: [...session.subscriptions].map(([filter, o]) => ({ filter, ...o })),
          will: session.will === undefined ? null : { topic: session.will.topic, qos: session.will.qos, retain: session.will.retain, delayInterval: session.will.delayInterval },
        },
      };
    }
    const [stored, owner] = await Promise.all([ports.sessions.load(clientId), ports.ownership.owner(clientId)]);
    if (stored === null) return notFound(`no session for client ${JSON.stringify(clientId)}`, owner !== null ? { node: owner.nodeId } : {});
    const s = stored.snapshot;
    return {
      status: 200,
      body: {
        clientId,
        state: 'stored',
        node: owner?.nodeId ?? null,
        protocol: VERSIONS[s.protocolVersion],
        subscriptions: s.subscriptions.length,
        inflight: s.inflight.length,
        queued: s.queue.length,
        expiryInterval: s.expiryInterval,
        disconnectedAt: s.disconnectedAt === undefined ? null : new Date(s.disconnectedAt).toISOString(),
        offlineQueued: await ports.offlineQueue.length(clientId),
        subscriptionList: s.subscriptions.map(([filter, o]) => ({ filter, ...o })),
      },
    };
  }

  /** Disconnects a client of this node: MQTT 5 DISCONNECT 0x98 Administrative action, 3.x a close. */
  kick(clientId: string): AdminReply {
    const channel = connectedChannel(this.deps.broker, clientId);
    if (channel === undefined) return notFound(`client ${JSON.stringify(clientId)} is not connected to this node`);
    channel.disconnect(ReasonCode.AdministrativeAction, 'administrative action');
    this.deps.log.info({ clientId }, 'admin_client_kicked');
    return { status: 200, body: { clientId, kicked: true } };
  }

  /**
   * Ends a session held here: its client is kicked, then the session is discarded as its
   * expiry would discard it (stored session and offline queue deleted).
   */
  async discard(clientId: string): Promise<AdminReply> {
    const { broker } = this.deps;
    const channel = connectedChannel(broker, clientId);
    // the close is queued for the client ID before the discard below, so it runs first
    channel?.disconnect(ReasonCode.AdministrativeAction, 'session discarded');
    const discarded = await broker.registry.discard(clientId);
    if (channel === undefined && !discarded) {
      const owner = await this.deps.ports.ownership.owner(clientId);
      const elsewhere = owner !== null && owner.nodeId !== broker.nodeId;
      return notFound(
        elsewhere ? `the session of ${JSON.stringify(clientId)} is held by node ${owner.nodeId}: ask that node` : `this node holds no session for ${JSON.stringify(clientId)}`,
        elsewhere ? { node: owner.nodeId } : {},
      );
    }
    this.deps.log.info({ clientId, kicked: channel !== undefined }, 'admin_session_discarded');
    return { status: 200, body: { clientId, kicked: channel !== undefined, discarded: true } };
  }

  /** Retained messages matching `filter` (at most `limit`), as the retained store has them. */
  /** Every configured bridge as this node sees it: state (`standby`: another node runs it), address, messages in/out, queue, drops. */
  bridges(): AdminReply {
    return { status: 200, body: { bridges: this.deps.bridges?.() ?? [] } };
  }

  async retained(filter: string, limit: number): Promise<AdminReply> {
    if (!isValidTopicFilter(filter)) return badRequest(`filter ${JSON.stringify(filter)} is not a valid MQTT topic filter`);
    const items: unknown[] = [];
    let truncated = false;
    for await (const m of this.deps.broker.retained.match([filter])) {
      if (items.length === limit) {
        truncated = true;
        break;
      }
      items.push({
        topic: m.topic,
        qos: m.qos,
        payloadBytes: m.payload.length,
        payload: printable(m.payload),
        createdAt: new Date(m.createdAt).toISOString(),
        expiresAt: m.expiresAt === undefined ? null : new Date(m.expiresAt).toISOString(),
      });
    }
    return { status: 200, body: { items, truncated } };
  }

  /** Starts the drain SIGTERM starts; the process exits once it is done. */
  drain(): AdminReply {
    const already = this.deps.draining();
    if (!already) this.deps.log.info({ nodeId: this.deps.broker.nodeId }, 'admin_drain_requested');
    void this.deps.drain();
    return { status: 202, body: { nodeId: this.deps.broker.nodeId, draining: true } };
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const PAYLOAD_SHOWN = 1024;

/** A payload shown as text when it is short UTF-8; null otherwise (payloadBytes tells its size). */
function printable(payload: Buffer): string | null {
  if (payload.length > PAYLOAD_SHOWN) return null;
  try {
    return utf8.decode(payload);
  } catch {
    return null;
  }
}
