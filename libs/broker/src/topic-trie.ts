/**
 * A subscription trie: topic filters → entries, matched against topic names with MQTT
 * semantics ('+' one level, '#' this level and below including the parent, '$' topics
 * not matched by a leading wildcard). Each filter holds a map of entries by key.
 */
class TrieNode<K, V> {
  readonly children = new Map<string, TrieNode<K, V>>();
  /** Entries of the filter that ends at this node. */
  entries: Map<K, V> | undefined;
  filter: string | undefined;

  isEmpty(): boolean {
    return this.children.size === 0 && (this.entries === undefined || this.entries.size === 0);
  }
}

/** Topics with more levels than this are matched without recursion (a topic may have 32,767). */
const MAX_RECURSION = 256;

export type TrieVisitor<K, V> = (filter: string, entries: ReadonlyMap<K, V>) => void;

export class TopicTrie<K, V> {
  private readonly root = new TrieNode<K, V>();
  private filters = 0;

  /** Number of distinct filters with at least one entry. */
  get size(): number {
    return this.filters;
  }

  /** Adds or replaces the entry for key under filter; returns true if the filter is new. */
  add(filter: string, key: K, value: V): boolean {
    let node = this.root;
    for (const level of filter.split('/')) {
      let next = node.children.get(level);
      if (next === undefined) {
        next = new TrieNode<K, V>();
        node.children.set(level, next);
      }
      node = next;
    }
    let isNew = false;
    if (node.entries === undefined || node.entries.size === 0) {
      node.entries ??= new Map();
      node.filter = filter;
      this.filters++;
      isNew = true;
    }
    node.entries.set(key, value);
    return isNew;
  }

  get(filter: string, key: K): V | undefined {
    return this.find(filter)?.entries?.get(key);
  }

  /** Entries of one filter, exactly. */
  entriesOf(filter: string): ReadonlyMap<K, V> | undefined {
    const e = this.find(filter)?.entries;
    return e !== undefined && e.size > 0 ? e : undefined;
  }

  /** Removes the entry; returns true if the filter has no entries left (and is gone). */
  remove(filter: string, key: K): boolean {
    const levels = filter.split('/');
    const path: TrieNode<K, V>[] = [this.root];
    let node = this.root;
    for (const level of levels) {
      const next = node.children.get(level);
      if (next === undefined) return false;
      path.push(next);
      node = next;
    }
    if (node.entries === undefined || !node.entries.delete(key)) return false;
    if (node.entries.size > 0) return false;
    node.entries = undefined;
    node.filter = undefined;
    this.filters--;
    // prune empty nodes upwards
    for (let i = levels.length; i > 0; i--) {
      const child = path[i]!;
      if (!child.isEmpty()) break;
      path[i - 1]!.children.delete(levels[i - 1]!);
    }
    return true;
  }

  /** Calls visit once for every filter that matches the topic. */
  match(topic: string, visit: TrieVisitor<K, V>): void {
    const levels = topic.split('/');
    const dollar = topic.charCodeAt(0) === 0x24;
    if (levels.length <= MAX_RECURSION) this.walk(this.root, levels, 0, dollar, visit);
    else this.matchDeep(levels, dollar, visit);
  }

  /**
   * What matches at `node` for level i: its '#' child ('#' matches this level and everything
   * below, including nothing: the parent match), and the node itself past the last level.
   * True past the last level.
   */
  private visitAt(node: TrieNode<K, V>, levels: string[], i: number, dollar: boolean, visit: TrieVisitor<K, V>): boolean {
    if (!(dollar && i === 0)) {
      const hash = node.children.get('#');
      if (hash?.entries !== undefined && hash.entries.size > 0) visit(hash.filter!, hash.entries);
    }
    if (i < levels.length) return false;
    if (node.entries !== undefined && node.entries.size > 0) visit(node.filter!, node.entries);
    return true;
  }

  private walk(node: TrieNode<K, V>, levels: string[], i: number, dollar: boolean, visit: TrieVisitor<K, V>): void {
    if (this.visitAt(node, levels, i, dollar, visit)) return;
    const exact = node.children.get(levels[i]!);
    if (exact !== undefined) this.walk(exact, levels, i + 1, dollar, visit);
    const plus = dollar && i === 0 ? undefined : node.children.get('+');
    if (plus !== undefined) this.walk(plus, levels, i + 1, dollar, visit);
  }

  /** `walk` without recursion, for topics deeper than the stack allows (same order of visits). */
  private matchDeep(levels: string[], dollar: boolean, visit: TrieVisitor<K, V>): void {
    const nodes: TrieNode<K, V>[] = [this.root];
    const depths: number[] = [0];
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const i = depths.pop()!;
      if (this.visitAt(node, levels, i, dollar, visit)) continue;
      const plus = dollar && i === 0 ? undefined : node.children.get('+');
      if (plus !== undefined) {
        nodes.push(plus);
        depths.push(i + 1);
      }
      // pushed last, walked first: the exact level before '+', as `walk` does
      const exact = node.children.get(levels[i]!);
      if (exact !== undefined) {
        nodes.push(exact);
        depths.push(i + 1);
      }
    }
  }

  /** Every filter with its entries. */
  forEach(visit: TrieVisitor<K, V>): void {
    const stack: TrieNode<K, V>[] = [this.root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.entries !== undefined && node.entries.size > 0) visit(node.filter!, node.entries);
      for (const child of node.children.values()) stack.push(child);
    }
  }

  private find(filter: string): TrieNode<K, V> | undefined {
    let node: TrieNode<K, V> | undefined = this.root;
    for (const level of filter.split('/')) {
      node = node.children.get(level);
      if (node === undefined) return undefined;
    }
    return node;
  }
}
