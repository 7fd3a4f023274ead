import { SessionTakenOverError, type ProtocolVersion } from '@fleetmq/protocol';
import { seenKey, type Delivery } from './delivery.js';
import type { LocalRouter, Subscriber } from './local-router.js';
import type { Message } from './message.js';
import type { BufferedDelivery, NodeLink, NodeReply, NodeRequest } from './ports/node-link.js';
import type { OfflineQueue } from './ports/offline-queue.js';
import type { OwnerRecord, SessionOwnership } from './ports/session-ownership.js';
import { FencedError, type SessionStore } from './ports/session-store.js';
import { Session, type SessionLimits } from './session.js';
import type { SessionSnapshot, WillMessage } from './session-snapshot.js';
import type { BrokerLog } from './log.js';
import { rendezvousOwner } from './rendezvous.js';
import { mapLimit } from './map-limit.js';

/** The registry's view of a connected channel. */
export interface LiveChannel extends Subscriber {
  /**
   * Stops intake, closes the client (MQTT 5: DISCONNECT 0x8E) and hands its session over.
   * Synchronous: nothing can arrive between the hand-over and the new owner attaching.
   */
  takeover(): { session: Session; will: WillMessage | undefined };
}

export interface OpenRequest {
  readonly clientId: string;
  readonly cleanStart: boolean;
  readonly protocolVersion: ProtocolVersion;
  readonly expiryInterval: number;
  readonly will: WillMessage | undefined;
  readonly channel: LiveChannel;
}

export interface OpenResult {
  readonly session: Session;
  readonly present: boolean;
  readonly epoch: number;
}

export interface CloseRequest {
  /** Publish the will (the connection ended without a normal DISCONNECT, or with 0x04). */
  readonly publishWill: boolean;
}

export interface RegistryStats {
  takeovers: number;
  sessionsExpired: number;
  offlineDropped: number;
  offlineQueued: number;
  willsPublished: number;
  /** Messages the offline queue dropped by its drop policy (its length limit). */
  offlineQueueFull: number;
  /** Deliveries dropped while a session was being handed to another node (its buffer was full). */
  handoverDropped: number;
  /** Sessions this node took over from a dead node (its heartbeat expired). */
  sessionsAdopted: number;
  /** Clients and detached sessions this node let go because another node adopted them while its heartbeat had lapsed. */
  sessionsLost: number;
}

/**
 * Whether the will of a session its node left behind is due by now: its delay (capped by the
 * session's expiry) has passed since the client went offline, or since now when that is unknown
 * (the node died with the client connected).
 */
function willDelayOver(snapshot: SessionSnapshot, now: number): boolean {
  const will = snapshot.will;
  if (will === undefined) return false;
  return (snapshot.disconnectedAt ?? now) + Math.min(will.delayInterval, snapshot.expiryInterval) * 1000 <= now;
}

/** Longest timer Node.js accepts; longer expiries re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const NEVER = 0xffffffff;

/**
 * A persistent session whose client is offline: it keeps the subscriptions on this node
 * and appends what they match (QoS 1/2) to the offline queue.
 */
class DetachedSession implements Subscriber {
  readonly online = false;
  /** The appends started so far, one after the other; it never rejects. */
  private pending: Promise<void> = Promise.resolve();
  /** Messages waiting for the append in flight: the next append writes them all, in order. */
  private waiting: Message[] | undefined;
  expiryTimer: NodeJS.Timeout | undefined;
  willTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly session: Session,
    /** When its client went offline (epoch ms). */
    readonly since: number,
    /** The ownership epoch under which this node holds it: its writes and deletes are fenced by it. */
    readonly epoch: number,
    private readonly queue: OfflineQueue,
    private readonly fanout: OfflineFanout,
    private readonly stats: RegistryStats,
    private readonly log: BrokerLog,
  ) {}

  get clientId(): string {
    return this.session.clientId;
  }

  deliver(message: Message, delivery: Delivery): void {
    if (delivery.qos === 0) {
      this.stats.offlineDropped++;
      return;
    }
    this.fanout.add(this, message);
  }

  /**
   * Appends one message to the queues of many sessions in one call (`appendMany`), after
   * what each of them appended before and before what each appends next.
   */
  static appendShared(sessions: readonly DetachedSession[], message: Message): void {
    const { queue, stats, log } = sessions[0]!;
    stats.offlineQueued += sessions.length;
    const write = Promise.all(sessions.map((s) => s.pending)).then(() =>
      queue.appendMany(
        sessions.map((s) => s.clientId),
        message,
      ).then(
        (r) => {
          stats.offlineDropped += r.dropped;
          stats.offlineQueueFull += r.dropped;
        },
        (err: unknown) => log.error({ clientIds: sessions.length, messageId: message.id, err }, 'offline_append_failed'),
      ),
    );
    for (const s of sessions) {
      s.pending = write;
      s.waiting = undefined; // what comes next goes in a new call, after this one
    }
  }

  /**
   * Appends in order, one call at a time; what arrives while a call is in flight goes in the
   * next one together (so a busy session costs a few calls, and a flush waits for at most two).
   */
  append(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    this.stats.offlineQueued += messages.length;
    if (this.waiting !== undefined) {
      this.waiting.push(...messages);
      return;
    }
    const batch = [...messages];
    this.waiting = batch;
    this.pending = this.pending.then(() => {
      if (this.waiting === batch) this.waiting = undefined;
      return this.queue.append(this.clientId, batch).then(
        (r) => {
          this.stats.offlineDropped += r.dropped;
          this.stats.offlineQueueFull += r.dropped;
        },
        (err: unknown) => this.log.error({ clientId: this.clientId, count: batch.length, err }, 'offline_append_failed'),
      );
    });
  }

  /** Resolves once every append started so far (and every delivery so far) has finished. */
  flush(): Promise<void> {
    this.fanout.flush();
    return this.pending;
  }

  clearTimers(): void {
    if (this.expiryTimer !== undefined) clearTimeout(this.expiryTimer);
    if (this.willTimer !== undefined) clearTimeout(this.willTimer);
    this.expiryTimer = undefined;
    this.willTimer = undefined;
  }
}

