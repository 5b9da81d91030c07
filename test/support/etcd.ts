import { randomBytes } from "node:crypto";
import { afterAll, beforeAll } from "vitest";
import { EtcdServer } from "../../src/lab/etcd-server.js";
import { EtcdStore } from "../../src/store/etcd-store.js";

/** A real etcd for one test file, plus stores with a unique prefix per test. */
export interface EtcdFixture {
  server: EtcdServer;
  /** A store on a fresh prefix, e.g. /weft-test-1a2b3c/network; closed by `stop`. */
  newStore(prefix?: string): EtcdStore;
  stop(): Promise<void>;
}

export async function startEtcd(): Promise<EtcdFixture> {
  const server = await EtcdServer.start();
  const stores: EtcdStore[] = [];
  return {
    server,
    newStore(prefix = `/weft-test-${randomBytes(4).toString("hex")}/network`) {
      const store = new EtcdStore({ endpoints: [server.endpoint], prefix, callTimeoutMs: 3000 });
      stores.push(store);
      return store;
    },
    async stop() {
      for (const store of stores) store.close();
      await server.stop();
    },
  };
}

/** One etcd for the whole test file: started before its tests, stopped after them. */
export function useEtcd(): () => EtcdFixture {
  let fixture: EtcdFixture | undefined;
  beforeAll(async () => {
    fixture = await startEtcd();
  });
  afterAll(async () => {
    await fixture?.stop();
  });
  return () => {
    if (!fixture) throw new Error("useEtcd(): etcd is not started yet (use it inside tests, not at import time)");
    return fixture;
  };
}
