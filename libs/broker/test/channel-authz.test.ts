/**
 * Authentication results, topic authorization and per-client policy limits in the channel,
 * each on MQTT 3.1.1 and 5.0. The ACL is @fleetmq/auth's Mosquitto acl_file evaluator, the
 * one the edge node wires.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConnackReturnCode, ReasonCode, type ProtocolVersion } from '@fleetmq/protocol';
import { Acl, CertificateProvider, createAuthChain } from '@fleetmq/auth';
import { Broker } from '../src/broker.js';
import type { Authenticator, Authorizer, AuthzAction, ClientInfo, ClientIdentity } from '../src/auth.js';
import type { ConnectionInfo } from '../src/channel.js';
import { payloads, settle, useHarness, type Harness, type HarnessOptions, type TestClient } from './support/harness.js';

const harness = useHarness();

afterEach(() => {
  vi.useRealTimers();
});

const ACL = `
user alice
topic readwrite alice/#
topic deny alice/secret
topic read public/#
topic write $SYS/#
pattern readwrite devices/%c/#

user watcher
topic read #
topic read $SYS/#

user admin
topic readwrite #
`;

/** Every client is who its CONNECT username says (the ACL is what is tested here). */
const asUsername: Authenticator = {
  authenticate: (c) => ({ ok: true, identity: { provider: 'test', username: c.username, groups: [] } }),
};

function withAcl(h: (o?: HarnessOptions) => Harness, o: HarnessOptions = {}, text = ACL): Harness {
  return h({ authenticator: asUsername, authorizer: Acl.parse(text), ...o });
}

const code = (p: { reasonCode?: number | undefined }): number => p.reasonCode ?? 0;

/** A v5 client that receives everything but `$` topics, to see what was routed. */
async function watcher(h: Harness, filters: string[] = ['#']): Promise<TestClient> {
  const w = await h.connect({ clientId: 'watcher', username: 'watcher' });
  const ack = await w.subscribe(filters.map((topic) => ({ topic, qos: 2 as const })));
  expect(ack.granted).toEqual(filters.map(() => 2));
  return w;
}

const versions: [ProtocolVersion, string][] = [
  [4, '3.1.1'],
  [5, '5.0'],
];