/**
 * Coalesces what one message owes several detached sessions (a command broadcast to a fleet
 * that is offline) into one `OfflineQueue.appendMany` call, instead of an append per session.
 * The router hands a message to all its subscribers in one synchronous run, so what arrives
 * before the next microtask is grouped by message; each session's order is kept.
 */
class OfflineFanout {
  private groups = new Map<Message, DetachedSession[]>();
  private scheduled = false;

  add(session: DetachedSession, message: Message): void {
    const group = this.groups.get(message);
    if (group === undefined) this.groups.set(message, [session]);
    else group.push(session);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Starts the appends of what was grouped so far, in arrival order. */
  flush(): void {
    this.scheduled = false;
    if (this.groups.size === 0) return;
    const groups = this.groups;
    this.groups = new Map();
    for (const [message, sessions] of groups) {
      if (sessions.length === 1) sessions[0]!.append([message]);
      else DetachedSession.appendShared(sessions, message);
    }
  }
}

/**
 * Buffers deliveries into a session while its new channel is being opened. During a takeover a
 * message may come twice (through this node's bus subscription and in the old owner's buffer)
 * with any number of others in between, more than the session's bounded window of recent IDs
 * holds: so it also remembers, exactly, every ID the session held or received while opening.
 */
class OpeningSubscriber implements Subscriber {
  readonly online = true;
  private readonly seen = new Set<string>();
  constructor(readonly session: Session) {
    for (const d of session.queue.toArray()) this.seen.add(d.message.id);
    for (const e of session.inflight.values()) this.seen.add(e.message.id);
  }
  get clientId(): string {
    return this.session.clientId;
  }
  deliver(message: Message, delivery: Delivery, shared?: string): void {
    if (delivery.qos > 0) {
      const key = seenKey(message, shared);
      if (this.seen.has(key) || !this.session.markSeen(key)) return;
      this.seen.add(key);
    }
    this.session.queue.push({ message, ...delivery });
  }
}

/**
 * A session being handed to another node: its subscriptions stay open here, and what they
 * match is buffered until the new owner, subscribed itself, collects it (takeover-end).
 */
class HandoverSubscriber implements Subscriber {
  readonly online = false;
  readonly buffer: BufferedDelivery[] = [];
  timer: NodeJS.Timeout | undefined;
  constructor(
    readonly session: Session,
    /** Its offline queue was read into the snapshot and is removed once the new owner has that. */
    readonly queueRead: boolean,
    private readonly stats: RegistryStats,
  ) {}
  get clientId(): string {
    return this.session.clientId;
  }
  deliver(message: Message, delivery: Delivery, shared?: string): void {
    if (this.buffer.length >= this.session.queue.limit) {
      this.stats.handoverDropped++; // bounded like the session's queue
      return;
    }
    this.buffer.push({ message, delivery, shared });
  }
}

export interface SessionRegistryDeps {
  readonly nodeId: string;
  readonly router: LocalRouter;
  readonly ownership: SessionOwnership;
  readonly store: SessionStore;
  readonly offlineQueue: OfflineQueue;
  readonly limits: SessionLimits;
  readonly publishWill: (clientId: string, will: WillMessage) => Promise<void>;
  readonly log: BrokerLog;
  /** Takeover between nodes; absent for a node alone. */
  readonly link?: NodeLink | undefined;
  /** How long to wait for the old owner of a session to answer (default 2000 ms). */
  readonly takeoverTimeoutMs?: number;
}

/** How long an old owner keeps buffering for a new owner that asked for a takeover and went quiet. */
const HANDOVER_LIMIT_MS = 30_000;

/**
 * Opens, takes over, detaches, expires and discards sessions (after emqx_cm). The only
 * component that decides who owns a session; channels ask it and follow.
 */
export class SessionRegistry {
  private readonly live = new Map<string, { channel: LiveChannel; epoch: number }>();
  private readonly detached = new Map<string, DetachedSession>();
  private readonly handovers = new Map<string, HandoverSubscriber>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly fanout = new OfflineFanout();
  /** Drain is settling its handovers: takeover-begin is answered from the stores (leaveInStores). */
  private settling = false;
  readonly stats: RegistryStats = {
    takeovers: 0,
    sessionsExpired: 0,
    offlineDropped: 0,
    offlineQueued: 0,
    willsPublished: 0,
    offlineQueueFull: 0,
    handoverDropped: 0,
    sessionsAdopted: 0,
    sessionsLost: 0,
  };

  constructor(private readonly deps: SessionRegistryDeps) {}

  get connectedCount(): number {
    return this.live.size;
  }

  get detachedCount(): number {
    return this.detached.size;
  }

  isConnected(clientId: string): boolean {
    return this.live.has(clientId);
  }

  /** The detached sessions this node holds, and since when (read-only: the admin API). */
  detachedSessions(): IterableIterator<{ readonly session: Session; readonly since: number }> {
    return this.detached.values();
  }

  detachedSession(clientId: string): { readonly session: Session; readonly since: number } | undefined {
    return this.detached.get(clientId);
  }

  /**
   * Ends a detached session of this node now, as its expiry would (will due, subscriptions,
   * stored session and offline queue removed): the admin API's discard, after the client was
   * disconnected. False when this node holds no detached session for the client.
   */
  discard(clientId: string): Promise<boolean> {
    return this.withLock(clientId, async () => {
      const detached = this.detached.get(clientId);
      if (detached === undefined) return false;
      await this.expire(detached, 'discarded');
      return true;
    });
  }

  /** Opens the session of a connecting client (CONNECT), taking it over or discarding it as asked. */
  open(req: OpenRequest): Promise<OpenResult> {
    return this.withLock(req.clientId, () => this.doOpen(req));
  }

