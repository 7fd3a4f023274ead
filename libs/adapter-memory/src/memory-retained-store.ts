import { BackendUnavailableError } from '@fleetmq/protocol';
import { isExpired } from '@fleetmq/broker';
import type { Message, RetainedStore } from '@fleetmq/broker';

/** One topic level; holds the retained message of the topic that ends here, if any. */
class LevelNode {
  readonly children = new Map<string, LevelNode>();
  message: Message | undefined;
}

const DOLLAR = 0x24;

/**
 * The in-process RetainedStore, standing in for DynamoDB on a node that runs alone.
 * Topics are kept in a tree by level, so a filter walks only the branches it can match:
 * `a/+/c` visits topics under `a` only. Expired messages are never returned and are
 * deleted when a lookup meets them (`count` includes those not met yet).
 */
export class MemoryRetainedStore implements RetainedStore {
  private readonly root = new LevelNode();
  private size = 0;
  private visited = 0;
  private closed = false;

  /** Tree nodes visited by `match` since the store was created (to check that walks stay narrow). */
  get nodesVisited(): number {
    return this.visited;
  }

  async set(message: Message): Promise<void> {
    this.ensureOpen();
    if (message.payload.length === 0) {
      this.delete(message.topic);
      return;
    }
    let node = this.root;
    for (const level of message.topic.split('/')) {
      let next = node.children.get(level);
      if (next === undefined) {
        next = new LevelNode();
        node.children.set(level, next);
      }
      node = next;
    }
    if (node.message === undefined) this.size++;
    node.message = message;
  }

  async get(topic: string): Promise<Message | null> {
    this.ensureOpen();
    let node: LevelNode | undefined = this.root;
    for (const level of topic.split('/')) {
      node = node.children.get(level);
      if (node === undefined) return null;
    }
    const message = node.message;
    if (message === undefined) return null;
    if (isExpired(message, Date.now())) {
      this.delete(topic);
      return null;
    }
    return message;
  }

  async *match(filters: readonly string[]): AsyncIterable<Message> {
    this.ensureOpen();
    const seen = filters.length > 1 ? new Set<string>() : undefined;
    for (const filter of filters) {
      // Collected synchronously, so each filter sees one consistent state of the tree.
      const found: Message[] = [];
      this.collect(filter, Date.now(), found);
      for (const message of found) {
        if (seen !== undefined) {
          if (seen.has(message.topic)) continue;
          seen.add(message.topic);
        }
        yield message;
      }
    }
  }

  async count(): Promise<number> {
    this.ensureOpen();
    return this.size;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Walks the branches `filter` can match (iteratively: topics may be very deep). */
  private collect(filter: string, now: number, out: Message[]): void {
    const levels = filter.split('/');
    const expired: string[] = [];
    const take = (node: LevelNode): void => {
      const message = node.message;
      if (message === undefined) return;
      if (isExpired(message, now)) expired.push(message.topic);
      else out.push(message);
    };
    const nodes: LevelNode[] = [this.root];
    const depths: number[] = [0];
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const i = depths.pop()!;
      this.visited++;
      if (i === levels.length) {
        take(node);
        continue;
      }
      const level = levels[i]!;
      if (level === '#') {
        // this level and everything below, including the parent itself [MQTT-4.7.1-2]
        take(node);
        this.collectSubtree(node, i === 0, take);
      } else if (level === '+') {
        for (const [name, child] of node.children) {
          // [MQTT-4.7.2-1] a leading wildcard does not match topics starting with '$'
          if (i === 0 && name.charCodeAt(0) === DOLLAR) continue;
          nodes.push(child);
          depths.push(i + 1);
        }
      } else {
        const child = node.children.get(level);
        if (child !== undefined) {
          nodes.push(child);
          depths.push(i + 1);
        }
      }
    }
    for (const topic of expired) this.delete(topic);
  }

  /** Every node below `from` (not `from` itself). */
  private collectSubtree(from: LevelNode, skipDollar: boolean, take: (node: LevelNode) => void): void {
    const stack: LevelNode[] = [];
    for (const [name, child] of from.children) {
      if (skipDollar && name.charCodeAt(0) === DOLLAR) continue;
      stack.push(child);
    }
    while (stack.length > 0) {
      const node = stack.pop()!;
      this.visited++;
      take(node);
      for (const child of node.children.values()) stack.push(child);
    }
  }

  private delete(topic: string): void {
    const levels = topic.split('/');
    const path: LevelNode[] = [this.root];
    let node = this.root;
    for (const level of levels) {
      const next = node.children.get(level);
      if (next === undefined) return;
      path.push(next);
      node = next;
    }
    if (node.message === undefined) return;
    node.message = undefined;
    this.size--;
    // prune nodes left with neither a message nor children
    for (let i = levels.length; i > 0; i--) {
      const child = path[i]!;
      if (child.message !== undefined || child.children.size > 0) break;
      path[i - 1]!.children.delete(levels[i - 1]!);
    }
  }

  private ensureOpen(): void {
    if (this.closed) throw new BackendUnavailableError('dynamodb', 'retained store is closed');
  }
}
