import { describe, expect, it } from 'vitest';
import { rendezvousOwner, rendezvousWeight } from '../src/rendezvous.js';

/** The weight as documented, the slow way: FNV-1a 32 over utf8(key) 0x00 utf8(node), then fmix32. */
function referenceWeight(key: string, node: string): number {
  const bytes = Buffer.concat([Buffer.from(key, 'utf8'), Buffer.from([0]), Buffer.from(node, 'utf8')]);
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const keys = Array.from({ length: 10_000 }, (_, i) => `client-${i}`);
const five = ['node-a', 'node-b', 'node-c', 'node-d', 'node-e'];

function owners(nodes: readonly string[]): string[] {
  return keys.map((k) => rendezvousOwner(k, nodes)!);
}

function countBy(values: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

describe('rendezvousOwner', () => {
  it('has no owner in an empty set, and the only node owns everything in a set of one', () => {
    expect(rendezvousOwner('c1', [])).toBeUndefined();
    expect(rendezvousOwner('c1', ['solo'])).toBe('solo');
    expect(rendezvousOwner('', ['solo'])).toBe('solo');
  });

  it('picks the node with the highest weight', () => {
    for (const key of ['c1', 'c2', 'dev/ü/日本', '']) {
      const expected = [...five].sort((a, b) => rendezvousWeight(key, b) - rendezvousWeight(key, a))[0];
      expect(rendezvousOwner(key, five)).toBe(expected);
    }
  });

  it('does not depend on the order of the nodes or on duplicates', () => {
    const reversed = [...five].reverse();
    const shuffled = ['node-c', 'node-e', 'node-a', 'node-d', 'node-b', 'node-c'];
    const base = owners(five);
    expect(owners(reversed)).toEqual(base);
    expect(owners(shuffled)).toEqual(base);
  });

  it('spreads keys evenly over the nodes', () => {
    const counts = countBy(owners(five));
    expect([...counts.keys()].sort()).toEqual(five);
    for (const n of counts.values()) {
      expect(n).toBeGreaterThan(1_700); // 2,000 each on average
      expect(n).toBeLessThan(2_300);
    }
  });

  it('moves only the keys of a node that is removed, spread over the others', () => {
    const before = owners(five);
    const without = five.filter((n) => n !== 'node-c');
    const after = owners(without);
    let moved = 0;
    const movedTo: string[] = [];
    for (let i = 0; i < keys.length; i++) {
      if (before[i] === 'node-c') {
        moved++;
        movedTo.push(after[i]!);
      } else {
        expect(after[i]).toBe(before[i]);
      }
    }
    expect(moved).toBeGreaterThan(1_700);
    const spread = countBy(movedTo);
    expect([...spread.keys()].sort()).toEqual(without);
    for (const n of spread.values()) expect(n).toBeGreaterThan(moved / 4 - 150);
  });

  it('moves to a node that is added only the keys it wins, about 1/n of them', () => {
    const before = owners(five);
    const after = owners([...five, 'node-f']);
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (after[i] !== before[i]) {
        expect(after[i]).toBe('node-f');
        moved++;
      }
    }
    // 1/6 of 10,000 on average
    expect(moved).toBeGreaterThan(1_400);
    expect(moved).toBeLessThan(1_950);
  });

  it('is the same function on every node and version (pinned values)', () => {
    const nodes = ['edge-0', 'edge-1', 'edge-2', 'edge-3'];
    expect(Array.from({ length: 12 }, (_, i) => rendezvousOwner(`device-${i}`, nodes))).toEqual([
      'edge-0', 'edge-2', 'edge-1', 'edge-1', 'edge-3', 'edge-0',
      'edge-3', 'edge-2', 'edge-2', 'edge-1', 'edge-1', 'edge-2',
    ]);
    expect(rendezvousOwner('client-1', ['a', 'b', 'c'])).toBe('a');
    expect(rendezvousWeight('device-0', 'edge-0')).toBe(4254211473);
    expect(rendezvousWeight('', '')).toBe(91794203);
  });

  it('hashes the UTF-8 bytes of key and node, as documented', () => {
    const pairs: Array<[string, string]> = [
      ['', ''],
      ['device-0', 'edge-0'],
      ['dev/ü/日本/😀', 'edge-1'],
      ['a\u0000b', 'n'],
      ['k', 'nœud-é'],
    ];
    for (const [key, node] of pairs) expect(rendezvousWeight(key, node)).toBe(referenceWeight(key, node));
    // the separator keeps (key, node) pairs that concatenate alike apart
    expect(rendezvousWeight('ab', 'c')).not.toBe(rendezvousWeight('a', 'bc'));
  });
});