  private async doOpen(req: OpenRequest): Promise<OpenResult> {
    const { clientId, cleanStart } = req;
    const { router, ownership, store, offlineQueue, limits, nodeId, log } = this.deps;
    const claim = await ownership.claim(clientId, nodeId);
    let session: Session | undefined;
    let present = false;

    const current = this.live.get(clientId);
    const detached = this.detached.get(clientId);
    const remote = claim.previous !== null && claim.previous.nodeId !== nodeId ? claim.previous.nodeId : undefined;
    const taken = remote !== undefined ? await this.beginRemoteTakeover(remote, clientId, claim.epoch) : null;
    if (remote !== undefined && taken !== null) {
      // [MQTT-3.1.4-3] the session was held by another node, which closed its client
      this.stats.takeovers++;
      const previous = Session.fromSnapshot(taken, limits);
      previous.will = taken.will;
      if (cleanStart || taken.expiryInterval === 0) {
        if (taken.will !== undefined) this.fireWill(clientId, taken.will);
        await this.endRemoteTakeover(remote, clientId, claim.epoch);
        await this.discardState(previous, claim.epoch);
      } else {
        session = previous;
        present = true;
        const opening = new OpeningSubscriber(session);
        router.attach(opening);
        // subscribed here before the old owner lets go, so nothing falls between the two
        for (const [filter, options] of session.subscriptions) await router.subscribe(clientId, filter, options);
        for (const b of await this.endRemoteTakeover(remote, clientId, claim.epoch)) opening.deliver(b.message, b.delivery, b.shared);
        await this.restoreQueued(session);
      }
    } else if (current !== undefined) {
      // [MQTT-3.1.4-3] a second connection with the same client ID takes the session over
      const taken = current.channel.takeover();
      this.live.delete(clientId);
      this.stats.takeovers++;
      log.info({ clientId, cleanStart }, 'session_taken_over');
      if (cleanStart || taken.session.expiryInterval === 0) {
        // the old session ends (asked for, or it ended with its connection): its will is due
        // now [MQTT-3.1.2-8], a will delay ends with the session [MQTT-3.1.3-9]
        if (taken.will !== undefined) this.fireWill(clientId, taken.will);
        await this.discardState(taken.session, claim.epoch);
      } else {
        session = taken.session;
        present = true;
        router.attach(new OpeningSubscriber(session));
      }
    } else if (detached !== undefined) {
      this.detached.delete(clientId);
      detached.clearTimers(); // a new connection to the session cancels a delayed will [MQTT-3.1.3-9]
      if (cleanStart) {
        // ...but a clean start ends the session instead, and a will still pending is due now
        const will = detached.session.will;
        detached.session.will = undefined;
        if (will !== undefined) this.fireWill(clientId, will);
        router.detach(detached);
        await detached.flush();
        await this.discardState(detached.session, claim.epoch);
      } else {
        session = detached.session;
        present = true;
        router.attach(new OpeningSubscriber(session));
        await detached.flush();
        await this.restoreQueued(session);
      }
    } else if (!cleanStart) {
      // what the store holds was left by a node that is gone (or by this node's last run):
      // its connection ended without a DISCONNECT, so its will is due once its delay is over
      const stored = await store.load(clientId);
      const resumed = stored !== null && stored.snapshot.expiryInterval > 0 ? stored.snapshot : undefined;
      if (stored?.snapshot.will !== undefined && (resumed === undefined || willDelayOver(stored.snapshot, Date.now()))) {
        this.fireWill(clientId, stored.snapshot.will);
      }
      if (resumed !== undefined) {
        session = Session.fromSnapshot(resumed, limits);
        present = true;
        router.attach(new OpeningSubscriber(session));
        for (const [filter, options] of session.subscriptions) await router.subscribe(clientId, filter, options);
        await this.restoreQueued(session);
      } else {
        // no session (never was, it expired, or it ended with its connection): what it left queued is not this one's
        if (stored !== null) await store.delete(clientId, claim.epoch);
        await offlineQueue.clear(clientId);
      }
    } else {
      // a session another node left in the store ends here, and its will with it
      const left = await store.delete(clientId, claim.epoch);
      if (left?.will !== undefined) this.fireWill(clientId, left.will);
      await offlineQueue.clear(clientId);
    }

    if (remote !== undefined) {
      // DESIGN invariant 2: of two CONNECTs racing on two nodes the later claim wins; the
      // earlier one, if its takeover request went unanswered, finds out here and gives way
      const owner = await ownership.owner(clientId);
      if (owner !== null && owner.epoch !== claim.epoch) {
        const opening = router.subscriberOf(clientId);
        if (opening !== undefined) router.detach(opening);
        if (session !== undefined && session.expiryInterval > 0) {
          // the session it took stays here, detached, as it was: the newer owner's takeover
          // request (waiting for this one to end) takes it over whole (invariants 1 and 3)
          await this.keepForNewerOwner(session, claim.epoch);
        } else {
          for (const filter of session?.subscriptions.keys() ?? []) await router.unsubscribe(clientId, filter);
        }
        throw new SessionTakenOverError(`client ${clientId} claimed by node ${owner.nodeId} meanwhile`);
      }
    }
    session ??= new Session(clientId, req.protocolVersion, req.expiryInterval, limits);
    session.protocolVersion = req.protocolVersion;
    session.expiryInterval = req.expiryInterval;
    session.will = req.will;
    this.live.set(clientId, { channel: req.channel, epoch: claim.epoch });
    // a session with a will is saved even when it ends with its connection: if this node
    // dies, the node that adopts its client IDs finds the will there and publishes it
    if (session.expiryInterval > 0 || session.will !== undefined) await this.persistEntry(session, claim.epoch);
    return { session, present, epoch: claim.epoch };
  }

  /**
   * A CONNECT that gave way to a newer claim leaves the session it opened detached here, as a
   * client that left would (its queue moves to the offline queue), for the newer owner to take
   * over. No connection ended, so its will is not armed; it travels with the session. Saved
   * under this node's epoch: refused (FencedError) when the newer owner already wrote, which
   * means it did not wait for this node, and then nothing is kept here.
   */
  private async keepForNewerOwner(session: Session, epoch: number): Promise<void> {
    const { router, store, log } = this.deps;
    const { clientId } = session;
    const pending = session.queue.toArray();
    session.queue.clear();
    const will = session.will;
    session.will = undefined;
    const detached = this.keepDetached(session, Date.now(), epoch);
    session.will = will;
    detached.append(pending.filter((d) => d.qos > 0).map((d) => d.message));
    this.stats.offlineDropped += pending.filter((d) => d.qos === 0).length;
    try {
      await store.save(session.toSnapshot(Date.now()), epoch);
    } catch (err) {
      if (!(err instanceof FencedError)) {
        log.error({ clientId, err }, 'session_save_failed');
        return;
      }
      log.info({ clientId }, 'session_fenced');
      this.detached.delete(clientId);
      detached.clearTimers();
      router.detach(detached);
      for (const filter of session.subscriptions.keys()) await router.unsubscribe(clientId, filter);
    }
  }

