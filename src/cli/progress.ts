/**
 * @file A progress bar for CLI work that may take over a second. It draws on stderr only when stderr is a
 * terminal and only once the work has run for a second, so quick runs and CI logs stay clean.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

/** A bar labelled `label`; call `update(done, total)` as work advances and `stop()` at the end. */
export function progress(label: string): Progress {
  const start = Date.now();
  let bar: cliProgress.SingleBar | undefined;
  return {
    update(done, total) {
      if (!process.stderr.isTTY) return;
      if (!bar) {
        if (Date.now() - start < 1000) return;
        bar = new cliProgress.SingleBar(
          { format: `${label} [{bar}] {value}/{total} {eta_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, done);
      }
      bar.setTotal(total);
      bar.update(done);
    },
    stop() {
      bar?.stop();
    },
  };
}
