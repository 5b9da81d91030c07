/**
 * The bench's statistics: every figure is reported as the median of its reps with the min–max
 * range, and compared with kernel vxlan of the same run as a plain ratio of medians.
 */

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** Reps that produced this figure (a failed measurement leaves a gap, not a zero). */
  count: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Median and range of the finite values; undefined when there are none. */
export function summarize(values: readonly (number | undefined)[]): Summary | undefined {
  const finite = values.filter((value): value is number => value !== undefined && Number.isFinite(value));
  if (finite.length === 0) return undefined;
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), count: finite.length };
}

/** value / reference of the medians; undefined when either is missing or the reference is 0. */
export function ratioTo(value: Summary | undefined, reference: Summary | undefined): number | undefined {
  if (!value || !reference || reference.median === 0) return undefined;
  return value.median / reference.median;
}