  /**
   * Saves a connected persistent session (its subscriptions changed). Rejects with
   * FencedError when a newer owner exists: the caller closes its client.
   */
  persist(session: Session): Promise<void> {
    const entry = this.live.get(session.clientId);
    if (entry === undefined) return Promise.resolve();
    return this.persistEntry(session, entry.epoch);
  }

  private async persistEntry(session: Session, epoch: number, disconnectedAt?: number): Promise<void> {
    try {
      await this.deps.store.save(session.toSnapshot(disconnectedAt), epoch);
    } catch (err) {
      if (err instanceof FencedError) throw err;
      // the store is down: the session lives here and is saved again when its client leaves
      this.deps.log.warn({ clientId: session.clientId, err }, 'session_save_failed');
    }
  }

  /**
   * The channel's connection ended (not by takeover). A session with expiry 0 ends now;
   * a persistent one is detached and kept until it expires.
   */
  close(channel: LiveChannel, session: Session, req: CloseRequest): Promise<void> {
    return this.withLock(session.clientId, () => this.doClose(channel, session, req));
  }

  private async doClose(channel: LiveChannel, session: Session, req: CloseRequest): Promise<void> {
    const { clientId } = session;
    const entry = this.live.get(clientId);
    if (entry === undefined || entry.channel !== channel) return; // taken over meanwhile
    this.live.delete(clientId);
    const { router, store, log } = this.deps;
    const will = req.publishWill ? session.will : undefined;
    session.will = will;
    if (will !== undefined && !(await this.stillOwner(clientId, entry.epoch))) {
      // adopted from while this node was cut off (paused beyond its TTL): the adopter has the
      // session and published the will (invariant 6); nothing of the new owner's is touched
      router.detach(channel);
      for (const filter of session.subscriptions.keys()) await router.unsubscribe(clientId, filter);
      log.info({ clientId }, 'session_fenced');
      return;
    }

    if (session.expiryInterval === 0) {
      router.detach(channel);
      if (will !== undefined) this.fireWill(clientId, will);
      if (await this.discardState(session, entry.epoch)) await this.release(clientId, entry.epoch);
      return;
    }

    // what was queued for the client and not sent moves to the offline queue; QoS 0 is dropped
    const pending = session.queue.toArray();
    session.queue.clear();
    const detached = this.keepDetached(session, Date.now(), entry.epoch);
    detached.append(pending.filter((d) => d.qos > 0).map((d) => d.message));
    this.stats.offlineDropped += pending.filter((d) => d.qos === 0).length;
    try {
      await store.save(session.toSnapshot(Date.now()), entry.epoch);
    } catch (err) {
      if (err instanceof FencedError) {
        // a newer owner has the session: this node stops capturing for it (invariant 2)
        log.info({ clientId }, 'session_fenced');
        this.detached.delete(clientId);
        detached.clearTimers();
        router.detach(detached);
        for (const filter of session.subscriptions.keys()) await router.unsubscribe(clientId, filter);
        return;
      }
      log.error({ clientId, err }, 'session_save_failed');
    }
  }

  /**
   * Keeps a persistent session whose client is offline (since `since`, epoch ms) on this
   * node: it captures what its subscriptions match, publishes its will when the will delay
   * is over and ends when its expiry interval is.
   */
  private keepDetached(session: Session, since: number, epoch: number): DetachedSession {
    const { clientId } = session;
    const detached = new DetachedSession(session, since, epoch, this.deps.offlineQueue, this.fanout, this.stats, this.deps.log);
    this.deps.router.attach(detached);
    this.detached.set(clientId, detached);
    const elapsed = Math.max(0, Date.now() - since);
    const will = session.will;
    if (will !== undefined) {
      const delayMs = Math.max(0, Math.min(will.delayInterval, session.expiryInterval) * 1000 - elapsed);
      if (delayMs === 0) {
        session.will = undefined;
        this.fireWill(clientId, will);
      } else {
        detached.willTimer = setTimeout(() => {
          detached.willTimer = undefined;
          void this.withLock(clientId, async () => {
            if (this.detached.get(clientId) !== detached) return;
            // a node whose heartbeat lapsed may have been adopted from: the new owner publishes it
            if (!(await this.stillOwner(clientId, epoch))) return this.dropStale(detached);
            session.will = undefined;
            this.fireWill(clientId, will);
            // saved without its will, so that a node adopting the session later does not publish it again
            await this.persistEntry(session, epoch, since).catch(() => undefined);
          });
        }, delayMs);
        detached.willTimer.unref();
      }
    }
    if (session.expiryInterval !== NEVER) this.armExpiry(detached, Math.max(0, session.expiryInterval * 1000 - elapsed));
    return detached;
  }

  private armExpiry(detached: DetachedSession, ms: number): void {
    const step = Math.min(ms, MAX_TIMER_MS);
    detached.expiryTimer = setTimeout(() => {
      if (ms > step) return this.armExpiry(detached, ms - step);
      detached.expiryTimer = undefined;
      void this.withLock(detached.clientId, () => this.expire(detached));
    }, step);
    detached.expiryTimer.unref();
  }

  /** Ends a detached session: its expiry interval is over, or an operator discarded it. */
  private async expire(detached: DetachedSession, why: 'expired' | 'discarded' = 'expired'): Promise<void> {
    if (this.detached.get(detached.clientId) !== detached) return;
    if (!(await this.stillOwner(detached.clientId, detached.epoch))) return this.dropStale(detached);
    this.detached.delete(detached.clientId);
    detached.clearTimers();
    if (why === 'expired') this.stats.sessionsExpired++;
    this.deps.router.detach(detached);
    const will = detached.session.will;
    if (will !== undefined) this.fireWill(detached.clientId, will); // the session ends: will is due
    await detached.flush();
    // under its own epoch: if a newer owner holds the session meanwhile, its state stays
    if (await this.discardState(detached.session, detached.epoch)) await this.release(detached.clientId, detached.epoch);
    this.deps.log.info({ clientId: detached.clientId }, why === 'expired' ? 'session_expired' : 'session_discarded');
  }

