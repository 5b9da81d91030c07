import { stat } from "node:fs/promises";
import { errorMessage } from "../../errors/error-message.js";
import { readKeyFile, type LoadedKey } from "./key-file.js";

/**
 * Watches the WireGuard key file for an operator's rotation: a stat() every `intervalMs`
 * (polling, because the file is replaced as often as it is rewritten, and a rename leaves an
 * fs.watch on the old inode), and when anything of it changed (inode, size, mtime, ctime: a
 * chmod too) the file is read again with the start-up checks. A new valid key goes to `onKey`;
 * a file that fails the checks (wrong mode or owner, not a key, half written) is said once per
 * change, naming the file and never its content, and the key in use stays. A missing file also
 * keeps the key in use (a new one is made at the next start, as before).
 */
export interface KeyWatchOptions {
  path: string;
  /** The key in use now. */
  current: Buffer;
  intervalMs: number;
  logger: { info(object: object, message: string): void; warn(object: object, message: string): void };
  /** A new key from the file; the next change is looked at once this settles. */
  onKey(key: LoadedKey): Promise<void>;
  /** A change that was not taken: the file failed the checks or went away (said in the log already). */
  onRefused?(): void;
}

export const DEFAULT_KEY_WATCH_INTERVAL_MS = 2000;

export interface KeyWatch {
  stop(): void;
}

/** What of the file a replacement or an edit changes. */
async function stampOf(path: string): Promise<string> {
  try {
    const info = await stat(path, { bigint: true });
    return `${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
  } catch (error) {
    return `missing:${(error as NodeJS.ErrnoException).code ?? "?"}`;
  }
}

export function watchKeyFile(options: KeyWatchOptions): KeyWatch {
  let current = Buffer.from(options.current);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let lastStamp: string | undefined;

  const look = async (): Promise<void> => {
    const stamp = await stampOf(options.path);
    if (lastStamp === undefined || stamp === lastStamp) {
      lastStamp = stamp;
      return;
    }
    lastStamp = stamp;
    if (stamp.startsWith("missing:")) {
      options.logger.warn({ keyFile: options.path }, `WIREGUARD_KEY_FILE ${options.path} is gone; keeping the key in use (a new one is created at the next start)`);
      options.onRefused?.();
      return;
    }
    let key: LoadedKey;
    try {
      key = await readKeyFile(options.path);
    } catch (error) {
      options.logger.warn({ keyFile: options.path }, `${errorMessage(error)}; keeping the key in use`);
      options.onRefused?.();
      return;
    }
    if (key.privateKey.equals(current)) return; // touched, same key
    current = Buffer.from(key.privateKey);
    await options.onKey(key);
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      look()
        .catch((error: unknown) => options.logger.warn({ keyFile: options.path, error: errorMessage(error) }, "wireguard: taking the rotated key failed; keeping the key in use"))
        .finally(schedule);
    }, options.intervalMs);
    timer.unref();
  };

  void stampOf(options.path).then((stamp) => {
    lastStamp ??= stamp;
    schedule();
  });
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
