/**
 * Integrity of one subscriber's message streams, from the sequence numbers in the payloads.
 * Each publisher is a stream numbered 0, 1, 2…; per stream the tracker keeps a bitset of the
 * sequence numbers seen and the highest one so far:
 * - duplicated: a sequence number seen before;
 * - out of order: a first sighting below the highest sequence number seen so far;
 * - lost: sent (known at the end) minus distinct sequence numbers received.
 */
export interface Integrity {
  /** Messages the publishers sent that this subscriber should have received. */
  sent: number;
  /** Every PUBLISH received, duplicates included. */
  received: number;
  unique: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
}

export const emptyIntegrity = (): Integrity => ({ sent: 0, received: 0, unique: 0, lost: 0, duplicated: 0, outOfOrder: 0 });

export function addIntegrity(into: Integrity, other: Integrity): Integrity {
  into.sent += other.sent;
  into.received += other.received;
  into.unique += other.unique;
  into.lost += other.lost;
  into.duplicated += other.duplicated;
  into.outOfOrder += other.outOfOrder;
  return into;
}

export class SequenceTracker {
  private seen: Uint8Array[] = [];
  private highest: number[] = [];
  received = 0;
  unique = 0;
  duplicated = 0;
  outOfOrder = 0;
  /** Messages whose stream number was out of range (a corrupt or foreign payload). */
  foreign = 0;

  constructor(private readonly streams: number) {
    for (let s = 0; s < streams; s++) {
      this.seen.push(new Uint8Array(1024));
      this.highest.push(-1);
    }
  }

  record(stream: number, seq: number): void {
    this.received++;
    if (stream >= this.streams) {
      this.foreign++;
      return;
    }
    let bits = this.seen[stream]!;
    const byte = seq >>> 3;
    if (byte >= bits.length) {
      let size = bits.length * 2;
      while (size <= byte) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(bits);
      this.seen[stream] = bits = grown;
    }
    const mask = 1 << (seq & 7);
    if ((bits[byte]! & mask) !== 0) {
      this.duplicated++;
      return;
    }
    bits[byte] = bits[byte]! | mask;
    this.unique++;
    const high = this.highest[stream]!;
    if (seq < high) this.outOfOrder++;
    else this.highest[stream] = seq;
  }

  /** `sent`: how many messages were published in total over the streams this subscriber follows. */
  result(sent: number): Integrity {
    return {
      sent,
      received: this.received,
      unique: this.unique,
      lost: Math.max(0, sent - this.unique),
      duplicated: this.duplicated,
      outOfOrder: this.outOfOrder,
    };
  }
}