  /**
   * Whether this node still owns the client ID under `epoch`. Asked before a detached session
   * publishes its will or ends: a node whose heartbeat lapsed (a long pause, Redis out of reach)
   * may have been adopted from meanwhile. With Redis unreachable it answers yes: a will twice
   * rather than never.
   */
  private async stillOwner(clientId: string, epoch: number): Promise<boolean> {
    try {
      return (await this.deps.ownership.owner(clientId))?.epoch === epoch;
    } catch {
      return true;
    }
  }

  /** Forgets a detached copy another node owns now: no will, no store writes, no captures here. */
  private async dropStale(detached: DetachedSession): Promise<void> {
    const { clientId, session } = detached;
    this.detached.delete(clientId);
    detached.clearTimers();
    this.deps.router.detach(detached);
    for (const filter of session.subscriptions.keys()) await this.deps.router.unsubscribe(clientId, filter);
    this.deps.log.info({ clientId }, 'session_fenced');
  }

  /** Lets go of a client ID whose session ended here (the per-node index then forgets it). */
  private async release(clientId: string, epoch: number): Promise<void> {
    await this.deps.ownership.release(clientId, epoch).catch((err: unknown) => {
      this.deps.log.warn({ clientId, err: (err as Error).message }, 'ownership_release_failed');
    });
  }

  /**
   * Removes a session's subscriptions and stored state. False when a newer owner holds the
   * session (the delete was fenced: its stored state and offline queue stay) or the stores failed.
   */
  private async discardState(session: Session, epoch: number): Promise<boolean> {
    const { router, store, offlineQueue, log } = this.deps;
    for (const filter of session.subscriptions.keys()) await router.unsubscribe(session.clientId, filter);
    session.subscriptions.clear();
    try {
      await store.delete(session.clientId, epoch);
      await offlineQueue.clear(session.clientId);
      return true;
    } catch (err) {
      if (err instanceof FencedError) log.info({ clientId: session.clientId }, 'session_fenced');
      else log.error({ clientId: session.clientId, err }, 'session_discard_failed');
      return false;
    }
  }

  /**
   * Moves the session's offline queue into its in-memory queue (bounded by the same limit);
   * with `keep`, copies it and leaves the offline queue as it is.
   */
  private async drainQueueInto(session: Session, keep = false): Promise<void> {
    const { offlineQueue } = this.deps;
    let after: number | undefined;
    for (;;) {
      const batch = await offlineQueue.read(session.clientId, 1000, after);
      if (batch.length === 0) break;
      for (const { message } of batch) session.enqueueStored(message);
      after = batch[batch.length - 1]!.seq;
    }
    // what was read, not the whole queue: a copy still capturing elsewhere (a draining node
    // that answered a late takeover with no snapshot) may append between the read and this
    if (!keep && after !== undefined) await offlineQueue.remove(session.clientId, after);
  }

  /**
   * Moves what the offline queue holds for the session in front of what arrived since; with
   * `keep`, copies it and leaves the offline queue as it is.
   */
  private async restoreQueued(session: Session, keep = false): Promise<void> {
    const restored = new Session(session.clientId, session.protocolVersion, session.expiryInterval, {
      maxQueued: session.queue.limit,
      dropPolicy: session.queue.policy,
    });
    for (const [f, o] of session.subscriptions) restored.subscriptions.set(f, o);
    for (const e of session.inflight.values()) restored.markSeen(e.message.id);
    await this.drainQueueInto(restored, keep);
    // duplicates are what arrived meanwhile (through the bus while opening), now in the
    // session's queue; not the session's recent IDs, which include what its last
    // connection had queued and moved to the offline queue itself
    const arrived = new Set(session.queue.toArray().map((d) => d.message.id));
    const stored = restored.queue.toArray().filter((d) => !arrived.has(d.message.id));
    for (const d of stored) if (d.qos > 0) session.markSeen(d.message.id);
    session.queue.unshiftAll(stored);
  }

  /** Serves takeover requests from other nodes (call once the node starts). */
  serve(): Promise<void> {
    const { link, nodeId } = this.deps;
    if (link === undefined) return Promise.resolve();
    return link.serve(nodeId, (request) => this.handleNodeRequest(request));
  }

  private handleNodeRequest(request: NodeRequest): Promise<NodeReply> {
    if (request.type === 'ping') return Promise.resolve({ type: 'pong' });
    const { clientId } = request;
    if (request.type === 'takeover-begin') {
      return this.withLock(clientId, async () => ({
        type: 'snapshot',
        snapshot: this.settling ? await this.leaveInStores(clientId) : await this.handOver(clientId),
      }));
    }
    if (request.type === 'adopt') {
      return this.withLock(clientId, async () => ({ type: 'adopted', ok: await this.adopt(clientId, request.from) }));
    }
    if (request.type === 'deliver') {
      return this.withLock(clientId, async () => ({ type: 'delivered', ok: await this.takeDeliveries(clientId, request.epoch, request.deliveries) }));
    }
    return this.withLock(clientId, async () => ({ type: 'buffer', deliveries: await this.finishHandover(clientId, true) }));
  }

