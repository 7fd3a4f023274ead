/**
 * The progress line on stderr: a bar, the run count, what runs now and the time so far. On a
 * terminal it is rewritten in place; otherwise (CI, a test) one line per run.
 */
export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private readonly started = Date.now();
  private done = 0;

  constructor(
    private readonly total: number,
    private readonly enabled = true,
  ) {}

  start(what: string): void {
    if (!this.enabled) return;
    const width = 24;
    const filled = Math.round((this.done / Math.max(1, this.total)) * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const line = `bench [${bar}] ${this.done + 1}/${this.total} ${what} · ${this.elapsed()}`;
    if (this.tty) process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns || 120) - 1)}`);
    else process.stderr.write(`${line}\n`);
  }

  finish(summary: string): void {
    this.done++;
    if (!this.enabled) return;
    if (this.tty) process.stderr.write(`  ${summary}`);
    else process.stderr.write(`  → ${summary}\n`);
  }

  message(text: string): void {
    if (!this.enabled) return;
    process.stderr.write(this.tty ? `\r\x1b[2K${text}\n` : `${text}\n`);
  }

  end(): void {
    if (this.enabled && this.tty) process.stderr.write(`\r\x1b[2Kbench: ${this.total} runs in ${this.elapsed()}\n`);
  }

  private elapsed(): string {
    const s = Math.round((Date.now() - this.started) / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  }
}
