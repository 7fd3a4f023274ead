import fs from 'node:fs';
import path from 'node:path';

export interface FileWatcherOptions {
  /** Quiet time after the last change event before `onChange` runs (default 500 ms). */
  readonly debounceMs?: number;
  /** How often the files' stat is compared, for file systems without change events (default 5 s). */
  readonly pollMs?: number;
  /** False: stat polling only, no change events (default true). */
  readonly events?: boolean;
  /** A directory that cannot be watched (it falls back to polling). */
  readonly onWatchError?: (dir: string, err: Error) => void;
}

/**
 * Calls `onChange` when any of `files` changes: a change event in a file's directory
 * (debounced; the directory, because an atomic rename over the file or Kubernetes' `..data`
 * symlink swap ends a watch on the file itself), or a different inode, size or mtime at a
 * periodic stat. Timers and watchers never keep the process alive. `onChange` runs one at a
 * time; a change during a run makes it run once more after.
 */
export class FileWatcher {
  private readonly watchers: fs.FSWatcher[] = [];
  private debounceTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private signature = '';
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly files: readonly string[],
    private readonly onChange: () => void | Promise<void>,
    private readonly options: FileWatcherOptions = {},
  ) {}

  async start(): Promise<void> {
    this.signature = await fileSignature(this.files);
    const dirs = this.options.events === false ? [] : new Set(this.files.map((f) => path.dirname(path.resolve(f))));
    for (const dir of dirs) {
      try {
        const watcher = fs.watch(dir, { persistent: false }, () => this.schedule());
        watcher.on('error', (err) => {
          this.options.onWatchError?.(dir, err);
          watcher.close();
        });
        this.watchers.push(watcher);
      } catch (err) {
        this.options.onWatchError?.(dir, err as Error);
      }
    }
    this.pollTimer = setInterval(() => void this.poll(), this.options.pollMs ?? 5000);
    this.pollTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.watchers.splice(0)) w.close();
    clearTimeout(this.debounceTimer);
    clearInterval(this.pollTimer);
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.fire(), this.options.debounceMs ?? 500);
    this.debounceTimer.unref();
  }

  private async poll(): Promise<void> {
    if ((await fileSignature(this.files)) !== this.signature) this.schedule();
  }

  private async fire(): Promise<void> {
    if (this.stopped) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        this.signature = await fileSignature(this.files);
        try {
          await this.onChange();
        } catch {
          // onChange reports its own failures; the watch goes on
        }
      } while (this.again && !this.stopped);
    })();
    await this.running;
    this.running = undefined;
  }
}

/** Inode, size and mtime of each file (following symlinks), 'missing' for one not there: changes when a file does. */
export async function fileSignature(files: readonly string[]): Promise<string> {
  const parts = await Promise.all(
    files.map(async (file) => {
      try {
        const st = await fs.promises.stat(file);
        return `${st.ino}:${st.size}:${st.mtimeMs}`;
      } catch {
        return 'missing';
      }
    }),
  );
  return parts.join('|');
}
