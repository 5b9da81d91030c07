/**
 * The V8 flags a weft daemon's node runs with (the lab's daemons here; the .deb's launcher,
 * deploy/debian/build-deb.sh, writes the same two by hand). The daemon's JavaScript is control
 * plane only — packets are forwarded by the C engine's threads — so it trades V8's speed for
 * memory: measured with node 24, an alloc daemon's RSS went from 109 to 75 MiB (node 20: 98 → 61).
 *   --max-semi-space-size=1  a 1 MiB young generation instead of 16 MiB: every page of it is
 *                            touched as allocation cycles through it, so all of it counts as RSS;
 *   --lite-mode              no optimizing compilers, feedback vectors allocated lazily.
 * Start-up time to ready did not change measurably (7.0–7.7 s either way on a loaded machine).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=1", "--lite-mode"];
