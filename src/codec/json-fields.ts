/**
 * Case-insensitive access to JSON objects. flanneld parses with Go's encoding/json, which
 * matches keys case-insensitively ("network", "vni", "Port" all work); weft must accept the same.
 */

export type JsonObject = Readonly<Record<string, unknown>>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The value of `name` in `object`, matched case-insensitively; an exact match wins. */
export function readField(object: JsonObject, name: string): unknown {
  if (Object.prototype.hasOwnProperty.call(object, name)) return object[name];
  const lower = name.toLowerCase();
  for (const key of Object.keys(object)) {
    if (key.toLowerCase() === lower) return object[key];
  }
  return undefined;
}

/** Typed readers: return undefined when absent, throw naming `path` when present but wrong. */
export function readString(object: JsonObject, name: string, path: string): string | undefined {
  const value = readField(object, name);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new Error(`${path}: ${JSON.stringify(value)} is not a string`);
  return value;
}

export function readBoolean(object: JsonObject, name: string, path: string): boolean | undefined {
  const value = readField(object, name);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw new Error(`${path}: ${JSON.stringify(value)} is not true or false`);
  return value;
}

export function readInteger(
  object: JsonObject,
  name: string,
  path: string,
  range?: { min: number; max: number },
): number | undefined {
  const value = readField(object, name);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new Error(`${path}: ${JSON.stringify(value)} is not an integer`);
  }
  if (range && (value < range.min || value > range.max)) {
    throw new Error(`${path}: ${value} is outside ${range.min}..${range.max}`);
  }
  return value;
}
