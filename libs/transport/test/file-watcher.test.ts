import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileWatcher } from '../src/file-watcher.js';

const dirs: string[] = [];
const watchers: FileWatcher[] = [];

function tempFile(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fleetmq-watch-'));
  dirs.push(dir);
  const file = path.join(dir, 'passwd');
  writeFileSync(file, text);
  return file;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

afterEach(() => {
  for (const w of watchers.splice(0)) w.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('FileWatcher', () => {
  it('a change event, debounced: several writes in a row make one call', async () => {
    const file = tempFile('a\n');
    let calls = 0;
    const w = new FileWatcher([file], () => void calls++, { debounceMs: 100, pollMs: 60_000 });
    watchers.push(w);
    await w.start();
    writeFileSync(file, 'b\n');
    writeFileSync(file, 'bc\n');
    writeFileSync(file, 'bcd\n');
    expect(await until(() => calls === 1, 2000)).toBe(true);
    await new Promise((r) => setTimeout(r, 250));
    expect(calls).toBe(1);
  });

  it('an atomic rename over the file (how editors and Kubernetes replace files) is seen', async () => {
    const file = tempFile('a\n');
    let calls = 0;
    const w = new FileWatcher([file], () => void calls++, { debounceMs: 50, pollMs: 60_000 });
    watchers.push(w);
    await w.start();
    writeFileSync(`${file}.new`, 'replaced\n');
    renameSync(`${file}.new`, file);
    expect(await until(() => calls >= 1, 2000)).toBe(true);
  });

  it('without change events, the periodic stat finds the change (the polling fallback)', async () => {
    const file = tempFile('a\n');
    let calls = 0;
    const w = new FileWatcher([file], () => void calls++, { events: false, debounceMs: 10, pollMs: 50 });
    watchers.push(w);
    await w.start();
    await new Promise((r) => setTimeout(r, 150));
    expect(calls).toBe(0); // nothing changed, nothing called
    writeFileSync(file, 'a longer line\n');
    expect(await until(() => calls === 1, 2000)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(calls).toBe(1);
  });

  it('runs onChange one at a time; a change during a run makes one more run; a throw does not stop it', async () => {
    const file = tempFile('a\n');
    let running = 0;
    let most = 0;
    let calls = 0;
    const w = new FileWatcher(
      [file],
      async () => {
        calls++;
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 150));
        running--;
        if (calls === 1) throw new Error('bad file');
      },
      { debounceMs: 10, pollMs: 60_000 },
    );
    watchers.push(w);
    await w.start();
    writeFileSync(file, 'b\n');
    expect(await until(() => calls === 1, 2000)).toBe(true);
    writeFileSync(file, 'bc\n'); // during the first run
    expect(await until(() => calls === 2, 2000)).toBe(true);
    expect(most).toBe(1);
    writeFileSync(file, 'bcd\n');
    expect(await until(() => calls === 3, 2000)).toBe(true);
  });
});
