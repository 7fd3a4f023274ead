import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConnackReturnCode, ReasonCode } from '@fleetmq/protocol';
import type { AuthResult, ClientInfo } from '../src/auth.js';
import { connectPacket, payloads, settle, useHarness } from './support/harness.js';

const harness = useHarness();

afterEach(() => {
  vi.useRealTimers();
});

describe('first packet and second CONNECT', () => {
  it('[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection with no reply', async () => {
    const h = harness();
    const c = h.client();
    await c.send({ cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
    expect(c.closed).toBe(true);
    expect(c.drain()).toEqual([]);
    expect(c.channel.state).toBe('disconnected');
    // nothing it sends afterwards is processed
    await c.send(connectPacket({ clientId: 'late' }));
    expect(c.drain()).toEqual([]);
    expect(h.broker.registry.isConnected('late')).toBe(false);
  });

  it('[MQTT-3.1.0-1] PINGREQ before CONNECT closes too', async () => {
    const h = harness();
    const c = h.client();
    await c.send({ cmd: 'pingreq' });
    expect(c.closed).toBe(true);
    expect(c.drain()).toEqual([]);
  });

  it('[MQTT-3.1.0-2] a second CONNECT on v5 is a protocol error: DISCONNECT 0x82 then close', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 'twice' });
    await c.send(connectPacket({ clientId: 'twice' }));
    const d = c.next('disconnect');
    expect(d.reasonCode).toBe(ReasonCode.ProtocolError);
    expect(c.closed).toBe(true);
    expect(c.drain()).toEqual([]);
    await settle();
    expect(h.broker.registry.isConnected('twice')).toBe(false);
  });

  it('[MQTT-3.1.0-2] a second CONNECT on 3.1.1 closes without a packet', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 'twice3', protocolVersion: 4 });
    await c.send(connectPacket({ clientId: 'twice3', protocolVersion: 4 }));
    expect(c.closed).toBe(true);
    expect(c.drain()).toEqual([]);
  });

  it('[MQTT-3.1.2-2] protocol name and level that do not match are refused (3.1.1: return code 1)', async () => {
    const h = harness();
    const bad = h.client();
    await bad.send({ ...connectPacket({ clientId: 'bad', protocolVersion: 4 }), protocolId: 'MQIsdp' });
    expect(bad.next('connack').returnCode).toBe(ConnackReturnCode.UnacceptableProtocolVersion);
    expect(bad.closed).toBe(true);
  });

  it('tells the sink the protocol version and answers PINGREQ with PINGRESP', async () => {
    const h = harness();
    for (const version of [3, 4, 5] as const) {
      const c = await h.connect({ clientId: `v${version}`, protocolVersion: version });
      expect(c.sink.protocolVersion).toBe(version);
      await c.send({ cmd: 'pingreq' });
      expect(c.next('pingresp')).toEqual({ cmd: 'pingresp' });
    }
  });
});

