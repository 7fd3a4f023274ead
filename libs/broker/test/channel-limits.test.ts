/**
 * Policy limits resolved per client at CONNECT (maximum QoS, inflight, queue length, packet
 * size), connection limits per listener (count and rate, answered with a CONNACK), and the
 * disconnect of a client whose token expires.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConnackReturnCode, ReasonCode } from '@fleetmq/protocol';
import type { Authenticator, ClientIdentity } from '../src/auth.js';
import { defaultClientLimits, type ClientLimits, type LimitPolicy } from '../src/client-limits.js';
import { Harness, settle, type TestClient } from './support/harness.js';

const versions = [4, 5] as const;

/** A policy by username, counting how often it is asked. */
function byUser(limits: Record<string, Partial<ClientLimits>>): LimitPolicy & { calls: number } {
  const resolved = new Map(Object.entries(limits).map(([user, l]) => [user, { ...defaultClientLimits, ...l }]));
  const policy = {
    calls: 0,
    limitsFor(identity: ClientIdentity | undefined): ClientLimits {
      policy.calls++;
      return resolved.get(identity?.username ?? '') ?? defaultClientLimits;
    },
  };
  return policy;
}

/** Lets in anyone, as the username says. */
const asUsername: Authenticator = {
  authenticate: (c) => ({ ok: true, identity: { provider: 'test', username: c.username, groups: [] } }),
};

function code(p: { reasonCode?: number; returnCode?: number }): number {
  return p.reasonCode ?? p.returnCode ?? 0;
}

const harnesses: Harness[] = [];
function harness(o: ConstructorParameters<typeof Harness>[0] = {}): Harness {
  const h = new Harness(o);
  harnesses.push(h);
  return h;
}

afterEach(async () => {
  vi.useRealTimers();
  for (const h of harnesses.splice(0)) {
    h.assertClean();
    await h.close();
  }
});