  /**
   * A live node, asked by a draining one: take its detached session over (the same two steps
   * as a takeover) and keep it detached here, capturing for its client until it returns.
   */
  private async adopt(clientId: string, from: string): Promise<boolean> {
    if (this.live.has(clientId) || this.detached.has(clientId)) return false;
    const { ownership, router, nodeId, limits, log } = this.deps;
    const claim = await ownership.claim(clientId, nodeId);
    const snapshot = await this.beginRemoteTakeover(from, clientId, claim.epoch);
    if (snapshot === null) {
      await ownership.release(clientId, claim.epoch).catch(() => false);
      return false;
    }
    const session = Session.fromSnapshot(snapshot, limits);
    const since = snapshot.disconnectedAt ?? Date.now();
    const queued = session.queue.toArray();
    session.queue.clear();
    const detached = this.keepDetached(session, since, claim.epoch);
    for (const [filter, options] of session.subscriptions) await router.subscribe(clientId, filter, options);
    const buffered = await this.endRemoteTakeover(from, clientId, claim.epoch);
    // QoS 0 is not kept for an offline client
    detached.append([...queued.filter((d) => d.qos > 0).map((d) => d.message), ...buffered.filter((b) => b.delivery.qos > 0).map((b) => b.message)]);
    await detached.flush();
    await this.persistEntry(session, claim.epoch, since).catch((err: unknown) => log.warn({ clientId, err }, 'session_save_failed'));
    log.info({ clientId, from }, 'session_adopted');
    return true;
  }

  /**
   * A live node, for a node that died (its heartbeat expired, or this node's own last run):
   * takes over a client ID that node still owns and keeps its stored session detached here,
   * capturing for its client until it returns; its will is published once, when its delay is
   * over. `claimFrom` lets exactly one node do this per client ID. `diedAt` (epoch ms) stands
   * for when a client connected at the death went offline. False when there was nothing to
   * take (another node, a returning client or the session's end came first).
   */
  adoptOrphan(clientId: string, deadNode: string, diedAt: number): Promise<boolean> {
    return this.withLock(clientId, async () => {
      if (this.live.has(clientId) || this.detached.has(clientId) || this.handovers.has(clientId)) return false;
      const { ownership, store, offlineQueue, router, nodeId, limits, log } = this.deps;
      const claim = await ownership.claimFrom(clientId, nodeId, deadNode);
      if (claim === null) return false;
      const stored = await store.load(clientId);
      if (stored === null || stored.snapshot.expiryInterval === 0) {
        // nothing persistent: a session that ended with its connection leaves at most its will
        const left = stored === null ? null : await store.delete(clientId, claim.epoch);
        if (left?.will !== undefined) this.fireWill(clientId, left.will);
        if (stored !== null) await offlineQueue.clear(clientId);
        await this.release(clientId, claim.epoch);
        if (left?.will === undefined) return false;
        log.info({ clientId, from: deadNode, ended: true }, 'session_adopted_from_dead_node');
        return true;
      }
      const session = Session.fromSnapshot(stored.snapshot, limits);
      const since = stored.snapshot.disconnectedAt ?? diedAt;
      // a will already due is published once the session is saved without it, not before: a
      // failed save is retried, and must not publish it twice
      const due = willDelayOver({ ...stored.snapshot, disconnectedAt: since }, Date.now()) ? session.will : undefined;
      if (due !== undefined) session.will = undefined;
      // saved under the new epoch (fencing the dead node's writes), with what it had queued
      const saved = session.toSnapshot(since);
      await store.save(saved, claim.epoch);
      const queued = session.queue.toArray();
      session.queue.clear();
      const detached = this.keepDetached(session, since, claim.epoch);
      try {
        for (const [filter, options] of session.subscriptions) await router.subscribe(clientId, filter, options);
      } catch (err) {
        // all or nothing: a retry (this node owns it now) subscribes again from the start
        this.detached.delete(clientId);
        detached.clearTimers();
        router.detach(detached);
        for (const filter of session.subscriptions.keys()) await router.unsubscribe(clientId, filter).catch(() => undefined);
        if (due !== undefined) await store.save({ ...saved, will: due }, claim.epoch).catch(() => undefined); // still due
        throw err;
      }
      detached.append(queued.filter((d) => d.qos > 0).map((d) => d.message));
      if (due !== undefined) this.fireWill(clientId, due);
      this.stats.sessionsAdopted++;
      log.info({ clientId, from: deadNode }, 'session_adopted_from_dead_node');
      return true;
    });
  }

  /**
   * Whether another node answers over the node link (within the takeover timeout): a node
   * whose heartbeat lapsed but that answers is alive and keeps its clients. False without a
   * link (a node alone cannot ask).
   */
  async answers(nodeId: string): Promise<boolean> {
    const { link } = this.deps;
    if (link === undefined) return false;
    try {
      return (await link.request(nodeId, { type: 'ping' }, this.deps.takeoverTimeoutMs ?? 2000)).type === 'pong';
    } catch {
      return false;
    }
  }

  /**
   * After this node found its own registration expired (a long pause, Redis or the network out
   * of reach), live nodes may have adopted its client IDs meanwhile. Lets go of every connected
   * client and detached session whose ownership record no longer names this node with the epoch
   * it holds: a client is closed as taken over (5.0 DISCONNECT 0x8E, 3.x close) without its will,
   * which its adopter handled; a detached copy is dropped. The new owner's stored state is
   * neither deleted nor written. What cannot be checked (the ownership store is unreachable) is
   * kept. At most `concurrency` lookups at once.
   */
  async reconcileOwnership(concurrency = 16): Promise<{ closed: number; dropped: number }> {
    const { ownership, nodeId, log } = this.deps;
    const result = { closed: 0, dropped: 0 };
    const clientIds = [...new Set([...this.live.keys(), ...this.detached.keys()])];
    await mapLimit(clientIds, concurrency, (clientId) =>
      this.withLock(clientId, async () => {
        const entry = this.live.get(clientId);
        const detached = this.detached.get(clientId);
        const epoch = entry?.epoch ?? detached?.epoch;
        if (epoch === undefined) return; // gone meanwhile
        let owner: OwnerRecord | null;
        try {
          owner = await ownership.owner(clientId);
        } catch {
          return; // unknown: kept, as stillOwner does
        }
        if (owner?.nodeId === nodeId && owner.epoch === epoch) return;
        // no record at all: an adopter ended the session (and published its will), or Redis
        // lost its data. A connected client is let go either way (it reconnects and claims
        // afresh); a detached session is kept capturing: it may be the only copy of it
        if (owner === null && entry === undefined) return;
        try {
          if (entry !== undefined) {
            this.live.delete(clientId);
            const { session } = entry.channel.takeover(); // its will goes with it: the adopter published it
            this.deps.router.detach(entry.channel);
            for (const filter of session.subscriptions.keys()) await this.deps.router.unsubscribe(clientId, filter);
            result.closed++;
          } else if (detached !== undefined) {
            await this.dropStale(detached);
            result.dropped++;
          }
          this.stats.sessionsLost++;
          log.info({ clientId, owner: owner?.nodeId ?? null, connected: entry !== undefined }, 'session_lost_while_expired');
        } catch (err) {
          log.warn({ clientId, err: (err as Error).message }, 'session_reconcile_failed');
        }
      }),
    );
    return result;
  }

