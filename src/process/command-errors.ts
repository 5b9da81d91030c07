/**
 * What can go wrong running a command, as classes callers branch on (never on message text):
 *   - CommandMissingError: the program is not installed (ENOENT, or `ip netns exec` could not exec it);
 *   - CommandFailedError: it ran and exited non-zero or was killed; carries exit code, signal, output;
 *   - CommandTimedOutError (a CommandFailedError): it ran longer than its timeout and was killed.
 * Messages are for people: the command line, where it ran, how it ended, what it printed, what to do.
 */

/** Debian/Ubuntu packages of the programs weft runs, so a missing one comes with what to install. */
const PACKAGE_OF: Readonly<Record<string, string>> = {
  ip: "iproute2",
  bridge: "iproute2",
  ss: "iproute2",
  nft: "nftables",
  iptables: "iptables",
  "iptables-nft": "iptables",
  "iptables-legacy": "iptables",
  "iptables-restore": "iptables",
  "iptables-nft-restore": "iptables",
  "iptables-legacy-restore": "iptables",
  ethtool: "ethtool",
  etcd: "etcd-server",
  etcdctl: "etcd-client",
  ping: "iputils-ping",
  dockerd: "docker.io",
  docker: "docker.io",
  nsenter: "util-linux",
  tar: "tar",
  curl: "curl",
  iperf3: "iperf3",
  sysctl: "procps",
  wg: "wireguard-tools",
  "wireguard-go": "wireguard-go",
};

export interface CommandMissingOptions {
  /** Why weft needs the program, for the message (e.g. "Backend.TxChecksumOffload=false needs ethtool"). */
  purpose?: string;
}

/** The program is not installed or not on PATH: the command never ran. */
export class CommandMissingError extends Error {
  /** The Debian package that provides the program, when weft knows it. */
  readonly installPackage: string | undefined;

  constructor(
    readonly program: string,
    options: CommandMissingOptions & ErrorOptions = {},
  ) {
    const installPackage = PACKAGE_OF[program];
    const purpose = options.purpose === undefined ? "" : `: ${options.purpose}`;
    super(
      installPackage === undefined
        ? `"${program}" is not installed or not on PATH${purpose}`
        : `"${program}" is not installed${purpose} (apt-get install ${installPackage})`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "CommandMissingError";
    this.installPackage = installPackage;
  }
}

export interface CommandFailure {
  /** The program weft asked for (not `ip` when it ran through `ip netns exec`). */
  program: string;
  args: readonly string[];
  /** The network namespace it ran in; undefined for the namespace of this process. */
  netns: string | undefined;
  /** null when a signal ended it. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Appended to the message: what the user should check, or what the command was doing. */
  hint?: string;
}

/** The command ran and did not succeed (non-zero exit, or killed). */
export class CommandFailedError extends Error implements CommandFailure {
  readonly program: string;
  readonly args: readonly string[];
  readonly netns: string | undefined;
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly hint: string | undefined;

  constructor(failure: CommandFailure, options?: ErrorOptions & { status?: string }) {
    const status = options?.status ?? (failure.signal ? `killed by ${failure.signal}` : `exit code ${failure.exitCode}`);
    const where = failure.netns === undefined ? "" : ` in namespace "${failure.netns}"`;
    const detail = failure.stderr.trim() || failure.stdout.trim() || "(no output)";
    super(
      `\`${[failure.program, ...failure.args].join(" ")}\` failed${where} (${status}): ${detail}${failure.hint ? ` — ${failure.hint}` : ""}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "CommandFailedError";
    this.program = failure.program;
    this.args = failure.args;
    this.netns = failure.netns;
    this.exitCode = failure.exitCode;
    this.signal = failure.signal;
    this.stdout = failure.stdout;
    this.stderr = failure.stderr;
    this.hint = failure.hint;
  }

  /** The same failure with another hint (e.g. the failing line of a batch), this error as its cause. */
  withHint(hint: string): CommandFailedError {
    return new CommandFailedError({ ...this.failure(), hint }, { cause: this });
  }

  protected failure(): CommandFailure {
    const { program, args, netns, exitCode, signal, stdout, stderr } = this;
    return { program, args, netns, exitCode, signal, stdout, stderr, ...(this.hint === undefined ? {} : { hint: this.hint }) };
  }
}

/** The command ran longer than its timeout and was killed (SIGKILL); output is what it printed until then. */
export class CommandTimedOutError extends CommandFailedError {
  constructor(
    failure: CommandFailure,
    readonly timeoutMs: number,
    options?: ErrorOptions,
  ) {
    super(failure, { ...options, status: `timed out after ${timeoutMs} ms, killed` });
    this.name = "CommandTimedOutError";
  }

  override withHint(hint: string): CommandTimedOutError {
    return new CommandTimedOutError({ ...this.failure(), hint }, this.timeoutMs, { cause: this });
  }
}

/**
 * The short text for wrapping a command error in a caller's own message: the command's stderr
 * when it printed one (the tool's own words), otherwise the whole message.
 */
export function commandFailureText(error: unknown): string {
  if (error instanceof CommandFailedError && error.stderr.trim() !== "") return error.stderr.trim();
  return error instanceof Error ? error.message : String(error);
}

/** The error for a process that could not be started: ENOENT is a missing program, the rest as Node reports them. */
export function startError(program: string, error: NodeJS.ErrnoException, options: CommandMissingOptions = {}): Error {
  return error.code === "ENOENT" ? new CommandMissingError(program, { ...options, cause: error }) : error;
}
