import { experimental, status } from "@grpc/grpc-js";
import { LogVerbosity } from "@grpc/grpc-js/build/src/constants.js";
import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { routeGrpcLogs } from "../../src/store/grpc-logs.js";

describe("routeGrpcLogs", () => {
  it("turns gRPC's own stderr lines (e.g. 'excess pings') into JSON log lines", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split("\n").filter(Boolean));
        done();
      },
    });
    routeGrpcLogs(pino({ level: "debug" }, sink));
    experimental.log(LogVerbosity.ERROR, "Connection to dns:127.0.0.1:2379 rejected by server because of excess pings. Increasing ping interval to 30000 ms");
    experimental.log(LogVerbosity.INFO, "status", status.UNAVAILABLE);
    const records = lines.map((line) => JSON.parse(line) as { level: number; component: string; msg: string });
    expect(records).toEqual([
      expect.objectContaining({ level: 40, component: "grpc", msg: "grpc: Connection to dns:127.0.0.1:2379 rejected by server because of excess pings. Increasing ping interval to 30000 ms" }),
      // INFO is below gRPC's default verbosity (ERROR): not printed at all.
    ]);
  });
});
