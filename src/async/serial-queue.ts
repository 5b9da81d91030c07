/**
 * Runs tasks one at a time, in call order. Peer events and periodic reconcile both compute a
 * diff and program it; run concurrently, one could undo the other's work.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
