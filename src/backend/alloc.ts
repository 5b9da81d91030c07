import type { Backend, BackendContext, BackendFactory } from "./backend.js";
import { IN_SYNC } from "./reconcile-report.js";

/** Holds a lease and moves no packets: the control plane end to end, with no data path. */
class AllocBackend implements Backend {
  readonly type = "alloc";
  constructor(private readonly context: BackendContext) {}

  async register() {
    return { attrs: { backendType: "alloc" }, mtu: this.context.external.mtu };
  }
  async activate() {}
  async applyPeers() {}
  async reconcile() {
    return IN_SYNC;
  }
  async stop() {}
}

export const allocBackend: BackendFactory = {
  type: "alloc",
  validateOptions() {},
  create: (context) => new AllocBackend(context),
};