describe('client identifier', () => {
  it('[MQTT-3.1.3-6, MQTT-3.1.3-7] v5: an empty client ID gets a unique Assigned Client Identifier in CONNACK', async () => {
    const h = harness();
    const a = h.client();
    const b = h.client();
    const ca = await a.connect({ clientId: '' });
    const cb = await b.connect({ clientId: '' });
    expect(ca.reasonCode).toBe(0);
    const idA = ca.properties?.assignedClientIdentifier;
    const idB = cb.properties?.assignedClientIdentifier;
    expect(typeof idA).toBe('string');
    expect(idA!.length).toBeGreaterThan(0);
    expect(idA).not.toBe(idB);
    // the CONNECT is processed as if the client had sent that ID
    expect(a.channel.clientId).toBe(idA);
    expect(h.broker.registry.isConnected(idA!)).toBe(true);
    expect(h.broker.registry.isConnected(idB!)).toBe(true);
  });

  it('v5: a client that sent its own ID gets no Assigned Client Identifier', async () => {
    const h = harness();
    const c = h.client();
    const connack = await c.connect({ clientId: 'mine' });
    expect(connack.properties?.assignedClientIdentifier).toBeUndefined();
  });

  it('[MQTT-3.1.3-7] 3.1.1: an empty client ID with clean session 1 is accepted', async () => {
    const h = harness();
    const c = h.client();
    const connack = await c.connect({ clientId: '', protocolVersion: 4, clean: true });
    expect(connack.returnCode).toBe(ConnackReturnCode.Accepted);
    expect(connack.sessionPresent).toBe(false);
    expect(c.channel.clientId.length).toBeGreaterThan(0);
  });

  it('[MQTT-3.1.3-8] 3.1.1: an empty client ID with clean session 0 is refused with 0x02 and closed', async () => {
    const h = harness();
    const c = h.client();
    const connack = await c.connect({ clientId: '', protocolVersion: 4, clean: false });
    expect(connack.returnCode).toBe(ConnackReturnCode.IdentifierRejected);
    expect(connack.sessionPresent).toBe(false);
    expect(c.closed).toBe(true);
    expect(h.broker.registry.connectedCount).toBe(0);
  });

  it('3.1: an empty client ID is refused with identifier rejected', async () => {
    const h = harness();
    const c = h.client();
    const connack = await c.connect({ clientId: '', protocolVersion: 3, clean: true });
    expect(connack.returnCode).toBe(ConnackReturnCode.IdentifierRejected);
    expect(c.closed).toBe(true);
  });

  it('[MQTT-3.1.3-8] v5: a client ID the server does not accept gets 0x85; [MQTT-3.1.3-9] 3.1.1 gets 0x02', async () => {
    const h = harness({ options: { maxClientIdLength: 8 } });
    const v5 = h.client();
    expect((await v5.connect({ clientId: 'much-too-long' })).reasonCode).toBe(ReasonCode.ClientIdentifierNotValid);
    expect(v5.closed).toBe(true);
    const v4 = h.client();
    expect((await v4.connect({ clientId: 'much-too-long', protocolVersion: 4 })).returnCode).toBe(
      ConnackReturnCode.IdentifierRejected,
    );
    // [MQTT-1.5.4-2] U+0000 is never allowed in a UTF-8 string
    const nul = h.client();
    expect((await nul.connect({ clientId: 'a\u0000b' })).reasonCode).toBe(ReasonCode.ClientIdentifierNotValid);
  });
});

