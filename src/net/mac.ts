const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Lower-case colon form; throws naming `what` when `text` is not a MAC address. */
export function normalizeMac(text: string, what = "MAC address"): string {
  const mac = text.trim().toLowerCase();
  if (!MAC.test(mac)) throw new Error(`${what}: "${text}" is not a MAC address (expected six hex pairs such as 6a:96:90:47:79:a6)`);
  return mac;
}
