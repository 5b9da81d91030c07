/**
 * A problem a restart cannot fix: a bad or unknown flag or FLANNELD_* value, flags that
 * contradict each other, missing privileges. The CLI exits with EXIT_CONFIGURATION for it (src/cli.ts),
 * which weft.service lists in RestartPreventExitStatus= so systemd does not restart in a loop.
 * Everything that may heal by itself (etcd unreachable, a bad network config in etcd, a TLS file not there yet) is retried
 * by the daemon instead and never becomes one of these.
 */
export class ConfigurationError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigurationError";
  }
}

/** sysexits.h EX_CONFIG. */
export const EXIT_CONFIGURATION = 78;
