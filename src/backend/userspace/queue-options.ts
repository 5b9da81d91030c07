import { readField, readInteger, type JsonObject } from "../../codec/json-fields.js";
import { maxEngineQueues, type EngineOptions } from "../../engine/engine.js";

/**
 * The engine's queue options, shared by every backend on the engine (udp, userspace vxlan, wireguard):
 *   "Queues": 1..8 — TUN queues and SO_REUSEPORT sockets (default: defaultEngineQueues(), 1)
 *   "QueueThreads": 1 one thread per queue, 2 one per direction and queue
 *                   (default: 1 with several queues, 2 with one)
 *   "SpinMicroseconds": 0..100000 — after moving packets, a queue's threads keep looking without
 *                   sleeping this long before they block (default: the engine's, see engine.ts)
 */
export type QueueOptions = Pick<EngineOptions, "queues" | "sharedThread" | "spinMicroseconds">;

export function parseQueueOptions(options: JsonObject): QueueOptions {
  // The bound comes from the addon: ask it only when a queue count is given.
  const queues = readField(options, "Queues") === undefined ? undefined : readInteger(options, "Queues", "Backend.Queues", { min: 1, max: maxEngineQueues() });
  const threads = readInteger(options, "QueueThreads", "Backend.QueueThreads", { min: 1, max: 2 });
  const spin = readInteger(options, "SpinMicroseconds", "Backend.SpinMicroseconds", { min: 0, max: 100_000 });
  const result: QueueOptions = {};
  if (queues !== undefined) result.queues = queues;
  if (threads !== undefined) result.sharedThread = threads === 1;
  if (spin !== undefined) result.spinMicroseconds = spin;
  return result;
}

/** The queue options a backend passes on to the engine, only those that were given. */
export function engineQueueOptions(options: QueueOptions): QueueOptions {
  const { queues, sharedThread, spinMicroseconds } = options;
  return {
    ...(queues !== undefined ? { queues } : {}),
    ...(sharedThread !== undefined ? { sharedThread } : {}),
    ...(spinMicroseconds !== undefined ? { spinMicroseconds } : {}),
  };
}
