/**
 * The password file and the acl_file reloaded while the node runs: on a change to the files
 * (watched) and on demand (what SIGHUP calls), with clients staying connected. New passwords
 * apply to new CONNECTs; new ACL rules to the next PUBLISH, SUBSCRIBE or delivery; a bad file
 * leaves the rules in force.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startNode, type RunningNode } from '../src/main.js';
import { Inbox, connectMqtt, createMqtt, endMqttClients, mosquittoPasswdFile, once, quietPeriod, subackCodes, waitUntil } from '../../../test/support/clients.js';

const ACL_V1 = `user alice
topic readwrite fleet/alice/#
topic read fleet/shared/#

user bob
topic readwrite fleet/#
`;

/** alice loses fleet/alice/secret and gains fleet/shared/# for writing; carol appears. */
const ACL_V2 = `user alice
topic readwrite fleet/alice/#
topic deny fleet/alice/secret
topic readwrite fleet/shared/#

user bob
topic readwrite fleet/#

user carol
topic readwrite fleet/carol/#
`;

interface LogLine {
  msg: string;
  [key: string]: unknown;
}

describe('auth files reloaded while clients stay connected', () => {
  let dir: string;
  let passwd: string;
  let acl: string;
  let node: RunningNode;
  let url: string;
  const logs: LogLine[] = [];

  /** Replaces a file the way editors and config management do: a new file renamed over it. */
  function replaceFile(file: string, text: string): void {
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  }

  const passwdWith = (users: [string, string][]) => mosquittoPasswdFile(path.join(dir, `passwd-${Math.random().toString(36).slice(2)}`), users);

  const reloads = () => node.authReloads.reloads;
  const failures = () => node.authReloads.reloadFailures;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'fleetmq-reload-'));
    passwd = path.join(dir, 'passwd');
    renameSync(passwdWith([['alice', 'alice-pw'], ['bob', 'bob-pw']]), passwd);
    acl = path.join(dir, 'acl');
    writeFileSync(acl, ACL_V1);
    const config = parseConfig({
      nodeId: 'reload-node',
      log: { level: 'info' },
      ops: { port: 0 },
      listeners: [{ type: 'tcp', name: 'tcp', host: '127.0.0.1', port: 0 }],
      auth: { passwordFile: passwd, aclFile: acl, failureThrottle: false },
    });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as LogLine);
        done();
      },
    });
    node = await startNode(config, createLogger('info', sink));
    url = `mqtt://127.0.0.1:${node.addresses()[0]!.port}`;
  });

  afterEach(async () => {
    await endMqttClients();
  });

  afterAll(async () => {
    await node?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function connackCode(username: string, password: string, protocolVersion: 4 | 5 = 5): Promise<number> {
    const c = createMqtt(url, { protocolVersion, clientId: `${username}-${Math.random().toString(36).slice(2)}`, username, password });
    const result = await Promise.race([
      once(c, 'connect').then(() => 0),
      once<[Error & { code?: number }]>(c, 'error').then(([err]) => err.code ?? -1),
    ]);
    c.end(true);
    return result;
  }

  it('a changed password file is read without a restart: new passwords for new CONNECTs, connected clients stay', async () => {
    const alice = await connectMqtt(url, { protocolVersion: 5, clientId: 'alice-stays', username: 'alice', password: 'alice-pw' });
    expect(await connackCode('carol', 'carol-pw')).toBe(0x86);
    const before = reloads();
    replaceFile(passwd, readText(passwdWith([['alice', 'alice-new'], ['bob', 'bob-pw'], ['carol', 'carol-pw']])));
    await waitUntil(() => reloads() > before, 5000, 'the password file reloaded');
    expect(logs.find((l) => l.msg === 'auth_reloaded' && l.key === 'auth.passwordFile')).toMatchObject({ file: passwd, users: 3 });
    expect(await connackCode('carol', 'carol-pw')).toBe(0);
    expect(await connackCode('carol', 'carol-pw', 4)).toBe(0);
    expect(await connackCode('alice', 'alice-pw')).toBe(0x86);
    expect(await connackCode('alice', 'alice-pw', 4)).toBe(4);
    expect(await connackCode('alice', 'alice-new')).toBe(0);
    // the client that logged in with the old password is still there and works
    expect(alice.connected).toBe(true);
    await alice.publishAsync('fleet/alice/still-here', 'yes', { qos: 1 });
  });

  it.each([5, 4] as const)('MQTT %s: a changed acl_file applies to the next PUBLISH and SUBSCRIBE of a connected client', async (version) => {
    writeFileSync(acl, ACL_V1);
    await node.reloadAuth();
    const bob = await connectMqtt(url, { protocolVersion: 5, clientId: `bob-${version}`, username: 'bob', password: 'bob-pw' });
    const inbox = new Inbox(bob);
    await bob.subscribeAsync('fleet/#', { qos: 1 });
    const alice = await connectMqtt(url, { protocolVersion: version, clientId: `alice-${version}`, username: 'alice', password: 'alice-new' });
    await alice.publishAsync('fleet/alice/secret', 'v1', { qos: 1 });
    await inbox.wait(1, 3000, (m) => m.payload === 'v1');
    const before = reloads();
    replaceFile(acl, ACL_V2);
    await waitUntil(() => reloads() > before, 5000, 'the acl_file reloaded');
    expect(logs.filter((l) => l.msg === 'auth_reloaded' && l.key === 'auth.aclFile').at(-1)).toMatchObject({ file: acl, users: 3 });
    if (version === 5) {
      await expect(alice.publishAsync('fleet/alice/secret', 'v2', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    } else {
      await alice.publishAsync('fleet/alice/secret', 'v2', { qos: 1 }); // 3.1.1: acknowledged and dropped
    }
    await alice.publishAsync('fleet/shared/news', 'now allowed', { qos: 1 });
    await inbox.wait(1, 3000, (m) => m.payload === 'now allowed');
    await quietPeriod(200);
    expect(inbox.messages.map((m) => m.payload)).not.toContain('v2');
    // SUBSCRIBE: the filter the new deny rule covers is refused now (5.0: 0x87, 3.1.1: 0x80)
    expect(await subackCodes(alice, 'fleet/alice/secret')).toEqual([version === 5 ? 0x87 : 0x80]);
    expect(await subackCodes(alice, 'fleet/shared/#')).toEqual([1]);
    expect(alice.connected).toBe(true);
  });

  it('a delivery to a connected subscriber follows the new rules too', async () => {
    writeFileSync(acl, ACL_V1);
    await node.reloadAuth();
    const alice = await connectMqtt(url, { protocolVersion: 5, clientId: 'alice-reader', username: 'alice', password: 'alice-new' });
    const inbox = new Inbox(alice);
    await alice.subscribeAsync('fleet/alice/#', { qos: 1 });
    const bob = await connectMqtt(url, { protocolVersion: 5, clientId: 'bob-writer', username: 'bob', password: 'bob-pw' });
    await bob.publishAsync('fleet/alice/secret', 'before', { qos: 1 });
    await inbox.wait(1, 3000, (m) => m.payload === 'before');
    writeFileSync(acl, ACL_V2);
    expect(await node.reloadAuth()).toBe(true);
    await bob.publishAsync('fleet/alice/secret', 'after', { qos: 1 });
    await bob.publishAsync('fleet/alice/open', 'open', { qos: 1 });
    await inbox.wait(1, 3000, (m) => m.payload === 'open');
    expect(inbox.messages.map((m) => m.payload)).toEqual(['before', 'open']);
  });

  it('a bad file keeps the rules in force and logs auth_reload_failed with the file and the reason', async () => {
    const good = readText(passwd);
    let failed = failures();
    // a line that does not parse (a file caught half-written)
    replaceFile(passwd, `${good}dave:$7$101$trunc`);
    await waitUntil(() => failures() > failed, 5000, 'the reload to fail');
    expect(logs.filter((l) => l.msg === 'auth_reload_failed').at(-1)).toMatchObject({ key: 'auth.passwordFile', file: passwd, reason: `line ${good.trimEnd().split('\n').length + 1}: malformed` });
    expect(await connackCode('carol', 'carol-pw')).toBe(0);
    // an acl_file line Mosquitto refuses
    failed = failures();
    writeFileSync(acl, 'user alice\ntopic sometimes fleet/#\n');
    expect(await node.reloadAuth()).toBe(false);
    expect(failures()).toBeGreaterThan(failed);
    expect(logs.filter((l) => l.msg === 'auth_reload_failed').at(-1)).toMatchObject({ key: 'auth.aclFile', file: acl });
    const alice = await connectMqtt(url, { protocolVersion: 5, clientId: 'alice-after-bad', username: 'alice', password: 'alice-new' });
    await alice.publishAsync('fleet/shared/x', 'still the old rules', { qos: 1 }); // ACL_V2 or V1, but a working ACL
    // a missing file: the same
    const mark = logs.length;
    rmSync(passwd);
    expect(await node.reloadAuth()).toBe(false);
    expect(logs.slice(mark).filter((l) => l.msg === 'auth_reload_failed').map((l) => [l.key, l.reason])).toEqual([
      ['auth.passwordFile', 'cannot read (ENOENT)'],
      ['auth.aclFile', 'acl_file line 2: invalid access type "sometimes" (read, write, readwrite or deny)'],
    ]);
    expect(await connackCode('carol', 'carol-pw')).toBe(0);
    // the good file back: reloaded, and nothing logged holds a password or a hash
    writeFileSync(passwd, good);
    writeFileSync(acl, ACL_V2);
    expect(await node.reloadAuth()).toBe(true);
    const text = JSON.stringify(logs);
    expect(text).not.toContain('carol-pw');
    expect(text).not.toContain('$7$');
  });

  it('an unchanged file is not reloaded again (a touch of another file in the directory does nothing)', async () => {
    await node.reloadAuth();
    const before = reloads();
    writeFileSync(path.join(dir, 'unrelated'), 'x');
    await quietPeriod(800);
    expect(await node.reloadAuth()).toBe(true);
    expect(reloads()).toBe(before);
  });
});

function readText(file: string): string {
  return readFileSync(file, 'utf8');
}
