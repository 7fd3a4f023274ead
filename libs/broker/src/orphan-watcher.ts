import type { BrokerLog } from './log.js';
import type { NodeRegistry } from './ports/node-registry.js';
import type { SessionOwnership } from './ports/session-ownership.js';
import { rendezvousOwner } from './rendezvous.js';
import type { SessionRegistry } from './session-registry.js';

export interface OrphanWatcherDeps {
  readonly nodeId: string;
  readonly nodes: NodeRegistry;
  readonly ownership: SessionOwnership;
  /** `answers` asks a node that looks dead over the node link before anything is adopted from it. */
  readonly sessions: Pick<SessionRegistry, 'adoptOrphan' | 'answers'>;
  readonly log: BrokerLog;
  /** How often to look for dead nodes (default a third of the registry's TTL). */
  readonly intervalMs?: number;
  /** The clock (default `Date.now`); it should be the registry's. */
  readonly now?: () => number;
}

export interface OrphanWatcherStats {
  /** Client IDs of dead nodes this node adopted (a session, or a will to publish). */
  adopted: number;
  /** Adoptions that failed (a backend error) and wait for the next pass. */
  failed: number;
}

/** Client IDs read from the ownership index per call. */
const PAGE = 500;
/** Failed adoptions remembered for a retry at most; more are found again by the next scan. */
const MAX_RETRIES = 10_000;

/**
 * Finds the sessions of nodes that died (DESIGN node lifecycle) and adopts this node's share:
 * every client ID a dead node still owns whose rendezvous owner among the live nodes is this
 * node. At start it also adopts what this node's last run left (same node ID, restarted
 * before its heartbeat expired). `claimFrom` makes each adoption happen once cluster-wide,
 * so two nodes that briefly disagree about who is live cannot both adopt a client ID.
 * A node whose heartbeat lapsed but that answers over the node link (Redis out of its reach
 * only) is alive: nothing is adopted from it while it answers, asked again before each page.
 */
export class OrphanWatcher {
  readonly stats: OrphanWatcherStats = { adopted: 0, failed: 0 };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** When this node was first seen live: expiries are trusted one TTL after that. */
  private liveSince: number | undefined;
  private ownLeftoversDone = false;
  /** Client IDs whose adoption failed after this node claimed them: clientId → when their node died. */
  private readonly retries = new Map<string, number>();
  /** Expired nodes that answered, logged once each (at most the registry's expired nodes). */
  private readonly answering = new Set<string>();

  constructor(private readonly deps: OrphanWatcherDeps) {}

  start(): void {
    const interval = this.deps.intervalMs ?? Math.max(100, Math.floor(this.deps.nodes.ttlMs / 3));
    this.timer = setInterval(() => void this.poll(), interval);
    this.timer.unref();
    void this.poll();
  }

  /** Stops polling and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass (at most one at a time); resolves when it is done. Errors are logged, not thrown. */
  poll(): Promise<void> {
    this.running ??= this.pass()
      .catch((err: unknown) => this.deps.log.warn({ err: (err as Error).message }, 'orphan_scan_failed'))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async pass(): Promise<void> {
    const { nodes, nodeId } = this.deps;
    const live = await nodes.liveNodes();
    if (!live.includes(nodeId)) {
      this.liveSince = undefined; // not registered (yet, or any more): others may be adopting from this node
      return;
    }
    const now = (this.deps.now ?? Date.now)();
    this.liveSince ??= now;
    if (!this.ownLeftoversDone) {
      await this.adoptAll(nodeId, now, () => true);
      this.ownLeftoversDone = true;
    }
    for (const [clientId, diedAt] of [...this.retries]) {
      if (this.stopped) return;
      this.retries.delete(clientId);
      await this.adopt(clientId, nodeId, diedAt);
    }
    // after an outage of its own, a node sees every peer expired until they beat again
    if (now - this.liveSince < nodes.ttlMs) return;
    const expired = await nodes.expiredNodes();
    for (const id of this.answering) if (!expired.some((dead) => dead.nodeId === id)) this.answering.delete(id);
    for (const dead of expired) {
      if (dead.nodeId === nodeId) continue;
      const diedAt = Math.min(now, dead.expiresAt - nodes.ttlMs);
      await this.adoptAll(dead.nodeId, diedAt, (clientId) => rendezvousOwner(clientId, live) === nodeId, () => this.silent(dead.nodeId));
    }
  }

  /** True when an expired node does not answer over the node link (it is dead, or cut off from this node). */
  private async silent(deadNode: string): Promise<boolean> {
    if (!(await this.deps.sessions.answers(deadNode))) {
      this.answering.delete(deadNode);
      return true;
    }
    if (!this.answering.has(deadNode)) {
      this.answering.add(deadNode);
      this.deps.log.info({ node: deadNode }, 'node_expired_but_answering');
    }
    return false;
  }

  /**
   * Adopts every client ID `from` owns that `mine` picks, while `dead` (asked before each page
   * with something to adopt, so a dead node that left nothing is not asked) says so.
   */
  private async adoptAll(from: string, diedAt: number, mine: (clientId: string) => boolean, dead?: () => Promise<boolean>): Promise<void> {
    let cursor = '0';
    do {
      if (this.stopped) return;
      const page = await this.deps.ownership.ownedBy(from, cursor, PAGE);
      const picked = page.clientIds.filter(mine);
      if (picked.length > 0 && dead !== undefined && !(await dead())) return;
      for (const clientId of picked) await this.adopt(clientId, from, diedAt);
      cursor = page.cursor;
    } while (cursor !== '0');
  }

  private async adopt(clientId: string, from: string, diedAt: number): Promise<void> {
    try {
      if (await this.deps.sessions.adoptOrphan(clientId, from, diedAt)) this.stats.adopted++;
    } catch (err) {
      // the claim may have gone through: retried as this node's own (claimFrom this node)
      this.stats.failed++;
      if (this.retries.size < MAX_RETRIES) this.retries.set(clientId, diedAt);
      this.deps.log.warn({ clientId, from, err: (err as Error).message }, 'orphan_adoption_failed');
    }
  }
}
