import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { errorMessage } from "../errors/error-message.js";

/**
 * Replaces `path` so a reader (docker, systemd) never sees it half-written: a temp file in the
 * same directory, fsynced, then renamed over the target; the directory is fsynced so the rename
 * survives a crash. Parent directories are created 0755, the file is 0644 whatever the umask.
 * `what` names the file in errors ("subnet file", "docker options file").
 */
export async function writeFileAtomic(path: string, text: string, what: string): Promise<void> {
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (error) {
    throw new Error(`${what} ${path}: cannot create directory ${dir}: ${errorMessage(error)}`);
  }
  const temp = join(dir, `.${basename(path)}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    const handle = await open(temp, "wx", 0o644);
    try {
      await handle.writeFile(text);
      // open()'s mode is reduced by the umask; these files must be world-readable for docker units.
      await handle.chmod(0o644);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw new Error(`${what} ${path}: write failed: ${errorMessage(error)}; check that ${dir} is writable`);
  }
  await syncDirectory(dir);
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic there.
  } finally {
    await handle.close();
  }
}