describe.each(versions)('PUBLISH authorization, MQTT %s', (version, _name) => {
  const v5 = version === 5;

  it(`QoS 1 to a denied topic: ${v5 ? 'PUBACK 0x87' : 'PUBACK (acknowledged and dropped, as Mosquitto)'}; not routed; the connection stays`, async () => {
    const h = withAcl(harness);
    const w = await watcher(h);
    const alice = await h.connect({ clientId: 'a1', username: 'alice', protocolVersion: version });
    await alice.publish('bob/inbox', 'denied', { qos: 1, messageId: 11 });
    const ack = alice.next('puback');
    expect(ack.messageId).toBe(11);
    expect(code(ack)).toBe(v5 ? ReasonCode.NotAuthorized : 0);
    if (v5) expect(ack.properties?.reasonString).toBe('not authorized');
    await alice.publish('alice/status', 'allowed', { qos: 1, messageId: 12 });
    expect(code(alice.next('puback'))).toBe(0);
    await settle();
    expect(payloads(w.publishes())).toEqual(['allowed']);
    expect(alice.closed).toBe(false);
    expect(h.broker.stats.authz.publishDenied).toBe(1);
  });

  it(`QoS 2 to a denied topic: ${v5 ? 'PUBREC 0x87 ends the exchange' : 'PUBREC, then PUBREL/PUBCOMP as usual'}; not routed`, async () => {
    const h = withAcl(harness);
    const w = await watcher(h);
    const alice = await h.connect({ clientId: 'a1', username: 'alice', protocolVersion: version });
    await alice.publish('alice/secret', 'denied', { qos: 2, messageId: 21 });
    const rec = alice.next('pubrec');
    expect(rec.messageId).toBe(21);
    expect(code(rec)).toBe(v5 ? ReasonCode.NotAuthorized : 0);
    await alice.send({ cmd: 'pubrel', messageId: 21 });
    // 5.0: the refused exchange ended at PUBREC (4.3.3), so the identifier is unknown
    expect(code(alice.next('pubcomp'))).toBe(v5 ? ReasonCode.PacketIdentifierNotFound : 0);
    expect(alice.channel.session!.awaitingRel.size).toBe(0);
    await settle();
    expect(w.publishes()).toEqual([]);
    expect(h.broker.stats.authz.publishDenied).toBe(1);
  });

  it('QoS 0 to a denied topic is dropped without an answer and counted', async () => {
    const h = withAcl(harness);
    const w = await watcher(h);
    const alice = await h.connect({ clientId: 'a1', username: 'alice', protocolVersion: version });
    await alice.publish('public/news', 'read-only for alice');
    await alice.publish('devices/a1/temp', 'own device (pattern %c)');
    await settle();
    expect(alice.drain()).toEqual([]);
    expect(payloads(w.publishes())).toEqual(['own device (pattern %c)']);
    expect(h.broker.stats.authz.publishDenied).toBe(1);
  });

  it.each([
    ['$SYS/x', 'allow-all'],
    ['$SYS/broker/connection/a1/state', 'allow-all'],
    ['$share/g/t', 'allow-all'],
    ['$SYS/x', 'an ACL granting write on $SYS/#'],
  ])('%s is reserved whatever the authorizer says (%s)', async (topic, setup) => {
    const h = setup === 'allow-all' ? harness() : withAcl(harness);
    const sys = await h.connect({ clientId: 'sys', username: 'watcher' });
    await sys.subscribe([{ topic: '$SYS/#', qos: 1 }]);
    const alice = await h.connect({ clientId: 'a1', username: 'alice', protocolVersion: version });
    await alice.publish(topic, 'forged', { qos: 1, messageId: 5 });
    expect(code(alice.next('puback'))).toBe(v5 ? ReasonCode.NotAuthorized : 0);
    await alice.publish(topic, 'forged too', { qos: 0 });
    await settle();
    expect(sys.publishes()).toEqual([]);
    expect(h.broker.stats.authz.publishDenied).toBe(2);
  });
});

describe.each(versions)('SUBSCRIBE authorization, MQTT %s', (version) => {
  const v5 = version === 5;
  const denied = v5 ? ReasonCode.NotAuthorized : 0x80;

  it(`a filter no read rule covers gets ${v5 ? '0x87' : '0x80'}; the others are granted; nothing is stored for it`, async () => {
    const h = withAcl(harness);
    const alice = await h.connect({ clientId: 'a1', username: 'alice', protocolVersion: version });
    const ack = await alice.subscribe([
      { topic: 'alice/#', qos: 1 },
      { topic: 'bob/#', qos: 1 },
      { topic: 'public/+', qos: 0 },
      { topic: '#', qos: 0 },
      { topic: 'alice/secret', qos: 1 },
    ]);
    expect(ack.granted).toEqual([1, denied, 0, denied, denied]);
    expect([...alice.channel.session!.subscriptions.keys()].sort()).toEqual(['alice/#', 'public/+']);
    expect(h.broker.stats.authz.subscribeDenied).toBe(3);
    const admin = await h.connect({ clientId: 'adm', username: 'admin' });
    await admin.publish('bob/x', 'not for alice', { qos: 1 });
    await admin.publish('public/x', 'for everyone', { qos: 1 });
    await settle();
    expect(payloads(alice.publishes())).toEqual(['for everyone']);
  });

  it('a shared subscription is checked on its filter', async () => {
    const h = withAcl(harness);
    const alice = await h.connect({ clientId: 'a1', username: 'alice', protocolVersion: version });
    const ack = await alice.subscribe([
      { topic: '$share/g/alice/#', qos: 1 },
      { topic: '$share/g/bob/#', qos: 1 },
    ]);
    expect(ack.granted).toEqual([1, denied]);
  });

  it('$SYS is readable only by whom the rules allow', async () => {
    const h = withAcl(harness);
    const alice = await h.connect({ clientId: 'a1', username: 'alice', protocolVersion: version });
    const w = await h.connect({ clientId: 'w', username: 'watcher', protocolVersion: version });
    expect((await alice.subscribe({ topic: '$SYS/#', qos: 0 })).granted).toEqual([denied]);
    expect((await w.subscribe({ topic: '$SYS/#', qos: 0 })).granted).toEqual([0]);
  });
});

