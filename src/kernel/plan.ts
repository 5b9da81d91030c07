import { describeObject, objectKey, sameObject, type KernelObject } from "./objects.js";

/**
 * Turns "what should exist" and "what exists" into the changes that make them equal. The same
 * function serves peer events (previous desired state → new desired state) and reconcile
 * (actual kernel state → desired state), so both paths program identical objects.
 */

export type KernelChange =
  | { action: "add"; object: KernelObject }
  | { action: "replace"; object: KernelObject; previous: KernelObject }
  | { action: "remove"; object: KernelObject };

export function planChanges(desired: readonly KernelObject[], actual: readonly KernelObject[]): KernelChange[] {
  const actualByKey = new Map<string, KernelObject>();
  for (const object of actual) actualByKey.set(objectKey(object), object);
  const desiredKeys = new Set<string>();
  const changes: KernelChange[] = [];
  for (const object of desired) {
    const key = objectKey(object);
    desiredKeys.add(key);
    const existing = actualByKey.get(key);
    if (!existing) changes.push({ action: "add", object });
    else if (!sameObject(existing, object)) changes.push({ action: "replace", object, previous: existing });
  }
  for (const [key, object] of actualByKey) {
    if (!desiredKeys.has(key)) changes.push({ action: "remove", object });
  }
  return changes;
}

/** "add route 10.66.5.0/24 via 10.66.5.0 dev flannel.1 onlink", "replace … (was …)". */
export function describeChange(change: KernelChange): string {
  const text = `${change.action} ${describeObject(change.object)}`;
  return change.action === "replace" ? `${text} (was: ${describeObject(change.previous)})` : text;
}
