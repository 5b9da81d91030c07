import { readField, readInteger, type JsonObject } from "../../codec/json-fields.js";
import { maxEngineQueues, type EngineOptions } from "../../engine/engine.js";

/**
 * The engine's queue options, shared by every backend on the engine (udp, userspace vxlan):
 *   "Queues": 1..8 — TUN queues and SO_REUSEPORT sockets (default: defaultEngineQueues(), 1)
 *   "QueueThreads": 1 one thread per queue, 2 one per direction and queue
 *                   (default: 1 with several queues, 2 with one)
 */
export type QueueOptions = Pick<EngineOptions, "queues" | "sharedThread">;

export function parseQueueOptions(options: JsonObject): QueueOptions {
  // The bound comes from the addon: ask it only when a queue count is given.
  const queues = readField(options, "Queues") === undefined ? undefined : readInteger(options, "Queues", "Backend.Queues", { min: 1, max: maxEngineQueues() });
  const threads = readInteger(options, "QueueThreads", "Backend.QueueThreads", { min: 1, max: 2 });
  const result: QueueOptions = {};
  if (queues !== undefined) result.queues = queues;
  if (threads !== undefined) result.sharedThread = threads === 1;
  return result;
}