describe.each(versions)('delivery authorization, MQTT %s', (version) => {
  it('a message the subscription matches but a deny rule covers is not delivered, and counted', async () => {
    const h = withAcl(harness);
    const alice = await h.connect({ clientId: 'a1', username: 'alice', protocolVersion: version });
    expect((await alice.subscribe({ topic: 'alice/#', qos: 1 })).granted).toEqual([1]);
    const admin = await h.connect({ clientId: 'adm', username: 'admin' });
    await admin.publish('alice/secret', 'hidden', { qos: 1 });
    await admin.publish('alice/x', 'shown', { qos: 0 });
    await admin.publish('alice/secret', 'hidden too', { qos: 0 });
    await settle();
    expect(payloads(alice.publishes())).toEqual(['shown']);
    expect(h.broker.stats.authz.readDenied).toBe(2);
  });

  it('retained messages the client may not read are not sent for a new subscription', async () => {
    const h = withAcl(harness);
    const admin = await h.connect({ clientId: 'adm', username: 'admin' });
    await admin.publish('alice/secret', 'hidden', { qos: 1, retain: true });
    await admin.publish('alice/y', 'kept', { qos: 1, retain: true });
    const alice = await h.connect({ clientId: 'a1', username: 'alice', protocolVersion: version });
    await alice.subscribe({ topic: 'alice/#', qos: 1 });
    await settle();
    const got = alice.publishes();
    expect(payloads(got)).toEqual(['kept']);
    expect(got[0]!.retain).toBe(true);
    expect(h.broker.stats.authz.readDenied).toBe(1);
  });

  it("with Mosquitto's subscribe mode a wide filter is granted and only readable topics arrive", async () => {
    const h = harness({ authenticator: asUsername, authorizer: Acl.parse(ACL, { subscribe: 'mosquitto' }) });
    const alice = await h.connect({ clientId: 'a1', username: 'alice', protocolVersion: version });
    expect((await alice.subscribe({ topic: '#', qos: 0 })).granted).toEqual([0]);
    const admin = await h.connect({ clientId: 'adm', username: 'admin' });
    for (const t of ['bob/x', 'alice/x', 'public/x', 'alice/secret', 'devices/a1/cmd', 'devices/a2/cmd']) await admin.publish(t, t);
    await settle();
    expect(payloads(alice.publishes())).toEqual(['alice/x', 'public/x', 'devices/a1/cmd']);
    expect(h.broker.stats.authz.readDenied).toBe(3);
  });

  it('messages queued while the client was away are checked when they go out', async () => {
    const h = withAcl(harness);
    const persistent = version === 5 ? { properties: { sessionExpiryInterval: 600 } } : { clean: false };
    const alice = await h.connect({ clientId: 'a1', username: 'alice', protocolVersion: version, ...persistent });
    await alice.subscribe({ topic: 'alice/#', qos: 1 });
    await alice.drop();
    const admin = await h.connect({ clientId: 'adm', username: 'admin' });
    await admin.publish('alice/secret', 'queued, hidden', { qos: 1 });
    await admin.publish('alice/z', 'queued, shown', { qos: 1 });
    await settle();
    const back = h.client();
    const connack = await back.connect({ clientId: 'a1', username: 'alice', protocolVersion: version, ...persistent, clean: false });
    expect(connack.sessionPresent).toBe(true);
    await settle();
    expect(payloads(back.publishes())).toEqual(['queued, shown']);
    expect(h.broker.stats.authz.readDenied).toBe(1);
  });

  it('a session resumed by a client that may not read its unacknowledged messages does not get them', async () => {
    const h = withAcl(harness);
    const persistent = version === 5 ? { properties: { sessionExpiryInterval: 600 } } : { clean: false };
    const alice = await h.connect({ clientId: 'shared-id', username: 'alice', protocolVersion: version, ...persistent });
    await alice.subscribe({ topic: 'alice/#', qos: 1 });
    const admin = await h.connect({ clientId: 'adm', username: 'admin' });
    await admin.publish('alice/q', 'unacknowledged', { qos: 1 });
    await settle();
    expect(payloads(alice.publishes())).toEqual(['unacknowledged']); // and never acknowledged
    await alice.drop();
    const other = h.client();
    await other.connect({ clientId: 'shared-id', username: 'nobody', protocolVersion: version, ...persistent, clean: false });
    await settle();
    expect(other.publishes()).toEqual([]);
    expect(other.channel.session!.inflight.size).toBe(0);
  });
});

