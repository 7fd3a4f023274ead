import { describe, expect, it } from 'vitest';
import type { SessionOwnership } from '@fleetmq/broker';
import { portFixture } from './support.js';
import type { MakePort } from './support.js';

/**
 * The SessionOwnership contract (ports/session-ownership.ts): a claim hands out an epoch
 * strictly greater than any before for that client ID (across releases too) and reports
 * the previous owner; release succeeds only with the current epoch.
 * `make` returns a fresh, empty ownership registry; the suite closes it after each test.
 */
export function describeSessionOwnership(make: MakePort<SessionOwnership>): void {
  describe('SessionOwnership contract', () => {
    const ports = portFixture(make);

    /**
     * Every ID a node's listing returns, page by page (at most 1000 pages), sorted and without
     * repeats; `between` runs after each page but the last.
     */
    async function listAll(ownership: SessionOwnership, nodeId: string, count = 100, between?: () => Promise<void>): Promise<string[]> {
      const listed = new Set<string>();
      let cursor = '0';
      let pages = 0;
      for (;;) {
        const page = await ownership.ownedBy(nodeId, cursor, count);
        for (const id of page.clientIds) listed.add(id);
        cursor = page.cursor;
        if (cursor === '0' || ++pages >= 1000) break;
        await between?.();
      }
      expect(cursor).toBe('0');
      return [...listed].sort();
    }

    it('has no owner for a client ID never claimed', async () => {
      const ownership = await ports.open();
      expect(await ownership.owner('nobody')).toBeNull();
    });

    it('records the first claim with no previous owner', async () => {
      const ownership = await ports.open();
      const claim = await ownership.claim('c1', 'node-a');
      expect(claim.previous).toBeNull();
      expect(Number.isFinite(claim.epoch)).toBe(true);
      expect(await ownership.owner('c1')).toEqual({ nodeId: 'node-a', epoch: claim.epoch });
    });

    it('hands a claim over to another node with a greater epoch and reports the previous owner', async () => {
      const ownership = await ports.open();
      const first = await ownership.claim('c1', 'node-a');
      const second = await ownership.claim('c1', 'node-b');
      expect(second.epoch).toBeGreaterThan(first.epoch);
      expect(second.previous).toEqual({ nodeId: 'node-a', epoch: first.epoch });
      expect(await ownership.owner('c1')).toEqual({ nodeId: 'node-b', epoch: second.epoch });
    });

    it('reports the same node as previous owner when it claims again', async () => {
      const ownership = await ports.open();
      const first = await ownership.claim('c1', 'node-a');
      const again = await ownership.claim('c1', 'node-a');
      expect(again.epoch).toBeGreaterThan(first.epoch);
      expect(again.previous).toEqual({ nodeId: 'node-a', epoch: first.epoch });
    });

    it('releases with the current epoch, once', async () => {
      const ownership = await ports.open();
      const claim = await ownership.claim('c1', 'node-a');
      expect(await ownership.release('c1', claim.epoch)).toBe(true);
      expect(await ownership.owner('c1')).toBeNull();
      expect(await ownership.release('c1', claim.epoch)).toBe(false);
    });

    it('refuses a release with a stale or unknown epoch and keeps the owner', async () => {
      const ownership = await ports.open();
      const stale = await ownership.claim('c1', 'node-a');
      const current = await ownership.claim('c1', 'node-b');
      expect(await ownership.release('c1', stale.epoch)).toBe(false);
      expect(await ownership.release('c1', current.epoch + 1000)).toBe(false);
      expect(await ownership.release('never-claimed', current.epoch)).toBe(false);
      expect(await ownership.owner('c1')).toEqual({ nodeId: 'node-b', epoch: current.epoch });
    });

    it('keeps epochs increasing across a release', async () => {
      const ownership = await ports.open();
      const epochs: number[] = [];
      for (let i = 0; i < 4; i++) {
        const claim = await ownership.claim('c1', `node-${i % 2}`);
        expect(claim.previous).toBeNull();
        epochs.push(claim.epoch);
        expect(await ownership.release('c1', claim.epoch)).toBe(true);
      }
      for (let i = 1; i < epochs.length; i++) expect(epochs[i]!).toBeGreaterThan(epochs[i - 1]!);
    });

    it('keeps client IDs independent', async () => {
      const ownership = await ports.open();
      const a = await ownership.claim('c-a', 'node-a');
      const b = await ownership.claim('c-b', 'node-b');
      expect(b.previous).toBeNull();
      await ownership.claim('c-b', 'node-c');
      expect(await ownership.owner('c-a')).toEqual({ nodeId: 'node-a', epoch: a.epoch });
      expect(await ownership.release('c-a', a.epoch)).toBe(true);
      expect(await ownership.owner('c-b')).toMatchObject({ nodeId: 'node-c' });
    });

    it('gives concurrent claims distinct epochs, each reporting the claim before it, the greatest one winning', async () => {
      const ownership = await ports.open();
      const nodes = Array.from({ length: 10 }, (_, i) => `node-${i}`);
      const claims = await Promise.all(nodes.map((node) => ownership.claim('contended', node)));
      const epochs = claims.map((c) => c.epoch);
      expect(new Set(epochs).size).toBe(nodes.length);
      // the claims form one chain: exactly one saw no owner, each other saw a distinct earlier claim
      const byEpoch = new Map(claims.map((c, i) => [c.epoch, nodes[i]!]));
      const sorted = [...claims].sort((x, y) => x.epoch - y.epoch);
      expect(sorted[0]!.previous).toBeNull();
      for (let i = 1; i < sorted.length; i++) {
        const prevEpoch = sorted[i - 1]!.epoch;
        expect(sorted[i]!.previous).toEqual({ nodeId: byEpoch.get(prevEpoch), epoch: prevEpoch });
      }
      const winner = sorted[sorted.length - 1]!;
      expect(await ownership.owner('contended')).toEqual({ nodeId: byEpoch.get(winner.epoch), epoch: winner.epoch });
    });

    it('claims from the expected owner only, with a greater epoch', async () => {
      const ownership = await ports.open();
      const first = await ownership.claim('orphan', 'dead');
      expect(await ownership.claimFrom('orphan', 'heir', 'someone-else')).toBeNull();
      expect(await ownership.owner('orphan')).toEqual({ nodeId: 'dead', epoch: first.epoch });
      const taken = await ownership.claimFrom('orphan', 'heir', 'dead');
      expect(taken).not.toBeNull();
      expect(taken!.epoch).toBeGreaterThan(first.epoch);
      expect(taken!.previous).toEqual({ nodeId: 'dead', epoch: first.epoch });
      expect(await ownership.owner('orphan')).toEqual({ nodeId: 'heir', epoch: taken!.epoch });
      expect(await ownership.claimFrom('never-claimed', 'heir', 'dead')).toBeNull();
      expect(await ownership.owner('never-claimed')).toBeNull();
    });

    it('lets exactly one of many concurrent claimFrom calls win', async () => {
      const ownership = await ports.open();
      await ownership.claim('orphan', 'dead');
      const heirs = Array.from({ length: 8 }, (_, i) => `heir-${i}`);
      const results = await Promise.all(heirs.map((heir) => ownership.claimFrom('orphan', heir, 'dead')));
      const winners = results.flatMap((r, i) => (r === null ? [] : [heirs[i]!]));
      expect(winners).toHaveLength(1);
      expect((await ownership.owner('orphan'))?.nodeId).toBe(winners[0]);
    });

    it('lists every client ID a node owns, page by page, and no longer those another node claimed', async () => {
      const ownership = await ports.open();
      const ids = Array.from({ length: 57 }, (_, i) => `device-${i}`);
      for (const id of ids) await ownership.claim(id, 'node-a');
      await ownership.claim('elsewhere', 'node-b');
      await ownership.claim('device-0', 'node-b'); // moved on
      expect(await listAll(ownership, 'node-a', 10)).toEqual(ids.slice(1).sort());
      const b = await ownership.ownedBy('node-b', '0', 100);
      expect(b.clientIds.sort()).toEqual(['device-0', 'elsewhere']);
      expect(await ownership.ownedBy('node-c', '0', 10)).toEqual({ clientIds: [], cursor: '0' });
    });

    it('moves a client ID between the listings of its old and new owner with each claim, claimFrom and release', async () => {
      const ownership = await ports.open();
      await ownership.claim('c1', 'node-a');
      await ownership.claim('c2', 'node-a');
      expect(await listAll(ownership, 'node-a')).toEqual(['c1', 'c2']);
      await ownership.claim('c1', 'node-b');
      expect(await listAll(ownership, 'node-a')).toEqual(['c2']);
      expect(await listAll(ownership, 'node-b')).toEqual(['c1']);
      await ownership.claim('c1', 'node-b'); // the same node again
      expect(await listAll(ownership, 'node-b')).toEqual(['c1']);
      const adopted = await ownership.claimFrom('c2', 'node-c', 'node-a');
      expect(adopted).not.toBeNull();
      expect(await listAll(ownership, 'node-a')).toEqual([]);
      expect(await listAll(ownership, 'node-c')).toEqual(['c2']);
      expect(await ownership.claimFrom('c1', 'node-c', 'node-a')).toBeNull(); // not node-a's: nothing moves
      expect(await listAll(ownership, 'node-b')).toEqual(['c1']);
      expect(await listAll(ownership, 'node-c')).toEqual(['c2']);
      const stale = await ownership.claim('c3', 'node-a');
      await ownership.claim('c3', 'node-b');
      expect(await ownership.release('c3', stale.epoch)).toBe(false); // a stale release moves nothing either
      expect(await listAll(ownership, 'node-b')).toEqual(['c1', 'c3']);
      expect(await ownership.release('c2', adopted!.epoch)).toBe(true);
      expect(await listAll(ownership, 'node-c')).toEqual([]);
      expect(await listAll(ownership, 'node-b')).toEqual(['c1', 'c3']);
    });

    it('keeps the listings exact under concurrent claims: each client ID listed by its owner only', async () => {
      const ownership = await ports.open();
      const nodes = ['node-a', 'node-b', 'node-c', 'node-d'];
      const ids = Array.from({ length: 6 }, (_, i) => `contended-${i}`);
      await Promise.all(ids.flatMap((id) => [...nodes, ...nodes].map((node) => ownership.claim(id, node))));
      const listings = await Promise.all(nodes.map((node) => listAll(ownership, node)));
      for (const id of ids) {
        const owner = await ownership.owner(id);
        expect(nodes.filter((_, i) => listings[i]!.includes(id))).toEqual([owner!.nodeId]);
      }
    });

    it('returns every client ID present for a whole listing, while others are claimed away and released between pages', async () => {
      const ownership = await ports.open();
      // 160 IDs: more than Redis keeps in a compact set, which it would list in one page
      const staying = Array.from({ length: 80 }, (_, i) => `stay-${String(i).padStart(2, '0')}`);
      const leaving = Array.from({ length: 80 }, (_, i) => `leave-${String(i).padStart(2, '0')}`);
      const epochs = new Map<string, number>();
      for (let i = 0; i < 80; i++) {
        await ownership.claim(staying[i]!, 'node-a');
        epochs.set(leaving[i]!, (await ownership.claim(leaving[i]!, 'node-a')).epoch);
      }
      let pages = 0;
      const listed = await listAll(ownership, 'node-a', 7, async () => {
        // between pages: some leave (to another node, or released), more arrive
        for (let k = 0; k < 3; k++) {
          const id = leaving.shift();
          if (id === undefined) break;
          if (k % 2 === 0) await ownership.claim(id, 'node-b');
          else expect(await ownership.release(id, epochs.get(id)!)).toBe(true);
        }
        await ownership.claim(`new-${pages++}`, 'node-a');
      });
      expect(pages).toBeGreaterThan(5); // IDs did leave between pages
      for (const id of staying) expect(listed.includes(id), id).toBe(true);
    });

    it('drops a released client ID from its node\'s listing', async () => {
      const ownership = await ports.open();
      const { epoch } = await ownership.claim('leaving', 'node-a');
      await ownership.claim('staying', 'node-a');
      expect(await ownership.release('leaving', epoch)).toBe(true);
      expect((await ownership.ownedBy('node-a', '0', 100)).clientIds).toEqual(['staying']);
    });
  });
}