  /**
   * Drain: hands every detached session of this node to one of `liveNodes` (rendezvous
   * hashing on the client ID), so that they keep capturing after this node is gone.
   */
  async handOffDetached(liveNodes: readonly string[]): Promise<{ handed: number; kept: number }> {
    const { link, nodeId, log } = this.deps;
    const others = liveNodes.filter((n) => n !== nodeId);
    let handed = 0;
    let kept = 0;
    for (const clientId of [...this.detached.keys()]) {
      const target = rendezvousOwner(clientId, others);
      let ok = false;
      if (link !== undefined && target !== undefined) {
        try {
          const reply = await link.request(target, { type: 'adopt', clientId, from: nodeId }, 3 * (this.deps.takeoverTimeoutMs ?? 2000));
          ok = reply.type === 'adopted' && reply.ok;
        } catch (err) {
          log.warn({ clientId, target, err: (err as Error).message }, 'session_handoff_failed');
        }
      }
      if (ok) handed++;
      else kept++;
    }
    return { handed, kept };
  }

  /**
   * The new owner went quiet (or this node is going): what was buffered for it goes to the
   * node that owns the client now, which delivers it to its client (the new owner may have
   * stopped waiting for takeover-end and opened the session: an offline queue would keep it
   * from the client until its next reconnect); when no node takes it, to the offline queue.
   * The request to the owner is made outside this client's lock: the owner may be waiting
   * for this node's answer to its takeover-end while holding its own.
   */
  private async abandonHandover(clientId: string): Promise<void> {
    const left = await this.withLock(clientId, () => this.finishHandover(clientId, false));
    if (left.length === 0 || (await this.passOn(clientId, left))) return;
    const messages = left.filter((b) => b.delivery.qos > 0).map((b) => b.message);
    if (messages.length === 0) return;
    await this.withLock(clientId, () =>
      this.deps.offlineQueue.append(clientId, messages).catch((err: unknown) => {
        this.deps.log.error({ clientId, count: messages.length, err }, 'offline_append_failed');
      }),
    );
  }

  /** Hands deliveries to the current owner of the client (this node or another); true when it took them. */
  private async passOn(clientId: string, deliveries: readonly BufferedDelivery[]): Promise<boolean> {
    const { link, ownership, nodeId, log } = this.deps;
    try {
      const owner = await ownership.owner(clientId);
      if (owner === null) return false;
      if (owner.nodeId === nodeId) return await this.withLock(clientId, () => this.takeDeliveries(clientId, owner.epoch, deliveries));
      if (link === undefined) return false;
      const reply = await link.request(owner.nodeId, { type: 'deliver', clientId, epoch: owner.epoch, deliveries }, this.deps.takeoverTimeoutMs ?? 2000);
      return reply.type === 'delivered' && reply.ok;
    } catch (err) {
      log.warn({ clientId, count: deliveries.length, err: (err as Error).message }, 'handover_pass_on_failed');
      return false;
    }
  }

  /**
   * Owner: deliveries an old owner buffered for this client and could not hand over at
   * takeover-end. A connected client gets them (duplicates dropped by message ID); a detached
   * session captures QoS 1/2. False when this node does not hold the session at `epoch`.
   */
  private async takeDeliveries(clientId: string, epoch: number, deliveries: readonly BufferedDelivery[]): Promise<boolean> {
    const entry = this.live.get(clientId);
    if (entry !== undefined && entry.epoch === epoch) {
      for (const b of deliveries) entry.channel.deliver(b.message, b.delivery, b.shared);
      return true;
    }
    const detached = this.detached.get(clientId);
    if (detached !== undefined && detached.epoch === epoch) {
      detached.append(deliveries.filter((b) => b.delivery.qos > 0).map((b) => b.message));
      await detached.flush();
      return true;
    }
    return false;
  }

  /**
   * Drain: waits (up to `ms`) until the new owners of the sessions this node is handing over
   * have collected what it buffered for them (takeover-end); what is still buffered then goes
   * to the offline queue. Without this a draining node could close its link between the two
   * steps of a takeover, and the buffer would go with it.
   */
  async settleHandovers(ms = 2 * (this.deps.takeoverTimeoutMs ?? 2000)): Promise<void> {
    this.settling = true; // no new handovers: their takeover-end could come after the link closed
    const deadline = Date.now() + ms;
    while (this.handovers.size > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => setTimeout(resolve, 10));
    }
    await Promise.all([...this.handovers.keys()].map((clientId) => this.abandonHandover(clientId)));
    await this.idle(); // a takeover-end still being answered finishes before the link closes
  }

  /** Resolves once every session operation started so far has finished. */
  async idle(): Promise<void> {
    while (this.locks.size > 0) await Promise.all([...this.locks.values()]);
  }

  /**
   * Old owner draining (past the start of settleHandovers), takeover-begin: a handover now
   * could have its takeover-end arrive after this node's link closed, and its buffer would go
   * with the node. A detached session stays where it is instead: its captures are flushed to
   * the offline queue and it is saved, and it keeps capturing into the offline queue until
   * this node closes. The new owner, answered null, resumes from the stores, subscribing before
   * it reads the offline queue, so nothing falls between. A connected client (none after drain
   * disconnected them) is handed over as usual.
   */
  private async leaveInStores(clientId: string): Promise<SessionSnapshot | null> {
    const detached = this.detached.get(clientId);
    if (detached === undefined) return this.live.has(clientId) ? this.handOver(clientId) : null;
    detached.clearTimers(); // its will and expiry belong to the new owner now
    await detached.flush();
    await this.persistEntry(detached.session, detached.epoch, detached.since).catch((err: unknown) => {
      this.deps.log.info({ clientId, err: (err as Error).message }, 'session_fenced');
    });
    this.deps.log.info({ clientId }, 'session_left_in_stores');
    return null;
  }

