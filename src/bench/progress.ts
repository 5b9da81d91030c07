/**
 * The live progress line of `weft bench` on a terminal: one line, rewritten in place, with the
 * path, the rep and the latest figure. Not a terminal (a pipe, CI, a test): nothing at all.
 */
export interface Progress {
  update(text: string): void;
  /** A line that stays (a path done or failed); printed on a terminal only. */
  note(text: string): void;
  done(): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update: () => undefined, note: () => undefined, done: () => undefined };
  const width = () => Math.max(20, (stream.columns || 100) - 1); // 0 when the terminal does not say.
  let shown = false;
  return {
    update(text) {
      stream.write(`\r\x1b[K${text.slice(0, width())}`);
      shown = true;
    },
    note(text) {
      stream.write(`${shown ? "\r\x1b[K" : ""}${text}\n`);
      shown = false;
    },
    done() {
      if (shown) stream.write("\r\x1b[K");
      shown = false;
    },
  };
}

/** The same progress with `prefix` before every updated line (e.g. "[2/7] "). */
export function prefixedProgress(progress: Progress, prefix: string): Progress {
  return { update: (text) => progress.update(`${prefix}${text}`), note: (text) => progress.note(text), done: () => progress.done() };
}
