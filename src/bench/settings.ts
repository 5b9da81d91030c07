import { parseLinkRate } from "../lab/link-shaping.js";
import { BUILTIN_PATHS, extraPath, flanneldPaths, type BenchPath, type ExtraDaemon } from "./paths.js";

/**
 * `weft bench`'s options, checked before anything is built: every error names the flag and
 * the value, and says what would be accepted.
 */
export interface BenchOptionsInput {
  paths?: string;
  /** As typed (yargs would turn "3x" into NaN before we could name it). */
  reps?: string | number;
  duration?: string | number;
  cpu?: string;
  link?: string;
  flanneld?: string;
  extra?: readonly string[];
  json?: string;
  svg?: string;
  markdown?: string;
}

export interface BenchSettings {
  paths: BenchPath[];
  reps: number;
  duration: number;
  cpu: "shared" | "pinned";
  link?: { text: string; bitsPerSecond: number };
  json?: string;
  svg?: string;
  markdown?: string;
}

export const MAX_REPS = 50;
export const MAX_DURATION_SECONDS = 600;

function integerIn(flag: string, value: string | number | undefined, fallback: number, max: number): number {
  const chosen = value === undefined ? fallback : typeof value === "number" ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(chosen) || chosen < 1 || chosen > max) throw new Error(`${flag} "${String(value)}": expected a whole number from 1 to ${max}`);
  return chosen;
}

/** "name=command" or "name:backend=command"; the name becomes a path id. */
export function parseExtra(text: string): ExtraDaemon {
  const equals = text.indexOf("=");
  const head = equals < 0 ? "" : text.slice(0, equals);
  const command = equals < 0 ? "" : text.slice(equals + 1).trim();
  const [name = "", backend = "vxlan", ...rest] = head.split(":");
  if (!/^[a-z][a-z0-9-]{0,23}$/.test(name) || rest.length > 0 || !/^[a-z][a-z0-9-]*$/.test(backend) || command === "") {
    throw new Error(
      `--extra "${text}": expected NAME=COMMAND or NAME:BACKEND=COMMAND, NAME of lower-case letters, digits and "-" ` +
        `(e.g. --extra 'mine=/usr/local/bin/mine --etcd={etcd} --iface={iface} --subnet-file={subnetFile}')`,
    );
  }
  return { name, backend, command };
}

export function parseBenchSettings(input: BenchOptionsInput): BenchSettings {
  const extras = (input.extra ?? []).map(parseExtra);
  const flanneld = input.flanneld === undefined ? [] : flanneldPaths(validBinary(input.flanneld));
  const available = [...BUILTIN_PATHS, ...flanneld, ...extras.map(extraPath)];
  const ids = available.map((path) => path.id);
  const duplicate = ids.find((id, index) => ids.indexOf(id) !== index);
  if (duplicate !== undefined) throw new Error(`--extra ${duplicate}: that name is already a path; pick another NAME`);

  let paths = available;
  if (input.paths !== undefined) {
    const wanted = input.paths.split(",").map((id) => id.trim()).filter((id) => id !== "");
    if (wanted.length === 0) throw new Error(`--paths "${input.paths}": name at least one path (${ids.join(", ")})`);
    paths = wanted.map((id) => {
      const path = available.find((candidate) => candidate.id === id);
      if (path) return path;
      const hint = id.startsWith("flanneld-") && input.flanneld === undefined ? "; flanneld's paths need --flanneld PATH" : "";
      throw new Error(`--paths: "${id}" is not a path; paths are ${ids.join(", ")}${hint}`);
    });
    const repeated = wanted.find((id, index) => wanted.indexOf(id) !== index);
    if (repeated !== undefined) throw new Error(`--paths: "${repeated}" is listed twice`);
  }

  const cpu = input.cpu ?? "shared";
  if (cpu !== "shared" && cpu !== "pinned") throw new Error(`--cpu "${cpu}": expected shared or pinned`);
  return {
    paths,
    reps: integerIn("--reps", input.reps, 3, MAX_REPS),
    duration: integerIn("--duration", input.duration, 5, MAX_DURATION_SECONDS),
    cpu,
    ...(input.link === undefined ? {} : { link: { text: input.link, bitsPerSecond: parseLinkRate(input.link) } }),
    ...(input.json === undefined ? {} : { json: nonEmpty("--json", input.json) }),
    ...(input.svg === undefined ? {} : { svg: nonEmpty("--svg", input.svg) }),
    ...(input.markdown === undefined ? {} : { markdown: nonEmpty("--markdown", input.markdown) }),
  };
}

function nonEmpty(flag: string, value: string): string {
  if (value.trim() === "") throw new Error(`${flag}: expected a file name`);
  return value;
}

function validBinary(path: string): string {
  if (path.trim() === "" || /\s/.test(path)) throw new Error(`--flanneld "${path}": expected the path of the flanneld binary (no spaces)`);
  return path;
}
