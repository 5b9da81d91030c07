import { expect } from "vitest";

/**
 * The seeded random walks over parsers (the *-fuzz.unit.test.ts files): mutants near valid input,
 * and the one verdict every parser owes them.
 */

/** `text` with 1..maxEdits characters replaced, inserted (from `alphabet`) or deleted. */
export function mutateText(text: string, random: () => number, alphabet: string, maxEdits: number): string {
  const chars = [...text];
  const edits = 1 + Math.floor(random() * maxEdits);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(random() * (chars.length + 1));
    const char = alphabet[Math.floor(random() * alphabet.length)] as string;
    const op = random();
    if (op < 0.4) chars.splice(at, 1, char);
    else if (op < 0.7) chars.splice(at, 0, char);
    else chars.splice(at, 1);
  }
  return chars.join("");
}

/** The value `parse` returns, or undefined when it threw an Error with a message (anything else fails the test). */
export function parsedOrRefused<T>(parse: () => T): T | undefined {
  try {
    return parse();
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message.length).toBeGreaterThan(0);
    return undefined;
  }
}
