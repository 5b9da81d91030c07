/**
 * The V8 flags a weft daemon's node runs with (the lab's daemons here; the .deb's launcher,
 * deploy/debian/build-deb.sh, writes the same ones by hand). The daemon's JavaScript is control
 * plane only — packets are forwarded by the C engine's threads — so it trades V8's speed for
 * memory: measured, an alloc daemon's RSS went from 98 to ~61 MiB on node 20 and from 109 to
 * ~75 on node 24; a udp daemon after a stream from 83 to 64 MiB (node 20).
 *   --max-semi-space-size=1          a 1 MiB young generation instead of 16 MiB: every page of it
 *                                    is touched as allocation cycles through it, so all of it is RSS;
 *   --no-opt --no-sparkplug --no-maglev  no optimizing or baseline compilers (their code and
 *                                    feedback cost memory; the interpreter is fast enough here).
 * Not --lite-mode, which saves about as much: on node 20 it prints "Warning: disabling flag
 * --expose_wasm" on stderr the first time anything looks at WebAssembly (a raw line in the JSON log).
 * Start-up time to ready did not change measurably (7.0–7.7 s either way on a loaded machine).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=1", "--no-opt", "--no-sparkplug", "--no-maglev"];