describe('session present and session expiry', () => {
  it('[MQTT-3.2.2-2] v5: Clean Start 1 always answers Session Present 0 and discards the session', async () => {
    const h = harness();
    const a = await h.connect({ clientId: 's', clean: false, properties: { sessionExpiryInterval: 60 } });
    await a.subscribe('t/#');
    await a.drop();
    const b = h.client();
    const connack = await b.connect({ clientId: 's', clean: true, properties: { sessionExpiryInterval: 60 } });
    expect(connack.sessionPresent).toBe(false);
    expect(b.channel.session!.subscriptions.size).toBe(0);
  });

  it('[MQTT-3.2.2-3] v5: Clean Start 0 answers Session Present 1 only when a session exists', async () => {
    const h = harness();
    const first = h.client();
    expect((await first.connect({ clientId: 's', clean: false, properties: { sessionExpiryInterval: 60 } })).sessionPresent).toBe(false);
    await first.subscribe('t/#');
    await first.drop();
    const again = h.client();
    const connack = await again.connect({ clientId: 's', clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(connack.sessionPresent).toBe(true);
    expect([...again.channel.session!.subscriptions.keys()]).toEqual(['t/#']);
  });

  it('[MQTT-3.2.2-1, MQTT-3.2.2-2] 3.1.1: clean session 0 resumes (SP 1), clean session 1 starts over (SP 0)', async () => {
    const h = harness();
    const a = h.client();
    expect((await a.connect({ clientId: 'p', protocolVersion: 4, clean: false })).sessionPresent).toBe(false);
    await a.subscribe('x');
    await a.drop();
    const b = h.client();
    expect((await b.connect({ clientId: 'p', protocolVersion: 4, clean: false })).sessionPresent).toBe(true);
    expect(b.channel.session!.subscriptions.has('x')).toBe(true);
    await b.drop();
    const c = h.client();
    expect((await c.connect({ clientId: 'p', protocolVersion: 4, clean: true })).sessionPresent).toBe(false);
    expect(c.channel.session!.subscriptions.size).toBe(0);
  });

  it('[MQTT-3.1.2-23] v5: Session Expiry Interval 0 (absent) ends the session with the connection', async () => {
    const h = harness();
    const a = await h.connect({ clientId: 'e0', clean: false });
    await a.subscribe('x');
    await a.drop();
    expect(h.broker.registry.detachedCount).toBe(0);
    const b = h.client();
    expect((await b.connect({ clientId: 'e0', clean: false })).sessionPresent).toBe(false);
  });

  it('a reconnect while the previous connection is still being closed resumes the session', async () => {
    const h = harness();
    const opts = { clientId: 'quick', clean: false, properties: { sessionExpiryInterval: 60 } };
    const a = await h.connect(opts);
    await a.subscribe('q/#');
    a.channel.handleClosed('socket_error'); // no settle: the registry is still closing it
    const b = h.client();
    const connack = await b.connect(opts);
    expect(connack.sessionPresent).toBe(true);
    expect(b.channel.session!.subscriptions.has('q/#')).toBe(true);
    await settle();
    expect(h.broker.registry.isConnected('quick')).toBe(true);
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('q/1', 'x', { qos: 1 });
    expect(payloads(b.publishes())).toEqual(['x']);
  });

  it('a connection that closes while its session is being opened gets no CONNACK; the session is kept', async () => {
    const h = harness();
    const opts = { clientId: 'gone', clean: false, properties: { sessionExpiryInterval: 60 } };
    const a = await h.connect(opts);
    await a.subscribe('g');
    await a.drop();
    let release!: () => void;
    const claim = h.ports.ownership.claim.bind(h.ports.ownership);
    const spy = vi.spyOn(h.ports.ownership, 'claim').mockImplementation(async (id, node) => {
      await new Promise<void>((r) => (release = r));
      return claim(id, node);
    });
    const b = h.client();
    const pending = b.send(connectPacket(opts));
    await settle();
    b.channel.handleClosed('socket_error');
    b.sink.closeCalls.push('socket_error');
    release();
    await pending;
    spy.mockRestore();
    await settle();
    expect(b.drain()).toEqual([]);
    expect(h.broker.registry.isConnected('gone')).toBe(false);
    expect(h.broker.registry.detachedCount).toBe(1);
    const c = h.client();
    expect((await c.connect(opts)).sessionPresent).toBe(true);
  });

  it('v5: a Session Expiry Interval above the server maximum is lowered and returned in CONNACK', async () => {
    const h = harness({ options: { maxSessionExpiryInterval: 100 } });
    const a = h.client();
    const connack = await a.connect({ clientId: 'cap', properties: { sessionExpiryInterval: 5000 } });
    expect(connack.properties?.sessionExpiryInterval).toBe(100);
    expect(a.channel.session!.expiryInterval).toBe(100);
    const b = h.client();
    const within = await b.connect({ clientId: 'cap2', properties: { sessionExpiryInterval: 50 } });
    expect(within.properties?.sessionExpiryInterval).toBeUndefined();
    expect(b.channel.session!.expiryInterval).toBe(50);
  });

  it('[MQTT-3.2.2-6, MQTT-3.2.2-7, MQTT-3.1.4-6] a refused CONNACK has Session Present 0, the connection closes, nothing more is processed', async () => {
    const h = harness({ authenticator: { authenticate: () => ({ ok: false, reasonCode: ReasonCode.NotAuthorized }) } });
    const c = h.client();
    const connack = await c.connect({ clientId: 'r', clean: false, properties: { sessionExpiryInterval: 10 } });
    expect(connack.reasonCode).toBe(ReasonCode.NotAuthorized);
    expect(connack.sessionPresent).toBe(false);
    expect(c.closed).toBe(true);
    expect(h.broker.registry.connectedCount).toBe(0);
    // nothing else is accepted on it
    await c.send({ cmd: 'pingreq' });
    expect(c.drain()).toEqual([]);
  });
});

describe('CONNACK capabilities and keep alive', () => {
  it('v5 CONNACK advertises the server limits that differ from the defaults', async () => {
    const h = harness({
      options: {
        receiveMaximum: 10,
        maximumQoS: 1,
        retainAvailable: false,
        maxPacketSize: 4096,
        topicAliasMaximum: 7,
        wildcardSubscriptionAvailable: false,
        subscriptionIdentifierAvailable: false,
        sharedSubscriptionAvailable: false,
      },
    });
    const c = h.client();
    const connack = await c.connect({ clientId: 'caps' });
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties).toMatchObject({
      receiveMaximum: 10,
      maximumQoS: 1,
      retainAvailable: false,
      maximumPacketSize: 4096,
      topicAliasMaximum: 7,
      wildcardSubscriptionAvailable: false,
      subscriptionIdentifiersAvailable: false,
      sharedSubscriptionAvailable: false,
    });
  });

  it('3.1.1 CONNACK carries a return code and no properties', async () => {
    const h = harness();
    const c = h.client();
    const connack = await c.connect({ clientId: 'v4', protocolVersion: 4 });
    expect(connack).toEqual({ cmd: 'connack', sessionPresent: false, returnCode: 0 });
  });

  it('[MQTT-3.2.2-22, MQTT-3.1.2-22] the keep alive the client asked for goes to the connection (which enforces 1.5x)', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 'ka', keepalive: 30 });
    expect(c.sink.keepAlive).toBe(30);
    const z = await h.connect({ clientId: 'ka0', keepalive: 0 });
    expect(z.sink.keepAlive).toBe(0);
  });

  it('[MQTT-3.1.2-21, MQTT-3.2.2-21] v5: a keep alive above the server maximum is replaced by Server Keep Alive', async () => {
    const h = harness({ options: { maxKeepAlive: 120 } });
    const c = h.client();
    const connack = await c.connect({ clientId: 'ska', keepalive: 600 });
    expect(connack.properties?.serverKeepAlive).toBe(120);
    expect(c.sink.keepAlive).toBe(120);
    // keep alive 0 (none) is not allowed either when the server has a maximum
    const z = h.client();
    const zc = await z.connect({ clientId: 'ska0', keepalive: 0 });
    expect(zc.properties?.serverKeepAlive).toBe(120);
    expect(z.sink.keepAlive).toBe(120);
    // within the maximum: no Server Keep Alive
    const ok = h.client();
    const okc = await ok.connect({ clientId: 'ska1', keepalive: 60 });
    expect(okc.properties?.serverKeepAlive).toBeUndefined();
    expect(ok.sink.keepAlive).toBe(60);
  });

  it('3.1.1 has no Server Keep Alive: the client value is kept', async () => {
    const h = harness({ options: { maxKeepAlive: 120 } });
    const c = await h.connect({ clientId: 'v4ka', protocolVersion: 4, keepalive: 600 });
    expect(c.sink.keepAlive).toBe(600);
  });

  it('v5: Maximum Packet Size from the client goes to the connection', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 'mps', properties: { maximumPacketSize: 512 } });
    expect(c.sink.maxOutgoingPacketSize).toBe(512);
  });

  it('v5: Receive Maximum 0 or Maximum Packet Size 0 is a protocol error (CONNACK 0x82)', async () => {
    const h = harness();
    const a = h.client();
    expect((await a.connect({ clientId: 'rm0', properties: { receiveMaximum: 0 } })).reasonCode).toBe(ReasonCode.ProtocolError);
    expect(a.closed).toBe(true);
    const b = h.client();
    expect((await b.connect({ clientId: 'mps0', properties: { maximumPacketSize: 0 } })).reasonCode).toBe(
      ReasonCode.ProtocolError,
    );
    expect(b.closed).toBe(true);
  });
});

