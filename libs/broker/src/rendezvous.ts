/**
 * Rendezvous (highest-random-weight) hashing: which node of a set owns a key, such as the
 * client ID of a detached session whose node died. Every node computes the same answer from
 * the same set without talking to the others; removing a node moves only the keys it owned,
 * and adding one moves to it only the keys it now wins (about 1/n of them).
 *
 * The weight of (key, node) is FNV-1a (32 bit) over the UTF-8 bytes of the key, a 0x00 byte
 * and the node ID, finished with MurmurHash3's fmix32 avalanche. Nodes of different versions
 * must agree on it: changing it is a cluster-wide breaking change (a test pins values).
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** Feeds the UTF-8 bytes of `text` into an FNV-1a state (no allocation). */
function fnvUtf8(state: number, text: string): number {
  let h = state;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV_PRIME);
    } else if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
    } else if (c < 0x10000) {
      // a lone surrogate is encoded as its code unit (as WTF-8 would), never dropped
      h = Math.imul(h ^ (0xe0 | (c >> 12)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
    } else {
      h = Math.imul(h ^ (0xf0 | (c >> 18)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
    }
  }
  return h;
}

function fmix32(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The FNV state after the key and its separator, shared by every node's weight. */
function keyState(key: string): number {
  return Math.imul(fnvUtf8(FNV_OFFSET, key) ^ 0x00, FNV_PRIME);
}

/** The weight of `node` for `key`: an unsigned 32-bit integer. */
export function rendezvousWeight(key: string, node: string): number {
  return fmix32(fnvUtf8(keyState(key), node));
}

/**
 * The node of `nodes` with the highest weight for `key` (a tie goes to the smaller node ID),
 * or undefined when `nodes` is empty. The order of `nodes` and duplicates do not matter.
 */
export function rendezvousOwner(key: string, nodes: readonly string[]): string | undefined {
  const state = keyState(key);
  let best: string | undefined;
  let bestWeight = -1;
  for (const node of nodes) {
    const weight = fmix32(fnvUtf8(state, node));
    if (weight > bestWeight || (weight === bestWeight && best !== undefined && node < best)) {
      best = node;
      bestWeight = weight;
    }
  }
  return best;
}
