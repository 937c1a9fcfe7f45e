/**
 * Progress lines on stderr for long CLI work (Node). A quick run prints nothing: the first line
 * comes only after `firstMs`, so short builds and their tests keep a clean stderr. At a terminal
 * the line is rewritten in place a few times a second; in a log one full line every `everyMs`.
 */
import { stderrIsTty } from './dawn-quiet-node.js';

export interface ProgressOptions {
  /** Silence before the first line (default 2 s). */
  firstMs?: number;
  /** Between lines (default 0.25 s at a terminal, 10 s otherwise). */
  everyMs?: number;
  tty?: boolean;
  now?: () => number;
  write?: (s: string) => void;
}

/** NEGCLIP_PROGRESS_FIRST_MS overrides the silence before the first line (tests set 0). */
function envFirstMs(): number | undefined {
  const v = Number(process.env.NEGCLIP_PROGRESS_FIRST_MS);
  return process.env.NEGCLIP_PROGRESS_FIRST_MS && Number.isFinite(v) && v >= 0 ? v : undefined;
}

export class Progress {
  private readonly tty: boolean;
  private readonly everyMs: number;
  private readonly now: () => number;
  private readonly write: (s: string) => void;
  private next: number;
  private open = false;

  /** `prefix` starts every line ("data"); a disabled progress (--quiet) prints nothing. */
  constructor(private readonly prefix: string, private readonly enabled = true, opts: ProgressOptions = {}) {
    this.tty = opts.tty ?? stderrIsTty();
    this.everyMs = opts.everyMs ?? (this.tty ? 250 : 10_000);
    this.now = opts.now ?? Date.now;
    this.write = opts.write ?? ((s) => process.stderr.write(s));
    this.next = this.now() + (opts.firstMs ?? envFirstMs() ?? 2000);
  }

  /** Shows `text()` if a line is due; cheap enough to call per record. */
  update(text: () => string): void {
    if (!this.enabled) return;
    const t = this.now();
    if (t < this.next) return;
    this.next = t + this.everyMs;
    if (this.tty) {
      this.write(`\r${this.prefix}: ${text()}\x1b[K`);
      this.open = true;
    } else {
      this.write(`${this.prefix}: ${text()}\n`);
    }
  }

  /** Ends a line left open at a terminal, before other output. */
  done(): void {
    if (this.open) this.write('\n');
    this.open = false;
  }
}