  /** Old owner, takeover-begin: close the client, keep buffering, export the session. */
  private async handOver(clientId: string): Promise<SessionSnapshot | null> {
    const { router, log } = this.deps;
    let session: Session;
    let since = Date.now();
    const current = this.live.get(clientId);
    const detached = this.detached.get(clientId);
    if (current !== undefined) {
      const taken = current.channel.takeover();
      this.live.delete(clientId);
      session = taken.session;
      session.will = taken.will;
    } else if (detached !== undefined) {
      this.detached.delete(clientId);
      detached.clearTimers();
      session = detached.session;
      since = detached.since;
    } else {
      return null;
    }
    // from here on what the session's subscriptions match is buffered for the new owner; for a
    // detached session it replaces the detached one at once, so nothing that arrives while its
    // queue is read below falls between the two
    const handover = new HandoverSubscriber(session, detached !== undefined, this.stats);
    router.attach(handover);
    this.handovers.set(clientId, handover);
    handover.timer = setTimeout(() => void this.abandonHandover(clientId), HANDOVER_LIMIT_MS);
    handover.timer.unref();
    if (detached !== undefined) {
      await detached.flush();
      // what it captured travels in the snapshot: the offline queue may be this node's own.
      // Not checked against the session's recent IDs, which include what its last connection
      // had queued (seen, not sent) and moved to the offline queue itself. Copied, not moved:
      // it is removed at takeover-end, once the new owner has the snapshot; a new owner that
      // stopped waiting reads it from the queue instead (a shared one) or finds it here later
      await this.restoreQueued(session, true);
    }
    log.info({ clientId }, 'session_handed_over');
    const snapshot = session.toSnapshot(since);
    // what was queued for the client and not sent travels in the snapshot
    session.queue.clear();
    return snapshot;
  }

  /**
   * Old owner, takeover-end (`received`: the new owner has the snapshot): drop the session
   * here, remove the offline queue the snapshot carried, hand over what was buffered.
   */
  private async finishHandover(clientId: string, received: boolean): Promise<BufferedDelivery[]> {
    const handover = this.handovers.get(clientId);
    if (handover === undefined) return [];
    this.handovers.delete(clientId);
    clearTimeout(handover.timer);
    const { router, offlineQueue, log } = this.deps;
    // the new owner's request came on another connection than the messages, and may have
    // overtaken some that were routed here before its subscription took effect: they are
    // taken into the buffer first (a bus that is down carries nothing more anyway); bounded,
    // so that a slow bus does not make the reply miss the new owner's wait
    await this.syncBus(clientId);
    router.detach(handover);
    for (const filter of handover.session.subscriptions.keys()) await router.unsubscribe(clientId, filter);
    log.info({ clientId, buffered: handover.buffer.length, received }, 'session_handover_finished');
    if (received && handover.queueRead) {
      // left in place if this fails: the new owner reads it after takeover-end and drops
      // what the snapshot already brought
      await offlineQueue.clear(clientId).catch((err: unknown) => log.warn({ clientId, err }, 'offline_queue_clear_failed'));
    }
    return handover.buffer;
  }

  /** MessageBus.sync for at most a quarter of the takeover timeout; a failure or the timeout is logged. */
  private async syncBus(clientId: string): Promise<void> {
    const { router, log } = this.deps;
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(resolve, (this.deps.takeoverTimeoutMs ?? 2000) / 4, 'timeout');
    });
    try {
      if ((await Promise.race([router.sync(), limit])) === 'timeout') log.warn({ clientId }, 'bus_sync_timeout');
    } catch (err) {
      log.warn({ clientId, err }, 'bus_sync_failed');
    } finally {
      clearTimeout(timer);
    }
  }

  /** New owner: ask the previous owner for the session; null when it has none or does not answer. */
  private async beginRemoteTakeover(nodeId: string, clientId: string, epoch: number): Promise<SessionSnapshot | null> {
    const { link, log } = this.deps;
    if (link === undefined) return null;
    try {
      const reply = await link.request(nodeId, { type: 'takeover-begin', clientId, epoch }, this.deps.takeoverTimeoutMs ?? 2000);
      return reply.type === 'snapshot' ? reply.snapshot : null;
    } catch (err) {
      // it died (or is gone): the stores hold what it persisted
      log.info({ clientId, nodeId, err: (err as Error).message }, 'takeover_owner_unreachable');
      return null;
    }
  }

  private async endRemoteTakeover(nodeId: string, clientId: string, epoch: number): Promise<readonly BufferedDelivery[]> {
    try {
      const reply = await this.deps.link!.request(nodeId, { type: 'takeover-end', clientId, epoch }, this.deps.takeoverTimeoutMs ?? 2000);
      return reply.type === 'buffer' ? reply.deliveries : [];
    } catch (err) {
      // the old owner gives up on this node in time and hands its buffer to whichever node owns
      // the client then (deliver), or to the offline queue when none takes it
      this.deps.log.warn({ clientId, nodeId, err: (err as Error).message }, 'takeover_end_unanswered');
      return [];
    }
  }

  private fireWill(clientId: string, will: WillMessage): void {
    this.stats.willsPublished++;
    this.deps.publishWill(clientId, will).catch((err: unknown) => {
      this.deps.log.error({ clientId, err }, 'will_publish_failed');
    });
  }

  /** Runs fn after every earlier operation on the same client ID has finished. */
  private withLock<T>(clientId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(clientId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(clientId, tail);
    void tail.then(() => {
      if (this.locks.get(clientId) === tail) this.locks.delete(clientId);
    });
    return run;
  }

  /** Ends every detached session timer (node shutdown). */
  shutdown(): void {
    for (const d of this.detached.values()) d.clearTimers();
    for (const h of this.handovers.values()) clearTimeout(h.timer);
  }
}