describe('authentication', () => {
  it('the authenticator sees the client ID, credentials, version and connection', async () => {
    const seen: ClientInfo[] = [];
    const h = harness({
      authenticator: {
        authenticate: (info) => {
          seen.push(info);
          return { ok: true };
        },
      },
    });
    await h.connect({ clientId: 'who', username: 'u', password: Buffer.from('pw'), protocolVersion: 4 });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ clientId: 'who', username: 'u', protocolVersion: 4, transport: 'test', listener: 'test' });
    expect(seen[0]!.password?.toString()).toBe('pw');
  });

  it('[MQTT-3.2.2-7] v5: a refusal carries the authenticator reason code (0x86, 0x87, 0x8A) and closes', async () => {
    for (const code of [ReasonCode.BadUserNameOrPassword, ReasonCode.NotAuthorized, ReasonCode.Banned]) {
      const h = harness({ authenticator: { authenticate: () => ({ ok: false, reasonCode: code }) } });
      const c = h.client();
      const connack = await c.connect({ clientId: 'no' });
      expect(connack.reasonCode).toBe(code);
      expect(c.closed).toBe(true);
      expect(h.broker.registry.isConnected('no')).toBe(false);
    }
  });

  it('[MQTT-3.2.2-5] 3.1.1: refusals map to return codes 4 and 5 and close', async () => {
    const cases: [number | undefined, number][] = [
      [ReasonCode.BadUserNameOrPassword, ConnackReturnCode.BadUserNameOrPassword],
      [ReasonCode.NotAuthorized, ConnackReturnCode.NotAuthorized],
      [ReasonCode.Banned, ConnackReturnCode.NotAuthorized],
      [undefined, ConnackReturnCode.NotAuthorized],
    ];
    for (const [code, expected] of cases) {
      const result: AuthResult = code === undefined ? { ok: false } : { ok: false, reasonCode: code };
      const h = harness({ authenticator: { authenticate: () => result } });
      const c = h.client();
      const connack = await c.connect({ clientId: 'no', protocolVersion: 4 });
      expect(connack.returnCode).toBe(expected);
      expect(c.closed).toBe(true);
    }
  });

  it('an asynchronous authenticator is awaited; a connection closed meanwhile gets no CONNACK', async () => {
    let release!: (r: AuthResult) => void;
    const h = harness({ authenticator: { authenticate: () => new Promise<AuthResult>((r) => (release = r)) } });
    const c = h.client();
    const pending = c.send(connectPacket({ clientId: 'slow' }));
    await settle();
    expect(c.peek()).toEqual([]);
    c.channel.handleClosed('socket_error');
    release({ ok: true });
    await pending;
    expect(c.drain()).toEqual([]);
    expect(h.broker.registry.isConnected('slow')).toBe(false);
  });

  it('[MQTT-4.12.0-1] v5: an Authentication Method the server does not support gets CONNACK 0x8C and close', async () => {
    const h = harness();
    const c = h.client();
    const connack = await c.connect({ clientId: 'scram', properties: { authenticationMethod: 'SCRAM-SHA-1' } });
    expect(connack.reasonCode).toBe(ReasonCode.BadAuthenticationMethod);
    expect(connack.sessionPresent).toBe(false);
    expect(c.closed).toBe(true);
  });

  it('(4.12, 3.15) an AUTH packet when no enhanced authentication was started is a protocol error', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 'auth' });
    await c.send({ cmd: 'auth', reasonCode: ReasonCode.ReAuthenticate });
    expect(c.next('disconnect').reasonCode).toBe(ReasonCode.ProtocolError);
    expect(c.closed).toBe(true);
  });
});

