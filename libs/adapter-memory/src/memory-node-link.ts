import { BackendUnavailableError } from '@fleetmq/protocol';
import type { NodeLink, NodeReply, NodeRequest, NodeRequestHandler } from '@fleetmq/broker';

/**
 * Request/reply between nodes that live in one process (tests, embedding): every
 * MemoryNodeLink made from one hub reaches the nodes served on that hub. A node that is not
 * served, or a closed link, fails like an unreachable node.
 */
export class MemoryNodeLinkHub {
  readonly handlers = new Map<string, NodeRequestHandler>();

  link(): MemoryNodeLink {
    return new MemoryNodeLink(this);
  }
}

export class MemoryNodeLink implements NodeLink {
  private readonly served = new Set<string>();
  private closed = false;

  constructor(private readonly hub: MemoryNodeLinkHub = new MemoryNodeLinkHub()) {}

  serve(nodeId: string, handler: NodeRequestHandler): Promise<void> {
    if (this.closed) return Promise.reject(new BackendUnavailableError('nats', 'link closed'));
    this.hub.handlers.set(nodeId, handler);
    this.served.add(nodeId);
    return Promise.resolve();
  }

  async request(nodeId: string, request: NodeRequest, timeoutMs: number): Promise<NodeReply> {
    const handler = this.closed ? undefined : this.hub.handlers.get(nodeId);
    if (handler === undefined) throw new BackendUnavailableError('nats', `node ${nodeId} does not answer`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new BackendUnavailableError('nats', `node ${nodeId} did not answer in ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([handler(request), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    this.closed = true;
    for (const nodeId of this.served) this.hub.handlers.delete(nodeId);
    this.served.clear();
    return Promise.resolve();
  }
}