describe.each(versions)('wills, MQTT %s', (version) => {
  const v5 = version === 5;

  it('a will to a denied topic: the client is let in (as Mosquitto) and the will is never published', async () => {
    const h = withAcl(harness);
    const w = await watcher(h);
    const c = h.client();
    const connack = await c.connect({ clientId: 'a1', username: 'alice', protocolVersion: version, will: { topic: 'bob/lwt', payload: Buffer.from('gone'), qos: 1, retain: false } });
    expect(connack.reasonCode ?? connack.returnCode).toBe(0);
    if (v5) expect(connack.properties?.reasonString).toBe('will topic not authorized: the will will not be published');
    expect(c.channel.session!.will).toBeUndefined();
    await c.drop();
    expect(w.publishes()).toEqual([]);
    expect(h.broker.stats.authz.willDenied).toBe(1);
  });

  it('a will to an allowed topic is published when the connection is lost', async () => {
    const h = withAcl(harness);
    const w = await watcher(h);
    const c = h.client();
    const connack = await c.connect({ clientId: 'a1', username: 'alice', protocolVersion: version, will: { topic: 'alice/lwt', payload: Buffer.from('gone'), qos: 1, retain: false } });
    expect(connack.properties?.reasonString).toBeUndefined();
    await c.drop();
    expect(payloads(w.publishes())).toEqual(['gone']);
    expect(h.broker.stats.authz.willDenied).toBe(0);
  });

  it('a will to $SYS is dropped with no ACL configured', async () => {
    const h = harness();
    const sys = await h.connect({ clientId: 'sys' });
    await sys.subscribe({ topic: '$SYS/#', qos: 1 });
    const c = h.client();
    expect((await c.connect({ clientId: 'a1', protocolVersion: version, will: { topic: '$SYS/fake', payload: Buffer.from('x'), qos: 0, retain: false } })).sessionPresent).toBe(false);
    await c.drop();
    expect(sys.publishes()).toEqual([]);
    expect(h.broker.stats.authz.willDenied).toBe(1);
  });
});

