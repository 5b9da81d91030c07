import { readFileSync } from "node:fs";

/** weft's version, from the package.json shipped beside dist/. */
export const VERSION: string = (() => {
  try {
    const text = readFileSync(new URL("../package.json", import.meta.url), "utf8");
    return (JSON.parse(text) as { version: string }).version;
  } catch {
    return "unknown";
  }
})();