/** A client subscribed to the will topics, to see which wills are published. */
async function watcher(h: ReturnType<typeof harness>, filter = 'will/#') {
  const w = await h.connect({ clientId: `watch-${filter}` });
  await w.subscribe({ topic: filter, qos: 2, rap: true });
  return w;
}

describe('will message', () => {
  it('[MQTT-3.2.2-12] v5: a Will QoS above the server Maximum QoS is refused with 0x9B', async () => {
    const h = harness({ options: { maximumQoS: 1 } });
    const c = h.client();
    const connack = await c.connect({ clientId: 'wq', will: { topic: 'will/x', payload: 'x', qos: 2 } });
    expect(connack.reasonCode).toBe(ReasonCode.QoSNotSupported);
    expect(c.closed).toBe(true);
  });

  it('[MQTT-3.2.2-13] v5: a Will Retain of 1 when retain is not available is refused with 0x9A', async () => {
    const h = harness({ options: { retainAvailable: false } });
    const c = h.client();
    const connack = await c.connect({ clientId: 'wr', will: { topic: 'will/x', payload: 'x', retain: true } });
    expect(connack.reasonCode).toBe(ReasonCode.RetainNotSupported);
    expect(c.closed).toBe(true);
  });

  it('a will topic with wildcards is refused (0x90 on v5)', async () => {
    const h = harness();
    const c = h.client();
    const connack = await c.connect({ clientId: 'ww', will: { topic: 'will/#', payload: 'x' } });
    expect(connack.reasonCode).toBe(ReasonCode.TopicNameInvalid);
    expect(c.closed).toBe(true);
  });

  it('[MQTT-3.1.2-8] the will is published when the connection is lost, with its QoS', async () => {
    const h = harness();
    const w = await watcher(h);
    const c = await h.connect({ clientId: 'dies', will: { topic: 'will/dies', payload: 'gone', qos: 1 } });
    await c.drop();
    const p = w.publishes();
    expect(payloads(p)).toEqual(['gone']);
    expect(p[0]).toMatchObject({ topic: 'will/dies', qos: 1, retain: false });
    // [MQTT-3.1.2-10] published once, then gone from the session
    await settle();
    expect(w.publishes()).toEqual([]);
  });

  it('[MQTT-3.1.2-14] a will with Will Retain 0 is not stored as retained', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 'nr', will: { topic: 'will/nr', payload: 'x', qos: 0, retain: false } });
    await c.drop();
    expect(await h.ports.retained.get('will/nr')).toBeNull();
  });

  it('[MQTT-3.1.2-15] a will with Will Retain 1 is published as retained', async () => {
    const h = harness();
    const c = await h.connect({ clientId: 'ret', will: { topic: 'will/ret', payload: 'offline', qos: 1, retain: true } });
    await c.drop();
    const stored = await h.ports.retained.get('will/ret');
    expect(stored?.payload.toString()).toBe('offline');
    expect(stored?.retain).toBe(true);
    // a later subscriber receives it as a retained message
    const late = await h.connect({ clientId: 'late' });
    await late.subscribe('will/ret');
    const [p] = late.publishes();
    expect(p).toMatchObject({ topic: 'will/ret', retain: true, qos: 1 });
  });

  it('v5: will properties travel with the will message', async () => {
    const h = harness();
    const w = await watcher(h);
    const c = await h.connect({
      clientId: 'wp',
      will: {
        topic: 'will/wp',
        payload: '{}',
        qos: 1,
        properties: {
          contentType: 'application/json',
          payloadFormatIndicator: true,
          responseTopic: 'reply/wp',
          correlationData: Buffer.from([1, 2, 3]),
          userProperties: { site: 'north' },
          messageExpiryInterval: 300,
        },
      },
    });
    await c.drop();
    const [p] = w.publishes();
    expect(p!.properties).toMatchObject({
      contentType: 'application/json',
      payloadFormatIndicator: true,
      responseTopic: 'reply/wp',
      correlationData: Buffer.from([1, 2, 3]),
      userProperties: { site: 'north' },
    });
    expect(p!.properties!.messageExpiryInterval).toBeGreaterThan(298);
    expect(p!.properties!.messageExpiryInterval).toBeLessThanOrEqual(300);
  });

  it('[MQTT-3.14.4-3] a normal DISCONNECT discards the will (v5 reason 0x00)', async () => {
    const h = harness();
    const w = await watcher(h);
    const c = await h.connect({ clientId: 'bye', will: { topic: 'will/bye', payload: 'x' } });
    await c.disconnect(ReasonCode.Success);
    expect(c.closed).toBe(true);
    expect(w.publishes()).toEqual([]);
  });

  it('[MQTT-3.14.4-3] 3.1.1: DISCONNECT discards the will', async () => {
    const h = harness();
    const w = await watcher(h);
    const c = await h.connect({ clientId: 'bye4', protocolVersion: 4, will: { topic: 'will/bye4', payload: 'x' } });
    await c.disconnect();
    expect(w.publishes()).toEqual([]);
    expect(h.broker.registry.isConnected('bye4')).toBe(false);
  });

  it('(3.14.2.1) v5: DISCONNECT 0x04 (disconnect with will message) publishes the will', async () => {
    const h = harness();
    const w = await watcher(h);
    const c = await h.connect({ clientId: 'bye04', will: { topic: 'will/bye04', payload: 'asked' } });
    await c.disconnect(ReasonCode.DisconnectWithWill);
    expect(payloads(w.publishes())).toEqual(['asked']);
  });

  it('[MQTT-3.1.2-8] a connection closed for a protocol error publishes the will', async () => {
    const h = harness();
    const w = await watcher(h);
    const c = await h.connect({ clientId: 'err', will: { topic: 'will/err', payload: 'broken' } });
    await c.send(connectPacket({ clientId: 'err' }));
    expect(c.next('disconnect').reasonCode).toBe(ReasonCode.ProtocolError);
    await settle();
    expect(payloads(w.publishes())).toEqual(['broken']);
  });

  it('[MQTT-3.1.2-8] (3.1.3.2.2) v5: a Will Delay Interval delays the will; it fires once the delay has passed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const h = harness();
    const w = await watcher(h);
    const c = await h.connect({
      clientId: 'delay',
      properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/delay', payload: 'late', properties: { willDelayInterval: 5 } },
    });
    await c.drop();
    expect(w.publishes()).toEqual([]);
    vi.advanceTimersByTime(4_900);
    await settle();
    expect(w.publishes()).toEqual([]);
    vi.advanceTimersByTime(200);
    await settle();
    expect(payloads(w.publishes())).toEqual(['late']);
  });

  it('[MQTT-3.1.3-9] v5: a reconnect before the Will Delay Interval has passed cancels the will', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const h = harness();
    const w = await watcher(h);
    const opts = {
      clientId: 'back',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/back', payload: 'late', properties: { willDelayInterval: 5 } },
    };
    const c = await h.connect(opts);
    await c.drop();
    vi.advanceTimersByTime(2_000);
    const again = await h.connect({ ...opts, will: undefined });
    expect(again.channel.state).toBe('connected');
    vi.advanceTimersByTime(10_000);
    await settle();
    expect(w.publishes()).toEqual([]);
  });

  it('(3.1.3.2.2) v5: a clean-start reconnect during the will delay ends the session, and the will is published', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const h = harness();
    const w = await watcher(h);
    const c = await h.connect({
      clientId: 'restart',
      properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/restart', payload: 'ended-by-clean-start', properties: { willDelayInterval: 30 } },
    });
    await c.drop();
    vi.advanceTimersByTime(1_000);
    await settle();
    expect(w.publishes()).toEqual([]);
    const again = await h.connect({ clientId: 'restart', clean: true });
    expect(again.channel.state).toBe('connected');
    await settle();
    expect(payloads(w.publishes())).toEqual(['ended-by-clean-start']);
    vi.advanceTimersByTime(60_000);
    await settle();
    expect(w.publishes()).toEqual([]);
  });

  it('(3.1.3.2.2) v5: the will is published when the session ends, if that is before the will delay', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const h = harness();
    const w = await watcher(h);
    const c = await h.connect({
      clientId: 'short',
      properties: { sessionExpiryInterval: 2 },
      will: { topic: 'will/short', payload: 'ended', properties: { willDelayInterval: 30 } },
    });
    await c.drop();
    vi.advanceTimersByTime(1_500);
    await settle();
    expect(w.publishes()).toEqual([]);
    vi.advanceTimersByTime(600);
    await settle();
    expect(payloads(w.publishes())).toEqual(['ended']);
    vi.advanceTimersByTime(60_000);
    await settle();
    expect(w.publishes()).toEqual([]);
  });
});