describe.each(versions)('policy limits per client, MQTT %s', (version) => {
  const v5 = version === 5;

  it('are resolved once per CONNECT, not per message', async () => {
    const policy = byUser({ device: { maxPayloadSize: 4 } });
    const h = harness({ authenticator: asUsername, policy });
    const c = await h.connect({ clientId: 'd', protocolVersion: version, username: 'device' });
    for (let i = 0; i < 5; i++) await c.publish('t', 'ok', { qos: 1 });
    await c.publish('t', 'too long', { qos: 1 });
    expect(c.drain().map((p) => code(p as { reasonCode?: number }))).toEqual([0, 0, 0, 0, 0, v5 ? ReasonCode.QuotaExceeded : 0]);
    expect(policy.calls).toBe(1);
  });

  it(`maximum QoS per user: ${v5 ? 'CONNACK Maximum QoS 1 and' : ''} a QoS 2 PUBLISH closes only that user's connection`, async () => {
    const h = harness({ authenticator: asUsername, policy: byUser({ hub: { maximumQoS: 1 } }) });
    const hub = h.client();
    const connack = await hub.connect({ clientId: 'hub', protocolVersion: version, username: 'hub' });
    if (v5) expect(connack.properties?.maximumQoS).toBe(1);
    const other = await h.connect({ clientId: 'other', protocolVersion: version, username: 'other' });
    expect((await hub.subscribe({ topic: 't', qos: 2 })).granted).toEqual([1]);
    expect((await other.subscribe({ topic: 't', qos: 2 })).granted).toEqual([2]);
    await other.publish('t', 'x', { qos: 2 });
    expect(code(other.take('pubrec'))).toBe(0);
    await hub.publish('t', 'x', { qos: 2 });
    if (v5) expect(hub.take('disconnect').reasonCode).toBe(ReasonCode.QoSNotSupported);
    expect(hub.closed).toBe(true);
    expect(other.closed).toBe(false);
    expect(h.broker.stats.limits.maxQoS).toBe(2); // the downgraded subscription and the PUBLISH
  });

  it('a will above the client\'s maximum QoS refuses the CONNECT', async () => {
    const h = harness({ authenticator: asUsername, policy: byUser({ hub: { maximumQoS: 0 } }) });
    const c = h.client();
    const connack = await c.connect({ clientId: 'w', protocolVersion: version, username: 'hub', will: { topic: 'lwt', payload: Buffer.from('x'), qos: 1, retain: false } });
    expect(code(connack)).toBe(v5 ? ReasonCode.QoSNotSupported : ConnackReturnCode.ServerUnavailable);
    expect(c.closed).toBe(true);
  });

  it('maxInflight caps outgoing QoS 1 messages in flight whatever Receive Maximum the client gives', async () => {
    const h = harness({ authenticator: asUsername, policy: byUser({ slow: { maxInflight: 2 } }) });
    const sub = h.client();
    await sub.connect({ clientId: 'sub', protocolVersion: version, username: 'slow', ...(v5 ? { properties: { receiveMaximum: 100 } } : {}) });
    await sub.subscribe({ topic: 't', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    for (let i = 0; i < 5; i++) await pub.publish('t', String(i), { qos: 1 });
    await settle();
    const first = sub.publishes();
    expect(first.map((p) => p.payload.toString())).toEqual(['0', '1']);
    expect(h.broker.stats.limits.inflight).toBe(3);
    await sub.ack(first[0]!);
    expect(sub.publishes().map((p) => p.payload.toString())).toEqual(['2']);
  });

  it(`maxInflight caps incoming QoS 2: ${v5 ? 'Receive Maximum advertised, one more is DISCONNECT 0x93' : 'one more closes the connection'}`, async () => {
    const h = harness({ authenticator: asUsername, policy: byUser({ gw: { maxInflight: 2 } }) });
    const c = h.client();
    const connack = await c.connect({ clientId: 'gw', protocolVersion: version, username: 'gw' });
    if (v5) expect(connack.properties?.receiveMaximum).toBe(2);
    await c.publish('t', 'a', { qos: 2 });
    await c.publish('t', 'b', { qos: 2 });
    expect(c.drain().map((p) => p.cmd)).toEqual(['pubrec', 'pubrec']);
    await c.publish('t', 'c', { qos: 2 });
    if (v5) expect(c.next('disconnect').reasonCode).toBe(ReasonCode.ReceiveMaximumExceeded);
    else expect(c.drain()).toEqual([]);
    expect(c.closed).toBe(true);
    expect(h.broker.stats.limits.inflight).toBe(1);
  });

  it('maxQueued bounds the session queue of that client (drop-oldest), counted as queue_length', async () => {
    const h = harness({ authenticator: asUsername, policy: byUser({ small: { maxQueued: 3, maxInflight: 1 } }) });
    const sub = h.client();
    await sub.connect({ clientId: 'sub', protocolVersion: version, username: 'small' });
    await sub.subscribe({ topic: 't', qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    for (let i = 0; i < 6; i++) await pub.publish('t', String(i), { qos: 1 });
    await settle();
    // one in flight, three queued, the two oldest of the queue dropped
    const inflight = sub.publishes();
    expect(inflight.map((p) => p.payload.toString())).toEqual(['0']);
    expect(h.broker.stats.limits.queueLength).toBe(2);
    expect(h.broker.stats.dropped.queueFull).toBe(2);
    const got: string[] = [];
    let next = inflight[0];
    while (next !== undefined) {
      await sub.ack(next);
      next = sub.publishes()[0];
      if (next !== undefined) got.push(next.payload.toString());
    }
    expect(got).toEqual(['3', '4', '5']);
  });

  it('a lower maxQueued trims what a resumed session had queued', async () => {
    const h = harness({ authenticator: asUsername, policy: byUser({ small: { maxQueued: 2 } }) });
    const first = h.client();
    await first.connect({ clientId: 'q', protocolVersion: version, username: 'big', clean: false, ...(v5 ? { properties: { sessionExpiryInterval: 60 } } : {}) });
    await first.subscribe({ topic: 't', qos: 1 });
    await first.drop();
    const pub = await h.connect({ clientId: 'pub' });
    for (let i = 0; i < 4; i++) await pub.publish('t', String(i), { qos: 1 });
    await settle();
    const again = h.client();
    const connack = await again.connect({ clientId: 'q', protocolVersion: version, username: 'small', clean: false, ...(v5 ? { properties: { sessionExpiryInterval: 60 } } : {}) });
    expect(connack.sessionPresent).toBe(true);
    await settle();
    const got = again.publishes().map((p) => p.payload.toString());
    expect(got).toEqual(['2', '3']);
    expect(h.broker.stats.limits.queueLength).toBe(2);
  });

  it(`maxPacketSize: ${v5 ? 'CONNACK advertises the client\'s maximum, and' : ''} the connection is told to enforce it`, async () => {
    const h = harness({ authenticator: asUsername, policy: byUser({ tiny: { maxPacketSize: 256 } }), options: { maxPacketSize: 4096 } });
    const c = h.client();
    const connack = await c.connect({ clientId: 'tiny', protocolVersion: version, username: 'tiny' });
    if (v5) expect(connack.properties?.maximumPacketSize).toBe(256);
    expect(c.sink.maxIncomingPacketSize).toBe(256);
    const big = h.client();
    const bigAck = await big.connect({ clientId: 'big', protocolVersion: version, username: 'other' });
    if (v5) expect(bigAck.properties?.maximumPacketSize).toBe(4096);
    expect(big.sink.maxIncomingPacketSize).toBeUndefined(); // the node's own maximum needs no call
  });
});

describe.each(versions)('connection limits per listener, MQTT %s', (version) => {
  const v5 = version === 5;
  const refused = (reason: number) => (v5 ? reason : ConnackReturnCode.ServerUnavailable);

  it(`maxConnections: the CONNECT over it gets ${v5 ? 'CONNACK 0x97' : 'return code 3'} and is closed; a freed slot is used again`, async () => {
    const h = harness({ listenerLimits: { test: { maxConnections: 2 }, other: {} } });
    const a = await h.connect({ clientId: 'a', protocolVersion: version });
    await h.connect({ clientId: 'b', protocolVersion: version });
    const c = h.client();
    const connack = await c.connect({ clientId: 'c', protocolVersion: version });
    expect(code(connack)).toBe(refused(ReasonCode.QuotaExceeded));
    expect(c.closed).toBe(true);
    await settle();
    expect(h.broker.stats.limits.connections).toBe(1);
    expect(h.broker.stats.connectionsRefused).toEqual({ test: { connections: 1, connectionRate: 0 } });
    expect(h.broker.openConnections('test')).toBe(2);
    // another listener has its own count
    expect(code(await h.client({ listener: 'other' }).connect({ clientId: 'x', protocolVersion: version }))).toBe(0);
    await a.disconnect();
    await settle();
    expect(h.broker.openConnections('test')).toBe(1);
    expect(code(await h.client().connect({ clientId: 'd', protocolVersion: version }))).toBe(0);
  });

  it(`connectionRate: beyond the burst a CONNECT gets ${v5 ? 'CONNACK 0x9F' : 'return code 3'}; the bucket refills`, async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const h = harness({ listenerLimits: { test: { connectionRate: { perSecond: 2, burst: 2 } } } });
    await h.connect({ clientId: 'a', protocolVersion: version });
    await h.connect({ clientId: 'b', protocolVersion: version });
    const c = h.client();
    expect(code(await c.connect({ clientId: 'c', protocolVersion: version }))).toBe(refused(ReasonCode.ConnectionRateExceeded));
    expect(c.closed).toBe(true);
    vi.advanceTimersByTime(500);
    expect(code(await h.client().connect({ clientId: 'd', protocolVersion: version }))).toBe(0);
    expect(h.broker.stats.limits.connectionRate).toBe(1);
    expect(h.broker.stats.connectionsRefused.test).toEqual({ connections: 0, connectionRate: 1 });
  });
});

describe.each(versions)('token expiry after CONNECT, MQTT %s', (version) => {
  const v5 = version === 5;
  /** Client `dev` logs in with a token that expires in `ms`; everyone else without expiry. */
  const expiringIn = (ms: number): Authenticator => ({
    authenticate: (c) =>
      c.clientId === 'dev'
        ? { ok: true, identity: { provider: 'jwt', username: 'dev', groups: [], expiresAt: Date.now() + ms } }
        : { ok: true, identity: { provider: 'password-file', username: c.clientId, groups: [] } },
  });

  it(`the client is disconnected when its token expires${v5 ? ' with DISCONNECT 0xA0' : ''}; its will is published`, async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const h = harness({ authenticator: expiringIn(60_000) });
    const watcher = await h.connect({ clientId: 'watcher', protocolVersion: 5 });
    await watcher.subscribe({ topic: 'lwt/#', qos: 1 });
    const c = h.client();
    await c.connect({ clientId: 'dev', protocolVersion: version, will: { topic: 'lwt/dev', payload: Buffer.from('gone'), qos: 1, retain: false } });
    vi.advanceTimersByTime(59_999);
    expect(c.closed).toBe(false);
    vi.advanceTimersByTime(1);
    if (v5) expect(c.next('disconnect').reasonCode).toBe(ReasonCode.MaximumConnectTime);
    else expect(c.drain()).toEqual([]);
    expect(c.closed).toBe(true);
    expect(h.broker.stats.auth.expired).toBe(1);
    await settle();
    expect(watcher.publishes().map((p) => p.topic)).toEqual(['lwt/dev']);
  });

  it('the timer goes with the connection: a client that left is not touched later', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const h = harness({ authenticator: expiringIn(10_000) });
    const before = vi.getTimerCount();
    const c = await h.connect({ clientId: 'dev', protocolVersion: version });
    expect(vi.getTimerCount()).toBe(before + 1);
    await c.disconnect();
    expect(vi.getTimerCount()).toBe(before);
    vi.advanceTimersByTime(20_000);
    expect(h.broker.stats.auth.expired).toBe(0);
  });

  it('a session taken over clears the old connection\'s timer', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const h = harness({ authenticator: expiringIn(10_000) });
    const old: TestClient = await h.connect({ clientId: 'dev', protocolVersion: version });
    vi.advanceTimersByTime(5_000);
    const fresh = await h.connect({ clientId: 'dev', protocolVersion: version });
    expect(old.closed).toBe(true);
    vi.advanceTimersByTime(5_000); // the old token's expiry: nothing happens to the new connection
    expect(fresh.closed).toBe(false);
    vi.advanceTimersByTime(5_000);
    expect(fresh.closed).toBe(true);
    expect(h.broker.stats.auth.expired).toBe(1);
  });
});
