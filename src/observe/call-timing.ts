import type { Histogram } from "prom-client";

/**
 * Times every async method of `target` (its class's own methods, looked up once) into
 * `histogram{call=<method name>}`, rejections included. For clients whose calls all go out over
 * the network (the etcd store): the label values are the method names, a fixed, small set.
 */
export function timeAsyncCalls<T extends object>(target: T, histogram: Histogram<"call">, skip: readonly string[] = []): T {
  const prototype = Object.getPrototypeOf(target) as object;
  for (const name of Object.getOwnPropertyNames(prototype)) {
    // The descriptor, not prototype[name]: a getter must not run against the prototype.
    const method: unknown = Object.getOwnPropertyDescriptor(prototype, name)?.value;
    if (name === "constructor" || skip.includes(name) || typeof method !== "function" || method.constructor.name !== "AsyncFunction") continue;
    Object.defineProperty(target, name, {
      configurable: true,
      value: async function timed(this: unknown, ...args: unknown[]): Promise<unknown> {
        const end = histogram.startTimer({ call: name });
        try {
          return await (method as (...a: unknown[]) => Promise<unknown>).apply(this, args);
        } finally {
          end();
        }
      },
    });
  }
  return target;
}
