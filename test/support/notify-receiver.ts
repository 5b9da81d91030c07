import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

/**
 * A real sd_notify receiver: python3 binds a unix datagram socket (a path, or "@name" for an
 * abstract one) with SO_PASSCRED, as systemd's notification socket does, and prints each
 * datagram with the sender's PID from SCM_CREDENTIALS. Node itself cannot receive on one.
 */
export interface NotifyMessage {
  /** The sender's PID as the kernel reports it (what NotifyAccess=main checks). */
  pid: number;
  /** VAR=value lines. */
  fields: Record<string, string>;
  /** Date.now() when the receiver's line reached this process. */
  at: number;
}

const RECEIVER = String.raw`
import json, os, socket, struct, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\0" + path[1:] if path.startswith("@") else path)
print(json.dumps({"listening": True}), flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = -1
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", value[:12])[0]
    print(json.dumps({"pid": pid, "data": data.decode()}), flush=True)
`;

export class NotifyReceiver {
  readonly messages: NotifyMessage[] = [];
  private constructor(private readonly child: ChildProcess) {}

  /** Starts the receiver and resolves once it is bound. */
  static async start(socketPath: string): Promise<NotifyReceiver> {
    const child = spawn("/usr/bin/python3", ["-c", RECEIVER, socketPath], { stdio: ["ignore", "pipe", "pipe"] });
    const receiver = new NotifyReceiver(child);
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code) => reject(new Error(`notify receiver exited (${code}): ${stderr}`)));
      createInterface({ input: child.stdout! }).on("line", (line) => {
        const parsed = JSON.parse(line) as { listening?: true; pid?: number; data?: string };
        if (parsed.listening) return resolve();
        const fields: Record<string, string> = {};
        for (const item of (parsed.data ?? "").split("\n")) {
          const at = item.indexOf("=");
          if (at > 0) fields[item.slice(0, at)] = item.slice(at + 1);
        }
        receiver.messages.push({ pid: parsed.pid ?? -1, fields, at: Date.now() });
      });
    });
    return receiver;
  }

  /** Messages that carry `field` (e.g. "READY"). */
  with(field: string): NotifyMessage[] {
    return this.messages.filter((message) => field in message.fields);
  }

  /** Stops the receiver by its PID. */
  stop(): void {
    if (this.child.exitCode === null && this.child.pid !== undefined) process.kill(this.child.pid, "SIGTERM");
  }
}