describe('takeover', () => {
  it('[MQTT-3.1.2-8] v5: taking over a session with expiry 0 finds no session, and the old will is published', async () => {
    const h = harness();
    const w = await watcher(h);
    const first = await h.connect({ clientId: 'brief', will: { topic: 'will/brief', payload: 'gone' } });
    await first.subscribe('brief/t', { qos: 1 });
    const second = h.client();
    const connack = await second.connect({ clientId: 'brief', clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(first.next('disconnect').reasonCode).toBe(ReasonCode.SessionTakenOver);
    // the old session ended with its connection: nothing to resume [MQTT-3.2.2-2]
    expect(connack.sessionPresent).toBe(false);
    await settle();
    expect(payloads(w.publishes())).toEqual(['gone']);
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('brief/t', 'hello', { qos: 1 });
    expect(second.publishes()).toEqual([]);
  });

  it('[MQTT-3.1.2-8] (3.1.1) taking over a clean-session connection with clean session 0 finds no session', async () => {
    const h = harness();
    const w = await watcher(h);
    await h.connect({ clientId: 'brief4', protocolVersion: 4, clean: true, will: { topic: 'will/brief4', payload: 'gone4' } });
    const second = h.client();
    const connack = await second.connect({ clientId: 'brief4', protocolVersion: 4, clean: false });
    expect(connack.sessionPresent).toBe(false);
    await settle();
    expect(payloads(w.publishes())).toEqual(['gone4']);
  });

  it('[MQTT-3.1.4-3] v5: a second connection with the same client ID closes the first with DISCONNECT 0x8E', async () => {
    const h = harness();
    const first = await h.connect({ clientId: 'dup' });
    const second = await h.connect({ clientId: 'dup' });
    expect(first.next('disconnect').reasonCode).toBe(ReasonCode.SessionTakenOver);
    expect(first.closed).toBe(true);
    expect(first.channel.state).toBe('disconnected');
    expect(second.channel.state).toBe('connected');
    expect(h.broker.registry.connectedCount).toBe(1);
    expect(h.broker.registry.stats.takeovers).toBe(1);
    await settle();
    // the first connection's close does not end the session the second one holds
    expect(h.broker.registry.isConnected('dup')).toBe(true);
  });

  it('[MQTT-3.1.4-2] (3.1.1) the existing client is disconnected without a packet', async () => {
    const h = harness();
    const first = await h.connect({ clientId: 'dup4', protocolVersion: 4 });
    await h.connect({ clientId: 'dup4', protocolVersion: 4 });
    expect(first.closed).toBe(true);
    expect(first.drain()).toEqual([]);
  });

  it('[MQTT-3.1.4-4] Clean Start 0: the new connection inherits the subscriptions and gets what is published', async () => {
    const h = harness();
    const first = await h.connect({ clientId: 'inh', properties: { sessionExpiryInterval: 60 } });
    await first.subscribe('inh/t', { qos: 1 });
    const second = h.client();
    const connack = await second.connect({ clientId: 'inh', clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(connack.sessionPresent).toBe(true);
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('inh/t', 'hello', { qos: 1 });
    expect(payloads(second.publishes())).toEqual(['hello']);
    expect(first.publishes()).toEqual([]);
  });

  it('[MQTT-4.4.0-1] Clean Start 0: what the first connection left unacknowledged is resent with DUP', async () => {
    const h = harness();
    const opts = { clientId: 'inf', clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await h.connect(opts);
    await first.subscribe('inf/t', { qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('inf/t', 'unacked', { qos: 1 });
    const [sent] = first.publishes();
    const second = await h.connect(opts);
    expect(first.next('disconnect').reasonCode).toBe(ReasonCode.SessionTakenOver);
    const [resent] = second.publishes();
    expect(resent).toMatchObject({ dup: true, messageId: sent!.messageId, topic: 'inf/t' });
    await second.send({ cmd: 'puback', messageId: sent!.messageId! });
    expect(second.channel.session!.inflight.size).toBe(0);
    // a PUBACK reaching the old channel late is not processed
    await first.send({ cmd: 'puback', messageId: sent!.messageId! });
    expect(first.drain()).toEqual([]);
  });

  it('[MQTT-3.1.4-2, MQTT-4.4.0-1] (3.1.1) a takeover with clean session 0 resends what was unacknowledged', async () => {
    const h = harness();
    const opts = { clientId: 'inf4', protocolVersion: 4 as const, clean: false };
    const first = await h.connect(opts);
    await first.subscribe('inf/t', { qos: 1 });
    const pub = await h.connect({ clientId: 'pub' });
    for (const m of ['a', 'b', 'c']) await pub.publish('inf/t', m, { qos: 1 });
    const sent = first.publishes();
    const second = await h.connect(opts);
    expect(first.closed).toBe(true);
    const resent = second.publishes();
    expect(resent.map((p) => [Buffer.from(p.payload).toString(), p.dup, p.messageId])).toEqual(
      sent.map((p) => [Buffer.from(p.payload).toString(), true, p.messageId]),
    );
  });

  it('Clean Start 1: the old session is discarded (its subscriptions are gone)', async () => {
    const h = harness();
    const first = await h.connect({ clientId: 'disc', properties: { sessionExpiryInterval: 60 } });
    await first.subscribe('disc/t');
    const second = h.client();
    const connack = await second.connect({ clientId: 'disc', clean: true });
    expect(connack.sessionPresent).toBe(false);
    const pub = await h.connect({ clientId: 'pub' });
    await pub.publish('disc/t', 'hello', { qos: 1 });
    expect(second.publishes()).toEqual([]);
    expect(h.broker.router.busSubscriptionCount).toBe(0);
  });
});

describe('leftovers of an expired session', () => {
  it('a client with no stored session does not inherit an offline queue an expired session left behind', async () => {
    const h = harness();
    await h.ports.offlineQueue.append('ghost', [
      { id: 'old-1', topic: 'g/t', payload: Buffer.from('stale'), qos: 1, retain: false, createdAt: Date.now() },
    ]);
    const c = h.client();
    const connack = await c.connect({ clientId: 'ghost', clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(connack.sessionPresent).toBe(false);
    await c.subscribe({ topic: 'g/#', qos: 1 });
    await c.drop();
    const back = h.client();
    expect((await back.connect({ clientId: 'ghost', clean: false, properties: { sessionExpiryInterval: 60 } })).sessionPresent).toBe(true);
    await settle();
    expect(back.publishes()).toEqual([]);
    expect(await h.ports.offlineQueue.length('ghost')).toBe(0);
  });
});
