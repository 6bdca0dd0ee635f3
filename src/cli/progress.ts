/**
 * Progress of long CLI work (migrations, static deploys, benchmarks): a bar redrawn in place
 * when the stream is a terminal, the command's plain lines otherwise (logs, CI, pipes), so a
 * captured run reads the same as before. With no total, the terminal shows the latest step.
 */

/** What a progress display needs from its stream (process.stderr fits). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** What the work is, shown before the bar (`deploy`, `migrate`). */
  label: string;
  /** Number of steps, when known: a bar with `done/total`. */
  total?: number;
  /** Where the bar is drawn (default stderr). */
  stream?: ProgressStream;
  /** Where each step's plain line goes when the stream is not a terminal. */
  line: (text: string) => void;
}

const WIDTH = 24;

export class Progress {
  readonly #o: ProgressOptions;
  readonly #stream: ProgressStream;
  readonly #tty: boolean;
  #drawn = false;

  constructor(o: ProgressOptions) {
    this.#o = o;
    this.#stream = o.stream ?? process.stderr;
    this.#tty = this.#stream.isTTY === true;
  }

  /** True when steps are drawn as a bar rather than printed as lines. */
  get interactive(): boolean {
    return this.#tty;
  }

  /** One step done: `line` is its plain-text line, `detail` the short name shown on the bar. */
  step(line: string, o: { done?: number; detail?: string } = {}): void {
    if (!this.#tty) {
      this.#o.line(line);
      return;
    }
    const total = this.#o.total;
    let text = this.#o.label;
    if (total !== undefined && total > 0 && o.done !== undefined) {
      const filled = Math.min(WIDTH, Math.round((o.done / total) * WIDTH));
      text += ` [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${o.done}/${total}`;
    }
    text += ` ${o.detail ?? line}`;
    const cols = this.#stream.columns || 80;
    if (text.length > cols - 1) text = `${text.slice(0, cols - 2)}…`;
    this.#stream.write(`\r\x1b[2K${text}`);
    this.#drawn = true;
  }

  /** Clear the bar (the command prints its summary next). */
  end(): void {
    if (this.#tty && this.#drawn) this.#stream.write('\r\x1b[2K');
    this.#drawn = false;
  }
}
