/**
 * A terminal progress bar with rate and ETA. On a TTY it redraws one line; in
 * logs (CI, pipes) it prints at most every `logEveryMs` so output stays short.
 */
export interface ProgressOptions {
  label: string;
  total: number;
  unit?: string;
  stream?: NodeJS.WriteStream;
  logEveryMs?: number;
  /** Silence (tests). */
  quiet?: boolean;
  /** Already done before this process (a resumed job): counted in the bar, not in the rate. */
  initial?: number;
}

export class Progress {
  private done: number;
  private readonly initial: number;
  private readonly start = Date.now();
  private lastDraw = 0;
  private extra = '';
  private readonly opts: Required<Omit<ProgressOptions, 'stream'>> & { stream: NodeJS.WriteStream };

  constructor(opts: ProgressOptions) {
    this.opts = {
      unit: 'it',
      logEveryMs: 10_000,
      quiet: process.env.PROTOATLAS_QUIET === '1',
      stream: process.stderr,
      initial: 0,
      ...opts,
    };
    this.initial = this.opts.initial;
    this.done = this.initial;
  }

  /** Advance by `n` and optionally set a trailing status (e.g. "loss 0.41"). */
  tick(n = 1, extra?: string): void {
    this.done += n;
    if (extra !== undefined) this.extra = extra;
    const now = Date.now();
    const interval = this.opts.stream.isTTY ? 100 : this.opts.logEveryMs;
    // The final line is finish()'s job, so a completed bar is not printed twice.
    if (now - this.lastDraw >= interval && this.done < this.opts.total) {
      this.lastDraw = now;
      this.draw(false);
    }
  }

  /** Final line with total time. */
  finish(extra?: string): void {
    if (extra !== undefined) this.extra = extra;
    this.draw(true);
  }

  elapsedSeconds(): number {
    return (Date.now() - this.start) / 1000;
  }

  private draw(final: boolean): void {
    if (this.opts.quiet) return;
    const { total, label, unit, stream } = this.opts;
    const frac = total > 0 ? Math.min(1, this.done / total) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const secs = this.elapsedSeconds();
    const rate = secs > 0 ? (this.done - this.initial) / secs : 0;
    const eta = rate > 0 ? (total - this.done) / rate : NaN;
    const timing = final ? `in ${formatSeconds(secs)}` : `ETA ${formatSeconds(eta)}`;
    const line = `${label} ${bar} ${this.done}/${total} ${unit} ${rate.toFixed(1)} ${unit}/s ${timing}${this.extra ? ` · ${this.extra}` : ''}`;
    if (stream.isTTY) stream.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else stream.write(`${line}\n`);
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  const r = Math.floor(s % 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m` : `${m}:${String(r).padStart(2, '0')}`;
}