describe('the authorizer hook', () => {
  /** An authorizer that records what it was asked. */
  function recording(): { authorizer: Authorizer; built: { identity: ClientIdentity | undefined; clientId: string; info: ConnectionInfo }[]; checks: [AuthzAction, string][] } {
    const built: { identity: ClientIdentity | undefined; clientId: string; info: ConnectionInfo }[] = [];
    const checks: [AuthzAction, string][] = [];
    return {
      built,
      checks,
      authorizer: {
        forClient(identity, clientId, info) {
          built.push({ identity, clientId, info });
          return {
            check(action, topic) {
              checks.push([action, topic]);
              return !topic.startsWith('no/');
            },
          };
        },
      },
    };
  }

  it('is built once per connection with the identity authentication gave, and its answers are cached per topic', async () => {
    const r = recording();
    const h = harness({ authenticator: asUsername, authorizer: r.authorizer });
    const c = await h.connect({ clientId: 'c1', username: 'u1' });
    await c.subscribe({ topic: 'yes/#', qos: 0 });
    for (let i = 0; i < 5; i++) await c.publish('yes/a', String(i));
    for (let i = 0; i < 3; i++) await c.publish('no/a', String(i), { qos: 1 });
    await settle();
    expect(payloads(c.publishes())).toEqual(['0', '1', '2', '3', '4']);
    expect(r.built).toHaveLength(1);
    expect(r.built[0]).toMatchObject({ identity: { provider: 'test', username: 'u1', groups: [] }, clientId: 'c1', info: { listener: 'test' } });
    expect(r.checks).toEqual([
      ['subscribe', 'yes/#'],
      ['publish', 'yes/a'],
      ['read', 'yes/a'],
      ['publish', 'no/a'],
    ]);
    expect(h.broker.stats.authz.publishDenied).toBe(3);
  });

  it('the cache is bounded: many distinct topics keep being answered right', async () => {
    const r = recording();
    const h = harness({ authorizer: r.authorizer });
    const c = await h.connect({ clientId: 'c1' });
    for (let i = 0; i < 200; i++) await c.publish(`no/${i}`, 'x', { qos: 1 });
    for (let i = 0; i < 200; i++) await c.publish(`no/${i}`, 'x', { qos: 1 });
    const acks = c.drain().filter((p) => p.cmd === 'puback');
    expect(acks).toHaveLength(400);
    expect(acks.every((p) => code(p) === ReasonCode.NotAuthorized)).toBe(true);
    // nothing cached survives 200 newer topics: every second-round topic was asked again
    expect(r.checks.filter(([a]) => a === 'publish')).toHaveLength(400);
  });
});

describe('authentication results', () => {
  it.each(versions)('MQTT %s: refusals are counted, the reason word is not sent to the client', async (version) => {
    const h = harness({ authenticator: { authenticate: () => ({ ok: false, reasonCode: ReasonCode.BadUserNameOrPassword, reason: 'bad_password' }) } });
    const c = h.client();
    const connack = await c.connect({ clientId: 'x', username: 'u', password: Buffer.from('p'), protocolVersion: version });
    if (version === 5) {
      expect(connack.reasonCode).toBe(ReasonCode.BadUserNameOrPassword);
      expect(connack.properties?.reasonString).toBe('not authorized');
    } else {
      expect(connack.returnCode).toBe(ConnackReturnCode.BadUserNameOrPassword);
    }
    expect(c.closed).toBe(true);
    expect(h.broker.stats.auth).toEqual({ accepted: 0, refused: 1, expired: 0 });
  });
});

