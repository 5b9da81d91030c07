import { describe, expect, it } from "vitest";
import { createProgress, prefixedProgress } from "../../src/bench/progress.js";

function fakeStream(isTTY: boolean, columns?: number): NodeJS.WriteStream & { written: string } {
  const stream = { isTTY, columns, written: "", write(text: string) { stream.written += text; return true; } };
  return stream as unknown as NodeJS.WriteStream & { written: string };
}

describe("bench progress line", () => {
  it("rewrites one line in place on a terminal, cut to its width, and keeps notes", () => {
    const stream = fakeStream(true, 21);
    const progress = prefixedProgress(createProgress(stream), "[1/2] ");
    progress.update("vxlan rep 1/3: TCP 1 stream");
    progress.note("vxlan: done");
    progress.update("udp");
    progress.done();
    expect(stream.written).toBe("\r\x1b[K[1/2] vxlan rep 1/3:\r\x1b[Kvxlan: done\n\r\x1b[K[1/2] udp\r\x1b[K");
  });

  it("prints nothing when not a terminal", () => {
    const stream = fakeStream(false);
    const progress = createProgress(stream);
    progress.update("x");
    progress.note("y");
    progress.done();
    expect(stream.written).toBe("");
  });
});
