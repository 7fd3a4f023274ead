/** What the wheel watches: a connection with a keep-alive deadline. */
export interface KeepAliveWatched {
  /** When (epoch ms) the connection is due to be closed unless it was heard from meanwhile. */
  keepAliveDeadline(): number;
  /** The deadline passed with nothing heard: close the connection. */
  keepAliveExpired(): void;
  /** @internal The slot the wheel holds it in. */
  keepAliveSlot: Set<KeepAliveWatched> | undefined;
}

/** A quarter of a second per slot, 128 s per turn; later deadlines are looked at again a turn later. */
const TICK_MS = 250;
const SLOTS = 512;

/**
 * Keep-alive timers of every connection of the process on one timer (after the timing
 * wheels of Varghese and Lauck): a connection sits in the slot of the quarter second its
 * deadline falls in, and is looked at when that slot comes round, not on every packet. Activity only
 * moves its deadline (the connection stamps its last packet); when its slot comes round
 * with the deadline moved on, it goes to the slot of the new deadline. So an idle
 * connection costs one Set entry instead of a Node.js Timeout with its closure, and a busy
 * one costs nothing per packet. A connection is closed at most one tick (250 ms) after
 * its deadline of 1.5 × Keep Alive [MQTT-3.1.2-24].
 */
export class KeepAliveWheel {
  private readonly slots: Set<KeepAliveWatched>[] = Array.from({ length: SLOTS }, () => new Set());
  private cursor = 0;
  /** The time the slot at the cursor stands for (epoch ms). */
  private cursorTime = 0;
  private timer: NodeJS.Timeout | undefined;
  private watched = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Connections being watched. */
  get size(): number {
    return this.watched;
  }

  /** Watches `c` (again, if it was): it is looked at once its deadline has come. */
  watch(c: KeepAliveWatched): void {
    if (c.keepAliveSlot === undefined) this.watched++;
    else c.keepAliveSlot.delete(c);
    if (this.timer === undefined) this.start();
    this.place(c, c.keepAliveDeadline());
  }

  /** Stops watching `c`. Idempotent. */
  unwatch(c: KeepAliveWatched): void {
    if (c.keepAliveSlot === undefined) return;
    c.keepAliveSlot.delete(c);
    c.keepAliveSlot = undefined;
    if (--this.watched === 0) this.stop();
  }

  private place(c: KeepAliveWatched, deadline: number): void {
    const ahead = Math.min(SLOTS - 1, Math.max(1, Math.ceil((deadline - this.cursorTime) / TICK_MS)));
    const slot = this.slots[(this.cursor + ahead) % SLOTS]!;
    slot.add(c);
    c.keepAliveSlot = slot;
  }

  private start(): void {
    this.cursorTime = this.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Moves on by the time that passed (one slot, more if the timer was late) and looks at what those slots hold. */
  private tick(): void {
    const now = this.now();
    // the timer came more than two ticks late: this process stalled (a long pause, SIGSTOP),
    // and what its clients sent meanwhile waits unread (timers run before sockets are read):
    // what fell due gets two more ticks instead of being closed unheard
    const stalled = now - this.cursorTime > 3 * TICK_MS;
    for (let turns = 0; this.cursorTime + TICK_MS <= now && turns < SLOTS; turns++) {
      this.cursor = (this.cursor + 1) % SLOTS;
      this.cursorTime += TICK_MS;
      const slot = this.slots[this.cursor]!;
      if (slot.size === 0) continue;
      const due = [...slot];
      slot.clear();
      for (const c of due) {
        if (c.keepAliveSlot !== slot) continue; // unwatched or moved by another's expiry meanwhile
        const deadline = c.keepAliveDeadline();
        if (deadline <= now && stalled) {
          this.place(c, now + 2 * TICK_MS);
        } else if (deadline <= now) {
          c.keepAliveSlot = undefined;
          this.watched--;
          c.keepAliveExpired();
        } else {
          this.place(c, deadline);
        }
      }
    }
    // after a stall longer than a whole turn every slot was looked at once: the clock jumps
    if (this.cursorTime + TICK_MS <= now) this.cursorTime = now;
    if (this.watched === 0) this.stop();
  }
}

/** The wheel of this process. */
export const keepAliveWheel = new KeepAliveWheel();
