import { connect, type NatsConnection, type Subscription } from 'nats';
import { BackendUnavailableError } from '@fleetmq/protocol';
import { decodeJson, encodeJson, silentLog } from '@fleetmq/broker';
import type { BrokerLog, NodeLink, NodeReply, NodeRequest, NodeRequestHandler } from '@fleetmq/broker';

export interface NatsNodeLinkOptions {
  readonly servers: readonly string[];
  /** Connection name (the node ID), shown in the server's `/connz`. */
  readonly name: string;
  /** Subject prefix of node-to-node requests (default `fleetmq.node`). */
  readonly subjectPrefix?: string;
  readonly reconnectTimeWait?: number;
  readonly log?: BrokerLog;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** How long close() waits for requests being answered to get their replies out. */
const CLOSE_ANSWER_WAIT_MS = 5_000;

/**
 * Node-to-node request/reply (session takeover) over NATS: each node serves the subject
 * `<prefix>.<nodeId>`; a request to a node that is gone fails fast ("no responders") or
 * times out, and the caller falls back to the stores. Its own connection, so that a busy
 * data path never delays a takeover.
 */
export class NatsNodeLink implements NodeLink {
  private readonly prefix: string;
  private readonly log: BrokerLog;
  private readonly subscriptions: Subscription[] = [];
  /** Requests being answered (bounded by what peers send; each ends with its reply). */
  private readonly answering = new Set<Promise<void>>();
  private closing: Promise<void> | undefined;

  private readonly connection: Promise<NatsConnection>;
  private nc: NatsConnection | undefined;

  /** Connects in the background, retrying until NATS answers; requests made before then wait. */
  constructor(options: NatsNodeLinkOptions) {
    this.prefix = options.subjectPrefix ?? 'fleetmq.node';
    this.log = (options.log ?? silentLog).child({ component: 'nats-node-link' });
    this.connection = this.connectWithRetry(options);
    this.connection.then(
      (nc) => {
        this.nc = nc;
        if (this.closing !== undefined) void nc.close();
      },
      () => undefined, // closed before NATS ever answered
    );
  }

  /** Tries until NATS answers or the link is closed (nats.js' own first-connect wait cannot be stopped). */
  private async connectWithRetry(options: NatsNodeLinkOptions): Promise<NatsConnection> {
    const wait = options.reconnectTimeWait ?? 1000;
    for (let attempt = 0; ; attempt++) {
      if (this.closing !== undefined) throw new BackendUnavailableError('nats', 'node link closed');
      try {
        return await connect({
          servers: [...options.servers],
          name: `${options.name}/link`,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: wait,
        });
      } catch (err) {
        if (attempt === 0) this.log.warn({ err: (err as Error).message }, 'node_link_waiting_for_nats');
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  private subject(nodeId: string): string {
    // node IDs are [A-Za-z0-9._-]: '.' would split the token, so it is replaced
    return `${this.prefix}.${nodeId.replace(/\./g, '_')}`;
  }

  /** Resolves once serving; serving starts whenever NATS first answers (the start does not wait for it). */
  serve(nodeId: string, handler: NodeRequestHandler): Promise<void> {
    void this.connection.then((nc) => this.subscribe(nc, nodeId, handler)).catch(() => undefined);
    return Promise.resolve();
  }

  private async subscribe(nc: NatsConnection, nodeId: string, handler: NodeRequestHandler): Promise<void> {
    if (this.closing !== undefined) return;
    const sub = nc.subscribe(this.subject(nodeId), {
      callback: (err, msg) => {
        if (err !== null) return;
        let request: NodeRequest;
        try {
          request = decodeJson<NodeRequest>(decoder.decode(msg.data));
        } catch {
          this.log.warn({ subject: msg.subject }, 'node_request_malformed');
          return;
        }
        const answered = handler(request).then(
          (reply) => {
            const data = encoder.encode(encodeJson(reply));
            try {
              msg.respond(data);
            } catch (cause) {
              // larger than the server's max_payload (a huge takeover buffer), or the link is
              // gone: the requester times out and falls back to the stores
              this.log.error({ err: cause, bytes: data.length, type: request.type }, 'node_reply_failed');
            }
          },
          (cause: unknown) => this.log.error({ err: cause, type: request.type, clientId: 'clientId' in request ? request.clientId : undefined }, 'node_request_failed'),
        );
        this.answering.add(answered);
        void answered.finally(() => this.answering.delete(answered));
      },
    });
    this.subscriptions.push(sub);
    await nc.flush();
  }

  async request(nodeId: string, request: NodeRequest, timeoutMs: number): Promise<NodeReply> {
    const nc = this.nc;
    if (nc === undefined || nc.isClosed()) throw new BackendUnavailableError('nats', `not connected: cannot ask node ${nodeId}`);
    try {
      const msg = await nc.request(this.subject(nodeId), encoder.encode(encodeJson(request)), { timeout: timeoutMs });
      return decodeJson<NodeReply>(decoder.decode(msg.data));
    } catch (err) {
      throw new BackendUnavailableError('nats', `node ${nodeId} did not answer ${request.type}: ${(err as Error).message}`, { cause: err });
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // no new requests; those being answered get their replies out first (a takeover-end carries messages)
      for (const sub of this.subscriptions) sub.unsubscribe();
      const deadline = Date.now() + CLOSE_ANSWER_WAIT_MS;
      while (this.answering.size > 0 && Date.now() < deadline) {
        await Promise.race([Promise.allSettled([...this.answering]), new Promise((resolve) => setTimeout(resolve, Math.max(1, deadline - Date.now())).unref())]);
      }
      const nc = this.nc;
      if (nc === undefined) return; // still connecting: nats.js offers no way to cancel that attempt
      await nc.drain().catch(() => nc.close());
    })();
    return this.closing;
  }
}