describe.each(versions)('username from the client certificate, MQTT %s', (version) => {
  const certificate = (subject: Record<string, string>) => ({
    clientCertificate: { subject, issuer: { CN: 'Fleet CA' }, serialNumber: '0A', fingerprint256: 'AA:BB' },
  });

  it('the CN replaces the CONNECT username before authentication, and the ACL sees it', async () => {
    const seen: ClientInfo[] = [];
    const h = harness({
      authenticator: { authenticate: (c) => (seen.push(c), asUsername.authenticate(c)) },
      authorizer: Acl.parse(ACL),
      usernameFromCertificate: 'CN',
    });
    const c = h.client(certificate({ CN: 'alice', O: 'Fleet' }));
    await c.connect({ clientId: 'a1', username: 'admin', protocolVersion: version });
    expect(seen[0]).toMatchObject({ username: 'alice', usernameFromCertificate: true, clientCertificate: { subject: { CN: 'alice' } } });
    expect((await c.subscribe({ topic: '#', qos: 0 })).granted).toEqual([version === 5 ? ReasonCode.NotAuthorized : 0x80]);
  });

  it('another subject attribute can be configured', async () => {
    const seen: ClientInfo[] = [];
    const h = harness({ authenticator: { authenticate: (c) => (seen.push(c), { ok: true }) }, usernameFromCertificate: 'serialNumber' });
    await h.client(certificate({ CN: 'x', serialNumber: 'SN-42' })).connect({ clientId: 'a1', protocolVersion: version });
    expect(seen[0]!.username).toBe('SN-42');
  });

  it(`a certificate without the attribute is refused: ${version === 5 ? 'CONNACK 0x87' : 'return code 5'}`, async () => {
    const h = harness({ usernameFromCertificate: 'CN' });
    const c = h.client(certificate({ O: 'Fleet' }));
    const connack = await c.connect({ clientId: 'a1', username: 'alice', protocolVersion: version });
    expect(connack.reasonCode ?? connack.returnCode).toBe(version === 5 ? ReasonCode.NotAuthorized : ConnackReturnCode.NotAuthorized);
    expect(h.broker.stats.auth.refused).toBe(1);
  });

  it('a connection without a certificate keeps its CONNECT username', async () => {
    const seen: ClientInfo[] = [];
    const h = harness({ authenticator: { authenticate: (c) => (seen.push(c), { ok: true }) }, usernameFromCertificate: 'CN' });
    await h.connect({ clientId: 'a1', username: 'plain', protocolVersion: version });
    expect(seen[0]!.username).toBe('plain');
    expect(seen[0]!.usernameFromCertificate).toBeUndefined();
  });

  it('with the certificate provider the certificate alone lets the client in; anonymous access stays off', async () => {
    const chain = createAuthChain([new CertificateProvider()], { allowAnonymous: false, throttle: false });
    const h = harness({ authenticator: chain, usernameFromCertificate: 'CN' });
    const withCert = h.client(certificate({ CN: 'sensor-7' }));
    expect((await withCert.connect({ clientId: 's7', protocolVersion: version })).sessionPresent).toBe(false);
    expect(withCert.channel.identity).toEqual({ provider: 'certificate', username: 'sensor-7', groups: [] });
    const without = h.client();
    const refused = await without.connect({ clientId: 'anon', protocolVersion: version });
    expect(refused.reasonCode ?? refused.returnCode).toBe(version === 5 ? ReasonCode.NotAuthorized : ConnackReturnCode.NotAuthorized);
  });
});

describe.each(versions)('policy limits, MQTT %s', (version) => {
  const v5 = version === 5;

  it(`publish rate: over the bucket the connection is closed${v5 ? ' with DISCONNECT 0x96' : ''}; it refills with time`, async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const h = harness({ limits: { publishRate: { perSecond: 2, burst: 3 } } });
    const other = await h.connect({ clientId: 'other', protocolVersion: version });
    const c = await h.connect({ clientId: 'fast', protocolVersion: version });
    for (let i = 0; i < 3; i++) await c.publish('t', String(i), { qos: 1 });
    vi.advanceTimersByTime(500); // one token back
    await c.publish('t', '3', { qos: 1 });
    expect(c.drain().filter((p) => p.cmd === 'puback')).toHaveLength(4);
    expect(c.closed).toBe(false);
    await c.publish('t', 'too fast', { qos: 1 });
    if (v5) {
      expect(c.next('disconnect').reasonCode).toBe(ReasonCode.MessageRateTooHigh);
    } else {
      expect(c.drain()).toEqual([]);
    }
    expect(c.closed).toBe(true);
    expect(h.broker.stats.limits.publishRate).toBe(1);
    // the bucket is per client
    await other.publish('t', 'x', { qos: 1 });
    expect(code(other.next('puback'))).toBe(0);
  });

  it('retain stripped: the message is routed without the flag and not stored', async () => {
    const h = harness({ limits: { retain: 'stripped' } });
    const live = await h.connect({ clientId: 'live' });
    await live.subscribe({ topic: 'r/#', qos: 1, rap: true });
    const c = await h.connect({ clientId: 'p', protocolVersion: version });
    await c.publish('r/1', 'was retained', { qos: 1, retain: true });
    expect(code(c.next('puback'))).toBe(0);
    await settle();
    const [got] = live.publishes();
    expect(got).toMatchObject({ topic: 'r/1', retain: false });
    const late = await h.connect({ clientId: 'late' });
    await late.subscribe({ topic: 'r/#', qos: 1 });
    await settle();
    expect(late.publishes()).toEqual([]);
    expect(h.broker.stats.limits.retain).toBe(1);
  });

  it('retain stripped applies to wills too', async () => {
    const h = harness({ limits: { retain: 'stripped' } });
    const c = h.client();
    await c.connect({ clientId: 'w', protocolVersion: version, will: { topic: 'lwt/w', payload: Buffer.from('bye'), qos: 1, retain: true } });
    expect(c.channel.session!.will?.retain).toBe(false);
    await c.drop();
    const late = await h.connect({ clientId: 'late' });
    await late.subscribe({ topic: 'lwt/#', qos: 1 });
    await settle();
    expect(late.publishes()).toEqual([]);
    expect(h.broker.stats.limits.retain).toBe(1);
  });

  it(`payload size: one byte over is refused (${v5 ? 'PUBACK/PUBREC 0x97' : 'acknowledged and dropped'}), QoS 0 dropped, the limit itself passes`, async () => {
    const h = harness({ limits: { maxPayloadSize: 10 } });
    const sub = await h.connect({ clientId: 'sub' });
    await sub.subscribe({ topic: 't', qos: 2 });
    const c = await h.connect({ clientId: 'p', protocolVersion: version });
    await c.publish('t', '0123456789', { qos: 1, messageId: 1 });
    expect(code(c.next('puback'))).toBe(0);
    await c.publish('t', '0123456789A', { qos: 1, messageId: 2 });
    const ack = c.next('puback');
    expect(code(ack)).toBe(v5 ? ReasonCode.QuotaExceeded : 0);
    if (v5) expect(ack.properties?.reasonString).toBe('payload too large');
    await c.publish('t', '0123456789B', { qos: 2, messageId: 3 });
    expect(code(c.next('pubrec'))).toBe(v5 ? ReasonCode.QuotaExceeded : 0);
    await c.publish('t', '0123456789C', { qos: 0 });
    await settle();
    expect(payloads(sub.publishes())).toEqual(['0123456789']);
    expect(c.closed).toBe(false);
    expect(h.broker.stats.limits.payloadSize).toBe(3);
  });

  it(`a will over the payload size refuses the CONNECT: ${v5 ? 'CONNACK 0x95' : 'return code 5'}, as Mosquitto`, async () => {
    const h = harness({ limits: { maxPayloadSize: 4 } });
    const c = h.client();
    const connack = await c.connect({ clientId: 'w', protocolVersion: version, will: { topic: 'lwt', payload: Buffer.from('12345'), qos: 0, retain: false } });
    expect(connack.reasonCode ?? connack.returnCode).toBe(v5 ? ReasonCode.PacketTooLarge : ConnackReturnCode.NotAuthorized);
    expect(c.closed).toBe(true);
    expect(h.broker.stats.limits.payloadSize).toBe(1);
  });

  it('maximum QoS: a QoS 2 PUBLISH closes the connection, a QoS 2 subscription is granted QoS 1; both counted', async () => {
    const h = harness({ options: { maximumQoS: 1 } });
    const c = await h.connect({ clientId: 'q', protocolVersion: version });
    expect((await c.subscribe({ topic: 't', qos: 2 })).granted).toEqual([1]);
    await c.publish('t', 'x', { qos: 2 });
    if (v5) expect(c.next('disconnect').reasonCode).toBe(ReasonCode.QoSNotSupported);
    expect(c.closed).toBe(true);
    expect(h.broker.stats.limits.maxQoS).toBe(2);
  });
});

describe('Broker limit settings', () => {
  it('refuses an unusable publish rate or payload size when it is built', async () => {
    const h = harness();
    const config = { nodeId: 'x', ports: h.ports };
    expect(() => new Broker({ ...config, limits: { publishRate: { perSecond: 0, burst: 1 } } })).toThrow(RangeError);
    expect(() => new Broker({ ...config, limits: { publishRate: { perSecond: 1, burst: 0 } } })).toThrow(RangeError);
    expect(() => new Broker({ ...config, limits: { maxPayloadSize: -1 } })).toThrow(RangeError);
    expect(() => new Broker({ ...config, limits: { maxPayloadSize: 0, publishRate: { perSecond: 0.5, burst: 1 } } })).not.toThrow();
  });
});
